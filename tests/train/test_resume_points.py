"""Resuming from every point a process can die (issue 19): python -m app.train killed (SIGKILL,
as kill -9 or a preempted host would) at each point by the testing hook app/core/crash_points.py,
then run again by the same command, ends with the weights, history and test figures of the run
never killed; so does a search trial. The multi-worker roles are tests/test_multi_worker.py's."""

import csv
import json
import os
import signal
import struct

import numpy as np
import pytest
import yaml

from app.data.sources import idx
from tests import commands

# 284 training images (28 held out for validation) and 64 test images: 4 steps an epoch, a step
# backup every 2, so one falls due on each epoch's last step.
TRAIN = ["--model=simple_cnn", "--config.model.width=4", "--mixed_precision=float32",
         "--epochs=2", "--batch_size=64", "--config.train.backup_every_steps=2"]
KILLED = -signal.SIGKILL


def write_idx(path, array):
  with open(path, "wb") as f:
    f.write(bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape))
    f.write(np.ascontiguousarray(array, np.uint8).tobytes())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, fashion_mnist_dir):
  """Fashion-MNIST's first 284 training and 64 test images as IDX files: read in milliseconds
  (the whole set's gzip takes seconds, in each of this module's processes)."""
  folder = tmp_path_factory.mktemp("tiny_fashion_mnist")
  for split, count in (("train", 284), ("test", 64)):
    images = idx.read_idx(os.path.join(fashion_mnist_dir, idx._IDX_FILES[split][0] + ".gz"))
    labels = idx.read_idx(os.path.join(fashion_mnist_dir, idx._IDX_FILES[split][1] + ".gz"))
    write_idx(folder / idx._IDX_FILES[split][0], images[:count])
    write_idx(folder / idx._IDX_FILES[split][1], labels[:count])
  return folder


def train(data, run_dir, crash=None, export_dir=None):
  """python -m app.train on `data` into `run_dir`, killed at `crash` (CONVTRAIN_CRASH_AT)."""
  env = dict(os.environ, CONVTRAIN_CRASH_AT=crash) if crash else None
  export = [f"--export_dir={export_dir}"] if export_dir else ["--config.export.enabled=false"]
  return commands.run("app.train", *TRAIN, f"--config.data.data_dir={data}", *export,
                      f"--output_dir={run_dir}", env=env)


def weights(run_dir):
  from app.models import load_model  # pylint: disable=g-import-not-at-top
  return load_model(os.path.join(run_dir, "checkpoints", "last.keras")).get_weights()


def history(run_dir):
  with open(os.path.join(run_dir, "history.csv"), newline="") as f:
    rows = list(csv.reader(f)) or [[]]  # the header comes with the first epoch's row
  return rows[0], rows[1:]


def backup_state(run_dir):
  with open(os.path.join(run_dir, "backup", "state.json")) as f:
    return json.load(f)


