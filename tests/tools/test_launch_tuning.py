"""tools/launch_tuning.py: a KerasTuner chief and two workers on localhost share one oracle."""

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
