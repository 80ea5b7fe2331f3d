"""python -m app.train --resume=RUN_DIR|latest continues an unfinished run from its config.yaml
alone, refusing flags that would change it; --config=RUN_DIR/config.yaml trains it again in a
new run directory. The config side is tests/core/test_rerun.py's."""

import json
import os
import signal

import pytest

from tests import commands
from tests.train.test_resume_points import data_dir  # noqa: F401  pylint: disable=unused-import

TINY = ["--model=simple_cnn", "--config.model.width=4", "--mixed_precision=float32", "--epochs=1",
        "--batch_size=64", "--config.export.enabled=false"]


def error_lines(result):
  return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("args, expected", [
    (["--resume=runs/x", "--epochs=3"], "so --epochs cannot change it; drop it, or train the run "
     "again with changes in a new run directory: --config=runs/x/config.yaml and the flags"),
    (["--resume=latest", "--seed=1", "--config.train.label_smoothing=0.1"],
     "so --seed, --config.train.label_smoothing cannot change it; drop them"),
    (["--resume=runs/x", f"--config={commands.REPO}/configs/cifar10.py"],
     "so --config cannot change it"),
    (["--resume=latest"], "--resume=latest: no unfinished run in "),
    (["--resume=runs/x"], "--resume=runs/x: runs/x holds no run (no config.yaml)"),
    (["--resume="], "--resume is empty; pass --resume=RUN_DIR"),
])
def test_resume_refuses_what_would_change_the_run_in_one_line(tmp_path, args, expected):
  result = commands.run("app.train", *args, cwd=tmp_path)
  assert result.returncode == 2 and len(error_lines(result)) == 1, result.stderr[-2000:]
  assert expected in error_lines(result)[0], error_lines(result)
  assert not os.path.exists(tmp_path / "runs")


def test_resume_latest_continues_a_killed_run_and_its_config_yaml_trains_it_again(tmp_path,
                                                                                  data_dir):  # noqa: F811
  """A run without --output_dir (runs/<name>-<UTC time>) killed after training, before its
  evaluation: --resume=latest finishes it from its backup (a flag of how this machine runs it,
  --progress, allowed), and its config.yaml as --config trains the same run anew."""
  data = f"--config.data.data_dir={data_dir}"
  killed = commands.run("app.train", *TINY, data, cwd=tmp_path,
                        env=dict(os.environ, CONVTRAIN_CRASH_AT="evaluate:1"))
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  (run_name,) = os.listdir(tmp_path / "runs")
  run_dir = tmp_path / "runs" / run_name
  assert not (run_dir / "metrics.json").exists()

  resumed = commands.run("app.train", "--resume=latest", "--progress=epoch", cwd=tmp_path)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"run dir {os.path.join('runs', run_name)}" in resumed.stdout
  metrics = json.loads((run_dir / "metrics.json").read_text())
  assert [resume["trained"] for resume in metrics["resumes"]] == [True]  # nothing trained twice

  again = commands.run("app.train", f"--config={run_dir / 'config.yaml'}", cwd=tmp_path)
  assert again.returncode == 0, again.stderr[-3000:]
  (new_name,) = set(os.listdir(tmp_path / "runs")) - {run_name}
  reproduced = json.loads((tmp_path / "runs" / new_name / "metrics.json").read_text())
  assert reproduced["resumes"] == [] and reproduced["num_train"] == metrics["num_train"]
  assert reproduced["test_loss"] == pytest.approx(metrics["test_loss"], abs=1e-6)
