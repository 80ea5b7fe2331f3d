"""What a search prints while it runs, beside each trial's start and score (app/tune/search.py):
the running trial's epochs as they end, the leaderboard's top after every trial, and the time the
search may still take. Console only: the search directory's files are app/tune/results.py's.

  trial 2: epoch 3/8 (41s in)  accuracy 0.8312  elapsed_seconds 30.2  ...  val_accuracy 0.8405
  leaderboard after trial 2 (top 3 of 3 completed, 1 failed):
    rank  trial  val_accuracy  train_seconds  optim.learning_rate  model.width
    1     2      0.8405        98.2           0.1183               24
    ...
  search: 4 of at most 10 trials done (one per 1m44s); about 10m24s left

The epochs come from the trial's history.csv (app.train appends a row per epoch), not from its
train.log: the rows are the run's own record, whatever Keras prints (the trial's stdout is a
file, so app.train's train.progress=auto writes one line per epoch there, never a bar).
"""

import contextlib
import csv
import io
import math
import os
import threading
import time

import yaml

from app.train.callbacks import HISTORY_CSV

TOP = 5  # trials the leaderboard shows after each trial
POLL_SECONDS = 1.0  # how often the running trial's history.csv is read
_ENDED = ("COMPLETED", "FAILED", "INVALID", "STOPPED")  # KerasTuner's TrialStatus, not running


def duration(seconds):
  """45 -> "45s", 312 -> "5m12s", 3725 -> "1h02m"."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _cell(value):
  if isinstance(value, float):
    return f"{value:.4g}"
  return "" if value is None else str(value)


# === The leaderboard as it grows ===

def leaderboard_lines(table, objective_name, value_keys, last_trial=None, top=TOP):
  """The leaderboard's best `top` completed trials as aligned lines under a heading: rank, trial,
  the objective, val_accuracy (when the objective is another), train_seconds and the trial's
  values of `value_keys` (those the trials shown have). `table`: app.tune.results.rows (completed
  trials first, best first)."""
  completed = [row for row in table if row["status"] == "COMPLETED"]
  failed = sum(row["status"] == "FAILED" for row in table)
  after = f" after trial {last_trial}" if last_trial is not None else ""
  if not completed:
    return [f"leaderboard{after}: no trial completed yet" + (f" ({failed} failed)" if failed
                                                              else "")]
  heading = (f"leaderboard{after} (top {min(top, len(completed))} of {len(completed)} completed"
             + (f", {failed} failed" if failed else "") + "):")
  scores = list(dict.fromkeys([objective_name, "val_accuracy", "train_seconds"]))
  values = [key for key in value_keys if any(key in row for row in completed[:top])]
  columns = ["rank", "trial", *scores, *values]
  cells = [columns] + [[_cell(row.get(c)) for c in columns] for row in completed[:top]]
  widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
  return [heading] + ["  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths))
                      .rstrip() for line in cells]


# === The time left ===

def time_left(ended, max_trials, ended_here, seconds_here, budget_left=math.inf):
  """(seconds, capped) the search may still take: the trials left of `max_trials` (`ended` of
  them done, this process's and a resumed search's earlier ones) at the pace of the `ended_here`
  trials that ended in the `seconds_here` this process has searched (so trials running side by
  side on workers count), or `budget_left`, what is left of the search's time budget (inf: none),
  when that is less (capped). seconds is None when neither says: no trial ended here yet and no
  budget. max_trials bounds the count: Hyperband and a small space may end sooner."""
  left = max(max_trials - ended, 0)
  by_trials = left * seconds_here / ended_here if ended_here else (0.0 if not left else math.inf)
  if by_trials <= budget_left:
    return (None if by_trials == math.inf else by_trials), False
  return max(budget_left, 0.0), True


def status_line(ended, max_trials, ended_here, seconds_here, budget_left=math.inf):
  """`search: 4 of at most 10 trials done (one per 1m44s); about 10m24s left`."""
  line = f"search: {ended} of at most {max_trials} trials done"
  if ended_here:
    line += f" (one per {duration(seconds_here / ended_here)})"
  seconds, capped = time_left(ended, max_trials, ended_here, seconds_here, budget_left)
  if capped:
    return f"{line}; at most {duration(seconds)} left (the search's time budget)"
  if seconds:
    return f"{line}; about {duration(seconds)} left"
  return line


class SearchProgress:
  """Prints the leaderboard's top and the time left after each trial, wherever the oracle lives
  (a lone search, or the chief serving workers: it sees every trial end). Its clock starts when
  it is made, with the search's oracle."""

  def __init__(self, plan, clock=time.time, out=print):
    self.plan, self.clock, self.out = plan, clock, out
    self.started, self.ended_here = clock(), 0

  def trial_ended(self, trial, all_trials):
    from app.tune import results  # pylint: disable=g-import-not-at-top
    self.ended_here += 1
    all_trials = list(all_trials)
    table = results.rows(all_trials, self.plan.objective, self.plan.search_dir)
    searched = [param.key for param in self.plan.params] + ["tuner/epochs"]  # and Hyperband's
    lines = leaderboard_lines(table, self.plan.objective.name, searched, trial.trial_id)
    ended = sum(t.status in _ENDED for t in all_trials)
    lines.append(status_line(ended, self.plan.search.max_trials, self.ended_here,
                             self.clock() - self.started, self.plan.seconds_left()))
    self.out("\n".join(lines), flush=True)


