"""What a search prints as it runs (app/tune/progress.py): the leaderboard's top after each trial,
the time it may still take, and the running trial's epochs from its history.csv. In-process, on
tables and files made here; tests/cli/test_tune.py checks a real search prints them."""

import math

import pytest

from app.tune import progress


def row(rank, trial, score, status="COMPLETED", **values):
  return {"rank": rank, "trial": trial, "status": status,
          "val_accuracy": score if status == "COMPLETED" else None,
          "train_seconds": 12.34 if status == "COMPLETED" else None, **values,
          "reason": "" if status == "COMPLETED" else "diverged: final loss nan"}


def test_the_leaderboard_shows_the_best_trials_with_their_values_and_scores():
  table = [row(1, "2", 0.8405, **{"optim.learning_rate": 0.1183, "model.width": 24}),
           row(2, "0", 0.81234567, **{"optim.learning_rate": 0.05, "model.width": 16}),
           row(3, "3", 0.5, **{"optim.learning_rate": 0.5, "model.width": 8}),
           row(4, "1", None, "FAILED", **{"optim.learning_rate": 9.0, "model.width": 8})]
  lines = progress.leaderboard_lines(table, "val_accuracy", ["optim.learning_rate", "model.width"],
                                     last_trial="3", top=2)
  assert lines == [
      "leaderboard after trial 3 (top 2 of 3 completed, 1 failed):",
      "  rank  trial  val_accuracy  train_seconds  optim.learning_rate  model.width",
      "  1     2      0.8405        12.34          0.1183               24",
      "  2     0      0.8123        12.34          0.05                 16",
  ]


def test_another_objective_comes_first_and_val_accuracy_beside_it():
  table = [dict(row(1, "0", 0.9, **{"tuner/epochs": 2}), time_to_target=41.5)]
  header = progress.leaderboard_lines(table, "time_to_target", ["model.width", "tuner/epochs"])[1]
  header = header.split()
  assert header == ["rank", "trial", "time_to_target", "val_accuracy", "train_seconds",
                    "tuner/epochs"]
  assert progress.leaderboard_lines([row(1, "0", None, "FAILED")], "val_accuracy", [], "0") == [
      "leaderboard after trial 0: no trial completed yet (1 failed)"]


@pytest.mark.parametrize("seconds, text", [(0.4, "0s"), (45, "45s"), (312, "5m12s"),
                                           (3599.6, "1h00m"), (3725, "1h02m")])
def test_durations_read_as_a_clock(seconds, text):
  assert progress.duration(seconds) == text


@pytest.mark.parametrize("args, line", [
    # 3 of 10 done, all in this process's 312 s: 7 more at 104 s each.
    ((3, 10, 3, 312.0), "search: 3 of at most 10 trials done (one per 1m44s); about 12m08s left"),
    # A resumed search: 6 done before, 2 here in 200 s; the pace is this process's.
    ((8, 10, 2, 200.0), "search: 8 of at most 10 trials done (one per 1m40s); about 3m20s left"),
    # The time budget ends it first.
    ((3, 10, 3, 312.0, 100.0), "search: 3 of at most 10 trials done (one per 1m44s); at most "
                               "1m40s left (the search's time budget)"),
    ((3, 10, 3, 312.0, -5.0), "search: 3 of at most 10 trials done (one per 1m44s); at most 0s "
                              "left (the search's time budget)"),
    # Every trial done: nothing to estimate.
    ((10, 10, 10, 900.0, 50.0), "search: 10 of at most 10 trials done (one per 1m30s)"),
    # No trial ended here yet: only a budget says anything.
    ((4, 10, 0, 30.0), "search: 4 of at most 10 trials done"),
    ((4, 10, 0, 30.0, 600.0), "search: 4 of at most 10 trials done; at most 10m00s left (the "
                              "search's time budget)"),
])
def test_the_time_left_comes_from_the_pace_so_far_and_the_search_limits(args, line):
  assert progress.status_line(*args) == line


def test_time_left_is_none_when_nothing_says():
  assert progress.time_left(4, 10, 0, 30.0) == (None, False)
  assert progress.time_left(4, 10, 2, 30.0, math.inf) == (90.0, False)


HEADER = "epoch,accuracy,loss,val_accuracy,val_loss\n"


def test_each_epoch_is_relayed_once_as_history_csv_gains_it(tmp_path):
  run_dir, shown = tmp_path / "run", []
  now = [100.0]
  relay = progress.EpochRelay(str(run_dir), "trial 3", clock=lambda: now[0],
                              out=lambda line, flush: shown.append(line))
  relay.poll()  # no run directory yet
  run_dir.mkdir()
  (run_dir / "config.yaml").write_text("train:\n  epochs: 8\n")
  history = run_dir / "history.csv"
  history.write_text(HEADER + "0,0.5,1.25,0.61234,1.0\n1,0.7,0.9,0.7")  # epoch 2 half written
  now[0] = 141.0
  relay.poll()
  assert shown == ["trial 3: epoch 1/8 (41s in)  accuracy 0.5  loss 1.25  val_accuracy 0.6123  "
                   "val_loss 1"]
  history.write_text(HEADER + "0,0.5,1.25,0.61234,1.0\n1,0.7,0.9,,\n")  # not validated: no val_
  relay.poll()
  relay.poll()
  assert shown[1:] == ["trial 3: epoch 2/8 (41s in)  accuracy 0.7  loss 0.9"]
  # A retry rewrites history.csv without the epoch it trains again: shown again when it returns.
  history.write_text(HEADER + "0,0.5,1.25,0.61234,1.0\n")
  relay.poll()
  history.write_text(HEADER + "0,0.5,1.25,0.61234,1.0\n1,0.6,1.0,0.65,0.95\n")
  relay.poll()
  assert len(shown) == 3 and shown[2].startswith("trial 3: epoch 2/8 (41s in)  accuracy 0.6")


def test_the_relay_shows_the_last_epoch_when_the_trial_ends(tmp_path, capsys):
  (tmp_path / "history.csv").write_text(HEADER)
  with progress.relayed_epochs(str(tmp_path), "trial 0", poll_seconds=60):
    (tmp_path / "history.csv").write_text(HEADER + "0,0.5,1.25,0.6,1.0\n")
  assert capsys.readouterr().out.startswith("trial 0: epoch 1 (0s in)  accuracy 0.5")
