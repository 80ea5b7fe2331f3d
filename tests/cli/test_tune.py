"""python -m app.tune end to end on a Fashion-MNIST slice: each tuner kind, a planted diverging
trial, best_recipe.py trained by app.train (--retrain), resuming after kill -9, the fingerprint,
and bad input refused with one line and exit status 2. Each trial is an app.train subprocess."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from app.core import summaries
from tests import commands, tensorboard_events

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# 460 training images in 8 steps of 64, 52 held out for validation, one epoch, width 4.
TINY = ["--config.data.limit=512", "--config.train.epochs=1", "--config.optim.warmup_epochs=0",
        "--config.model.width=4", "--config.train.batch_size=64"]
LEARNING_RATE = "--config.search.space=optim.learning_rate=log(0.01, 0.1)"


def tune(search_dir, *args, timeout=300):
  return commands.run("app.tune", f"--search_dir={search_dir}", *TINY, *args, timeout=timeout)


def leaderboard(search_dir):
  with open(os.path.join(search_dir, "leaderboard.csv")) as f:
    return list(csv.DictReader(f))


def error_lines(result):
  return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.slow
def test_diverging_trial_fails_the_search_goes_on_and_the_best_recipe_retrains(tmp_path):
  search_dir, exports = tmp_path / "search", tmp_path / "exports"
  args = ["--tuner=random", "--max_trials=2", f"--config.export.dir={exports}",
          "--config.search.space=optim.learning_rate=choice(0.05, 100000000.0)"]
  result = tune(search_dir, *args, "--retrain")
  assert result.returncode == 0, result.stderr[-3000:]
  rows = {row["optim.learning_rate"]: row for row in leaderboard(search_dir)}
  assert rows["100000000.0"]["status"] == "FAILED"
  assert "diverged" in rows["100000000.0"]["reason"]
  assert rows["0.05"]["status"] == "COMPLETED" and rows["0.05"]["rank"] == "1"
  assert "| 2 | " in (search_dir / "leaderboard.md").read_text()
  # best_recipe.py is an app.train recipe: --retrain trained it as the base recipe validates
  # (the default holds 10% of the 512 training images out for best.keras, never the test split).
  recipe = (search_dir / "best_recipe.py").read_text()
  assert "config.optim.learning_rate = 0.05" in recipe
  metrics = json.loads((search_dir / "retrain" / "metrics.json").read_text())
  assert (metrics["num_train"], metrics["num_validation"]) == (461, 51)
  assert metrics["selected_on"] == "validation" and metrics["export_path"].startswith(str(exports))
  # The same command again resumes the finished search: nothing is trained twice.
  again = tune(search_dir, *args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "2 trials (1 completed)" in again.stdout and "trial 0" not in again.stdout
  # Another space on the same directory is refused.
  other = tune(search_dir, *args[:-1], LEARNING_RATE)
  assert other.returncode == 2
  assert len(error_lines(other)) == 1 and "different search space/data (changed: space" in \
      error_lines(other)[0], other.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("tuner, extra", [
    ("bayesian", ["--objective=time_to_target", "--target_accuracy=0.05",
                  "--trial_time_budget_seconds=120"]),
    ("hyperband", ["--config.train.epochs=2", "--config.search.hyperband_factor=2"]),
])
def test_each_tuner_kind_runs_a_tiny_search(tmp_path, tuner, extra):
  search_dir = tmp_path / "search"
  result = tune(search_dir, f"--tuner={tuner}", "--max_trials=2", LEARNING_RATE, *extra)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = leaderboard(search_dir)
  assert [row["status"] for row in rows] == ["COMPLETED", "COMPLETED"], rows
  if tuner == "hyperband":
    assert {row["tuner/epochs"] for row in rows} <= {"1", "2"}
  else:
    assert float(rows[0]["time_to_target"]) <= float(rows[1]["time_to_target"])
    trial = json.loads((search_dir / "trials" / rows[0]["trial"] / "result.json").read_text())
    assert "--config.train.time_budget_seconds=120.0" in trial["command"]
  assert (search_dir / "best_recipe.py").exists()


@pytest.mark.slow
def test_a_killed_search_resumes_without_redoing_finished_trials(tmp_path):
  search_dir = tmp_path / "search"
  command = [sys.executable, "-m", "app.tune", f"--search_dir={search_dir}", *TINY,
             "--tuner=random", "--max_trials=3", LEARNING_RATE]
  process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  first, second = search_dir / "trials" / "0" / "result.json", search_dir / "trials" / "1"
  deadline = time.time() + 240
  while not (first.exists() and second.exists()) and time.time() < deadline:
    assert process.poll() is None, "the search ended before the kill"
    time.sleep(0.1)
  process.send_signal(signal.SIGKILL)  # mid-way through trial 1
  process.wait()
  finished = first.stat().st_mtime_ns
  assert not (second / "result.json").exists()
  again = commands.run(*command[2:])
  assert again.returncode == 0, again.stderr[-3000:]
  assert [row["status"] for row in leaderboard(search_dir)] == ["COMPLETED"] * 3
  assert first.stat().st_mtime_ns == finished  # trial 0 was not run again
  assert "trial 0 on" not in again.stdout and "trial 1 on" in again.stdout
  # The HParams dashboard, as TensorBoard's own plugin reads it: one session per trial, each
  # written once (trial 0 before the kill, 1 and 2 after the resume), with the leaderboard's
  # values; the trial's own epochs lie under its session.
  experiment, sessions = tensorboard_events.hparams(search_dir)
  assert experiment == {"hparams": {"optim.learning_rate": {"domainInterval": {
      "minValue": 0.01, "maxValue": 0.1}}}, "metrics": ["val_accuracy", "train_seconds"]}
  assert set(sessions) == {"trials/0", "trials/1", "trials/2"}
  for row in leaderboard(search_dir):
    session = sessions[f"trials/{row['trial']}"]
    assert session["status"] == "STATUS_SUCCESS"
    assert session["hparams"] == {"optim.learning_rate": float(row["optim.learning_rate"])}
    assert session["metrics"] == pytest.approx(
        {k: float(row[k]) for k in ("val_accuracy", "train_seconds")}, rel=1e-6)
    assert len(summaries.event_files(search_dir / "trials" / row["trial"])) == 1
  epochs = tensorboard_events.runs(search_dir)["trials/0/run/tensorboard/validation"]
  assert "epoch_accuracy" in epochs


def test_no_trial_starts_after_the_search_time_budget(tmp_path):
  search_dir = tmp_path / "search"
  result = tune(search_dir, "--tuner=random", "--max_trials=3", LEARNING_RATE,
                "--search_time_budget_seconds=2")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "search time budget (2 s) spent: no new trial" in result.stdout
  rows = leaderboard(search_dir)
  assert len(rows) == 1 and rows[0]["status"] == "COMPLETED", rows
  trial = json.loads((search_dir / "trials" / rows[0]["trial"] / "result.json").read_text())
  budget = [a for a in trial["command"] if a.startswith("--config.train.time_budget_seconds=")]
  assert len(budget) == 1 and float(budget[0].split("=")[1]) <= 2.0  # what was left of the 2 s
  # Issue 21: the trial's epoch as it ended, the leaderboard after it and the time left.
  trial_id = rows[0]["trial"]
  assert f"trial {trial_id}: epoch 1/1 (" in result.stdout, result.stdout
  assert (f"leaderboard after trial {trial_id} (top 1 of 1 completed):\n  rank  trial  "
          "val_accuracy  train_seconds  optim.learning_rate\n  1 ") in result.stdout, result.stdout
  assert re.search(r"^search: 1 of at most 3 trials done \(one per \d+s\); at most 0s left \(the "
                   r"search's time budget\)$", result.stdout, re.M), result.stdout
  # The trial's stdout is a file: app.train's train.progress=auto wrote a line per epoch, no bar.
  log = (search_dir / "trials" / trial_id / "train.log").read_text()
  assert re.search(r"^\d+/\d+ - \d+s - ", log, re.M) and "\u2501" not in log, log[-3000:]


@pytest.mark.parametrize("args, message", [
    (["--config.search.space= "], "the search space is empty"),
    (["--config.search.space=model.width=int(40, 16)"], "bounds out of order"),
    (["--config.search.space=train.batch_size=choice(64, 64)"], "lists a value twice"),
    ([LEARNING_RATE, "--config.optim.learning_rate=0.1"], "is both searched"),
    ([LEARNING_RATE, "--tuner=grid"], "unknown tuner 'grid'"),
    ([LEARNING_RATE, "--objective=loss"], "unknown objective 'loss'"),
    ([LEARNING_RATE, "--search_time_budget_seconds=-1"], "must be >= 0"),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, args, message):
  result = tune(tmp_path / "search", *args)
  assert result.returncode == 2, result.stderr[-3000:]
  assert len(error_lines(result)) == 1 and message in error_lines(result)[0], result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "search").exists()


def test_a_search_dir_that_is_a_file_is_refused_in_one_line(tmp_path):
  (tmp_path / "a_file").write_text("not a folder\n")
  result = tune(tmp_path / "a_file", LEARNING_RATE)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: search dir {tmp_path / 'a_file'} is a file, not a folder; pass a folder to "
      "--search_dir")
