"""python -m app.lr_find as a user runs it."""

import json

from tests import commands


def run(*args):
  return commands.run("app.lr_find", *args, timeout=600)


def test_lr_find_writes_curve_and_suggestion(tmp_path):
  result = run("--config.data.limit=2000", "--config.model.width=8", "--steps=40",
               f"--output_dir={tmp_path}")
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.load(open(tmp_path / "lr_find.json"))
  assert f"suggested learning rate {summary['suggested_learning_rate']:.3g}" in result.stdout
  assert (tmp_path / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
  assert len(open(tmp_path / "lr_find.csv").readlines()) > 10


def test_bad_bounds_are_one_line_exit_2(tmp_path):
  result = run("--min_lr=1", "--max_lr=0.1", f"--output_dir={tmp_path / 'out'}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("error: need 0 < min_lr < max_lr")
  assert not (tmp_path / "out").exists()


def test_an_output_dir_that_is_a_file_is_refused_before_the_sweep(tmp_path):
  (tmp_path / "a_file").write_text("not a folder\n")
  result = run("--steps=40", f"--output_dir={tmp_path / 'a_file'}")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: output dir {tmp_path / 'a_file'} is a file, not a folder; pass a folder to "
      "--output_dir")