def metrics(run_dir):
  with open(os.path.join(run_dir, "metrics.json")) as f:
    return json.load(f)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
  """The run never killed."""
  run_dir = tmp_path_factory.mktemp("reference") / "run"
  result = train(data_dir, run_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  return run_dir


def assert_same_run(run_dir, reference):
  """The weights, history.csv and test figures of `reference`, and no backup left."""
  for resumed, expected in zip(weights(run_dir), weights(reference)):
    np.testing.assert_allclose(resumed, expected, rtol=0, atol=1e-6)
  header, rows = history(run_dir)
  expected_header, expected_rows = history(reference)
  assert header == expected_header and len(rows) == len(expected_rows) == 2, rows
  assert all(len(row) == len(header) for row in rows), rows
  # The training loss and accuracy of an epoch resumed mid-way average its resumed batches only.
  for column in ("epoch", "val_loss", "val_accuracy", "learning_rate"):
    i = header.index(column)
    np.testing.assert_allclose([float(r[i]) for r in rows], [float(r[i]) for r in expected_rows],
                               rtol=0, atol=1e-6, err_msg=column)
  got, expected = metrics(run_dir), metrics(reference)
  for key in ("test_loss", "test_accuracy", "validation_loss", "epochs_completed"):
    assert got[key] == pytest.approx(expected[key], abs=1e-6), key
  assert not os.path.exists(os.path.join(run_dir, "backup"))


# The same command run again and again, each time killed at the next point (the counts are of
# the process's own batches and epochs).
KILL_POINTS = [
    # (CONVTRAIN_CRASH_AT, where, the backup the next run resumes from: (epoch, batches done),
    # "trained", or None: no backup, it starts over)
    ("batch_end:1", "in epoch 1, before the first backup", None),
    ("batch_end:3", "mid-epoch, after the step backup of batch 2", (0, 2)),
    ("batch_end:2", "on the epoch's last batch (from batch 2: its 4th of 4)", (0, 2)),
    ("epoch_written:1", "at the epoch's end: history row and checkpoints written, its backup "
     "not yet committed", (0, 2)),
    ("epoch_end:1", "between epochs, epoch 1's backup committed", (1, 0)),
    ("evaluate:1", "during the final evaluation, after the last epoch", "trained"),
    ("export:1", "during the export, its staging folder written", "trained"),
]


def test_a_run_killed_at_every_point_in_turn_ends_as_one_never_killed(tmp_path, data_dir,
                                                                      reference):
  run_dir, export_dir = tmp_path / "run", tmp_path / "exports"
  for crash, where, resumes_from in KILL_POINTS:
    result = train(data_dir, run_dir, crash, export_dir)
    assert result.returncode == KILLED, (where, result.stderr[-3000:])
    if resumes_from is None:
      assert not os.path.exists(run_dir / "backup" / "state.json"), where
      continue
    state = backup_state(run_dir)
    assert ("trained" if state["trained"] else (state["epoch"], state["batches_done"])) == \
        resumes_from, where
    header, rows = history(run_dir)
    assert all(len(row) == len(header) for row in rows), (where, rows)
  name = os.listdir(export_dir)[0]
  assert os.listdir(export_dir / name)[0].startswith(".export-")  # the killed export's staging

  result = train(data_dir, run_dir, export_dir=export_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  assert_same_run(run_dir, reference)
  assert os.listdir(export_dir / name) == ["1"]  # the killed export's staging folder removed
  got = metrics(run_dir)
  assert [(r["epoch"], r["batches_done"], r["trained"]) for r in got["resumes"]] == [
      (0, 2, False), (0, 2, False), (0, 2, False), (1, 0, False), (2, 0, True), (2, 0, True)]
  # The clock went on across the processes, each resume from where its backup had it.
  clocks = [r["elapsed_seconds"] for r in got["resumes"]]
  header, rows = history(run_dir)
  epoch_clocks = [float(row[header.index("elapsed_seconds")]) for row in rows]
  assert 0 < clocks[0] < epoch_clocks[0] <= clocks[3] < epoch_clocks[1] <= clocks[4] == clocks[5]
  assert got["train_seconds"] == pytest.approx(clocks[-1])  # nothing trained after it


def test_a_search_killed_in_a_trial_s_final_evaluation_completes_the_trial(tmp_path, data_dir):
  """The search killed with its trial (the trial's app.train kills its parent, then itself) once
  the trial has trained: the same command again finishes that trial from its trained backup,
  under the time budget it started with, its clock going on, and it is COMPLETED."""
  search_dir = tmp_path / "search"
  command = ["app.tune", f"--search_dir={search_dir}", "--tuner=random", "--max_trials=1",
             f"--config.data.data_dir={data_dir}", "--config.train.epochs=1",
             "--config.model.width=4", "--config.train.batch_size=64",
             "--config.search.space=optim.learning_rate=log(0.01, 0.1)",
             "--search_time_budget_seconds=600"]
  killed = commands.run(*command, env=dict(os.environ, CONVTRAIN_CRASH_AT="evaluate",
                                           CONVTRAIN_CRASH_PARENT="1"))
  assert killed.returncode == KILLED, killed.stderr[-3000:]
  trial_dir = search_dir / "trials" / "0"
  assert backup_state(trial_dir / "run")["trained"]
  again = commands.run(*command)
  assert again.returncode == 0, again.stderr[-3000:]
  result = json.loads((trial_dir / "result.json").read_text())
  assert result["status"] == "COMPLETED", result
  budget = [a for a in result["command"] if a.startswith("--config.train.time_budget_seconds=")]
  started = yaml.safe_load((trial_dir / "run" / "config.yaml").read_text())
  assert float(budget[0].split("=")[1]) == started["train"]["time_budget_seconds"]
  got = metrics(trial_dir / "run")
  assert [r["trained"] for r in got["resumes"]] == [True]
  assert result["metrics"]["train_seconds"] == got["train_seconds"] == \
      got["resumes"][0]["elapsed_seconds"] > 0
  # The weights evaluated are those the killed process trained: its last epoch's validation
  # (history.csv), on the same images, gave the same loss.
  header, rows = history(trial_dir / "run")
  assert len(rows) == 1
  assert got["validation_loss"] == pytest.approx(float(rows[-1][header.index("val_loss")]),
                                                 abs=1e-6)

