"""tools/benchmark.py and tools/keras_io_convnet.py: a tiny time-to-accuracy run, end to end."""

import json

import pytest

from tests import commands

TINY_TRAIN = ("--epochs=2 --config.data.limit=1024 --model=simple_cnn --config.model.width=8 "
              "--config.optim.warmup_epochs=0 --mixed_precision=float32")


@pytest.mark.slow
def test_tiny_benchmark_times_targets_and_compares_with_the_reference(tmp_path, fashion_mnist_dir):
  del fashion_mnist_dir
  report = tmp_path / "report.md"
  result = commands.run(
      "tools/benchmark.py", "--recipes=configs/fashion_mnist.py", "--seeds=1",
      "--targets=0.3,0.999", "--reference_epochs=1", "--reference_args=--limit=1000",
      f"--train_args={TINY_TRAIN}", f"--runs_dir={tmp_path / 'runs'}", "--run_name=tiny",
      f"--write={report}", timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  text = report.read_text()
  assert "tools/benchmark.py --recipes=configs/fashion_mnist.py" in text  # the command
  rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
  header, reference, recipe = rows
  assert "to 30.0%" in header and "to 99.9%" in header and "speed-up vs reference" in header
  assert reference.startswith("| keras-io convnet, 1 epochs |")
  assert recipe.startswith("| configs/fashion_mnist.py |")
  for row in (reference, recipe):
    assert " s (" in row.split("|")[2]  # 30% reached, with its time
    assert "not reached (0/1)" in row.split("|")[3]  # 99.9% not
  assert "% of " in recipe  # utilization against the measured peak
  assert recipe.rstrip(" |").endswith("x, -")  # a speed-up for 30%, none for 99.9%
  record = json.loads((tmp_path / "runs" / "tiny" / "reference-0.json").read_text())
  assert record["epochs"][0]["epoch"] == 1 and record["num_train"] == 900

  # The same --run_name with more seeds reuses the finished seed and trains only the new one
  # (here evaluating every 2nd epoch: the epochs without an evaluation are skipped).
  first = tmp_path / "runs" / "tiny" / "fashion_mnist-0" / "metrics.json"
  finished = first.stat().st_mtime_ns
  result = commands.run(
      "tools/benchmark.py", "--recipes=configs/fashion_mnist.py", "--seeds=2",
      "--targets=0.3", "--reference_epochs=0",
      f"--train_args={TINY_TRAIN} --config.train.validation_every_epochs=2",
      f"--runs_dir={tmp_path / 'runs'}", "--run_name=tiny", timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert first.stat().st_mtime_ns == finished  # seed 0 not trained again
  assert (tmp_path / "runs" / "tiny" / "fashion_mnist-1" / "metrics.json").is_file()
  assert "Seeds: 2 per run" in result.stdout
  recipe = next(line for line in result.stdout.splitlines()
                if line.startswith("| configs/fashion_mnist.py |"))
  assert " s (" in recipe.split("|")[2]  # both seeds reached 30%: a median time


def test_bad_targets_are_refused_with_one_line():
  result = commands.run("tools/benchmark.py", "--targets=1.5")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("error: --targets must be fractions")