# === The running trial's epochs ===

def _read_complete_rows(path):
  """history.csv's rows as dicts, without a last line still being written (no newline yet)."""
  try:
    with open(path, newline="") as f:
      text = f.read()
  except OSError:
    return []
  return list(csv.DictReader(io.StringIO(text[:text.rfind("\n") + 1])))


class EpochRelay:
  """Prints `<label>: epoch N/M (41s in)  accuracy ...  val_loss ...` once for each epoch a run
  directory's history.csv gains; M is the run's train.epochs from its config.yaml (as app.train
  resolved it: a --time_budget plan included), left out until that file exists."""

  def __init__(self, run_dir, label, clock=time.time, out=print):
    self.run_dir, self.label, self.clock, self.out = run_dir, label, clock, out
    self.started, self.last_shown, self.epochs = clock(), -1, None

  def _total_epochs(self):
    if self.epochs is None:
      try:
        with open(os.path.join(self.run_dir, "config.yaml")) as f:
          self.epochs = int(yaml.safe_load(f)["train"]["epochs"])
      except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
        pass  # not written yet (or not ours): the line goes without it
    return self.epochs

  def poll(self):
    rows = []
    for row in _read_complete_rows(os.path.join(self.run_dir, HISTORY_CSV)):
      try:
        rows.append((int(row.pop("epoch")), row))
      except (KeyError, TypeError, ValueError):
        continue
    # Fewer epochs than shown: app.train dropped rows it trains again (a divergence retry, or a
    # resumed run those after its backup); they are shown again as they come back.
    self.last_shown = min(self.last_shown, max((epoch for epoch, _ in rows), default=-1))
    for epoch, row in rows:
      if epoch <= self.last_shown:
        continue
      self.last_shown = epoch
      total = self._total_epochs()
      figures = "  ".join(f"{key} {_figure(value)}" for key, value in row.items()
                          if value not in (None, "", "NA"))
      self.out(f"{self.label}: epoch {epoch + 1}{f'/{total}' if total else ''} "
               f"({duration(self.clock() - self.started)} in)  {figures}", flush=True)


def _figure(text):
  try:
    return f"{float(text):.4g}"
  except ValueError:
    return text


@contextlib.contextmanager
def relayed_epochs(run_dir, label, poll_seconds=POLL_SECONDS):
  """While the block runs (a trial's app.train subprocess), an EpochRelay on `run_dir` polled
  every `poll_seconds` by a thread, and once more at the end, so no epoch goes unshown."""
  relay, stop = EpochRelay(run_dir, label), threading.Event()

  def watch():
    while not stop.wait(poll_seconds):
      relay.poll()

  thread = threading.Thread(target=watch, name=f"{label} epochs", daemon=True)
  thread.start()
  try:
    yield relay
  finally:
    stop.set()
    thread.join()
    relay.poll()
