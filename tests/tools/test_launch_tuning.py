"""tools/launch_tuning.py: a KerasTuner chief and two workers on localhost share one oracle; with
--gpus each worker sees one GPU (--dry_run shows what each process would be started with)."""

import csv
import json
import os

import pytest

from tests import commands
from tests.cli.test_tune import LEARNING_RATE, TINY


@pytest.mark.slow
def test_chief_and_two_workers_split_the_trials_of_one_search(tmp_path):
  search_dir = tmp_path / "search"
  result = commands.run("tools/launch_tuning.py", "--workers=2", "--", f"--search_dir={search_dir}",
                        *TINY, "--tuner=random", "--max_trials=3", LEARNING_RATE, timeout=400)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert "[chief] 3 trials (3 completed)" in result.stdout
  with open(search_dir / "leaderboard.csv") as f:
    trial_ids = sorted(row["trial"] for row in csv.DictReader(f))
  assert trial_ids == ["0", "1", "2"]  # one oracle: no trial id twice
  tuners = [json.loads((search_dir / "trials" / t / "result.json").read_text())["tuner_id"]
            for t in trial_ids]
  assert set(tuners) == {"tuner0", "tuner1"}, tuners
  assert os.path.exists(search_dir / "best_recipe.py")


def _started_with(stdout):
  """{process name: {variable: value}} from --dry_run's '[name] VAR=value ... command' lines."""
  import shlex  # pylint: disable=g-import-not-at-top
  started = {}
  for line in stdout.splitlines():
    if line.startswith("[") and not line.startswith("[launcher]"):
      name, rest = line[1:].split("] ", 1)
      started[name] = dict(word.split("=", 1) for word in shlex.split(rest)
                           if "=" in word and word.split("=", 1)[0].isupper())
  return started


def test_gpus_pin_each_worker_to_one_round_robin_and_show_the_chief_them_all():
  result = commands.run("tools/launch_tuning.py", "--workers=3", "--gpus=0,1", "--dry_run", "--",
                        "--search_dir=runs/never_started")
  assert result.returncode == 0, result.stderr
  started = _started_with(result.stdout)
  assert {name: env["CUDA_VISIBLE_DEVICES"] for name, env in started.items()} == {
      "chief": "0,1", "tuner0": "0", "tuner1": "1", "tuner2": "0"}
  assert {env["CUDA_DEVICE_ORDER"] for env in started.values()} == {"PCI_BUS_ID"}  # nvidia-smi's
  ports = {env["KERASTUNER_ORACLE_PORT"] for env in started.values()}  # one oracle
  assert len(ports) == 1 and ports.pop().isdigit()
  assert "[launcher] GPU 0: tuner0, tuner2; GPU 1: tuner1 (3 processes on 2 GPU(s)" in result.stdout
  assert not os.path.exists(os.path.join(commands.REPO, "runs", "never_started"))


def test_without_gpus_the_environment_keeps_every_gpu_and_bad_gpus_are_refused():
  result = commands.run("tools/launch_tuning.py", "--workers=1", "--dry_run")
  assert result.returncode == 0, result.stderr
  assert all("CUDA_VISIBLE_DEVICES" not in env for env in _started_with(result.stdout).values())
  refused = commands.run("tools/launch_tuning.py", "--gpus=0,,1", "--dry_run")
  assert refused.returncode == 2 and refused.stderr.startswith("error: --gpus=0,,1: ''"), \
      refused.stderr
