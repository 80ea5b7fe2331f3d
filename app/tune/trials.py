"""One trial = one `python -m app.train` subprocess, so each trial's memory goes back to the OS
when it ends (KerasTuner's in-process trials grow memory across trials) and a crash is the trial's
alone.

<search_dir>/trials/<trial id>/ holds run/ (app.train's run directory: config.yaml, history.csv,
metrics.json, checkpoints/), train.log (the trial's stdout and stderr) and result.json (the
command, which tuner ran it, its status, score and, for a failed trial, the reason). A failed or
diverged trial raises keras_tuner.errors.FailedTrialError: KerasTuner marks it FAILED and the
search goes on. A trial interrupted with the search is run again by the same command (the time
budget it started with included): app.train resumes it from its backup, its clock going on, or
it starts over if it had none yet.
"""

import csv
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import time

import yaml
from keras_tuner import errors

from app.core import files

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HYPERBAND_KEYS = "tuner/"  # the Hyperband oracle's own values (epochs, bracket, parent trial)


@dataclasses.dataclass(frozen=True)
class Plan:
  """What every trial of a search shares."""
  recipe: str  # absolute path of the --config recipe
  overrides: dict  # the command line's --config.<key> overrides (and shortcut flags), by key
  params: tuple  # app.tune.space.Param
  search: object  # the recipe's search section (ConfigDict)
  objective: object  # app.tune.objectives.Objective
  search_dir: str
  epochs: int  # the recipe's train.epochs
  deadline: float = 0.0  # time.time() at which search.time_budget_seconds runs out; 0 = none

  def seconds_left(self):
    """Wall seconds until the search's deadline (inf without one)."""
    return self.deadline - time.time() if self.deadline else math.inf


def write_json(path, value):
  """Atomically (app/core/files.py); values JSON cannot hold are written as their str()."""
  files.write_json(path, value, default=str)


def trial_run_dir(plan, trial_id):
  """<search_dir>/trials/<trial id>/run: the trial's app.train run directory."""
  return os.path.join(plan.search_dir, "trials", trial_id, "run")


def override_flag(key, value):
  return f"--config.{key}={value}"


def trial_values(plan, values):
  """The searched keys' values of a trial, and for Hyperband its epochs: a Hyperband round of N
  epochs trains a fresh model with the recipe's whole schedule squeezed into N epochs (app.train
  scales the recipe's lengths in epochs to them: app.config.scale_lengths), rather than
  continuing its parent's checkpoint. NumPy scalars (Bayesian
  optimisation proposes np.float64) come back as Python's, so a recipe file shows 0.09, never
  np.float64(0.09)."""
  chosen = {k: v.item() if hasattr(v, "item") else v for k, v in values.items()
            if not k.startswith(HYPERBAND_KEYS)}
  epochs = values.get("tuner/epochs")
  if epochs and epochs != plan.epochs:
    chosen["train.epochs"] = int(epochs)
  return chosen


def command(plan, values, run_dir, started_budget=None):
  """The trial's app.train command line. `started_budget`: the train.time_budget_seconds an
  interrupted trial started with (_started_budget), which its resumption keeps."""
  search = plan.search
  args = [sys.executable, "-m", "app.train", f"--config={plan.recipe}"]
  args += [override_flag(k, v) for k, v in plan.overrides.items()]
  args += [override_flag(k, v) for k, v in trial_values(plan, values).items()]
  args += [override_flag("data.validation_split", search.validation_split),
           override_flag("export.enabled", False), f"--output_dir={run_dir}"]
  budget = min(search.trial_time_budget_seconds or math.inf, plan.seconds_left())
  if started_budget is not None:  # resumed: its clock goes on from its backup, its budget too
    budget = started_budget or math.inf
  if budget < math.inf:  # the trial's own cap, or what is left of the search's
    args.append(override_flag("train.time_budget_seconds", round(max(budget, 1.0), 1)))
  return args


def _started_budget(run_dir):
  """The train.time_budget_seconds (0 = none) of the interrupted trial app.train will resume in
  `run_dir` (its config.yaml), or None when there is none. The search's time left has changed
  since it started, and app.train resumes a run only under the settings it started with; its
  clock goes on from the backup (app/train/callbacks.py Timing), so that budget still caps the
  trial's whole training."""
  path = os.path.join(run_dir, "config.yaml")
  if not (os.path.isfile(path) and os.path.exists(os.path.join(run_dir, "backup", "state.json"))):
    return None
  try:
    with open(path) as f:
      return float(yaml.safe_load(f)["train"]["time_budget_seconds"])
  except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
    return None  # app.train says what is wrong with it


def environment():
  """The trials' environment: app importable from any working directory (relative paths in
  the overrides keep meaning what they meant on the command line)."""
  path = os.environ.get("PYTHONPATH")
  return dict(os.environ, PYTHONPATH=REPO + (os.pathsep + path if path else ""))


# Linux: the trial is killed when the search process dies (even by kill -9), so a resumed search
# never finds the interrupted trial still writing its run directory. Set in the child, which then
# execs app.train (the setting survives exec): a preexec_fn would run Python between fork and
# exec, which aborts when gRPC (a distributed worker's oracle client) is loaded.
_DIE_WITH_PARENT = ("import ctypes, signal, os, sys\n"
                    "try:\n  ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG\n"
                    "except (OSError, AttributeError):\n  pass\n"
                    "os.execv(sys.executable, [sys.executable] + sys.argv[1:])")


def read_history(run_dir):
  path = os.path.join(run_dir, "history.csv")
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    return list(csv.DictReader(f))


def _diverged(rows):
  """A finished run whose last epoch's loss or validation loss is not finite (a huge but finite
  training loss passes app.train's DivergenceGuard when no earlier epoch set its reference)."""
  last = rows[-1] if rows else {}
  for column in ("loss", "val_loss"):
    try:
      value = float(last.get(column) or 0.0)
    except ValueError:
      continue
    if not math.isfinite(value):
      return f"final {column} {value}"
  return None


def _reason(log_path):
  """The trial's own error line (app.train's one-line errors), else its last line."""
  with open(log_path, errors="replace") as f:
    lines = [line.strip() for line in f if line.strip()]
  errors_ = [line for line in lines if line.startswith("error:")]
  return (errors_ or lines or ["no output"])[-1][:500]


def _prepare(run_dir):
  """An interrupted trial's run dir: kept when app.train can resume it (a backup, or finished);
  otherwise removed, since app.train starts only in a new or empty directory."""
  finished = os.path.exists(os.path.join(run_dir, "metrics.json"))
  resumable = os.path.exists(os.path.join(run_dir, "backup", "state.json"))
  if os.path.isdir(run_dir) and not (finished or resumable):
    shutil.rmtree(run_dir)
  return finished


def run(plan, trial_id, values, tuner_id):
  """Runs one trial; returns its metrics for the oracle {objective: score, val_accuracy,
  train_seconds}; raises FailedTrialError for a failed, diverged or unscored trial."""
  trial_dir = os.path.join(plan.search_dir, "trials", trial_id)
  run_dir, log_path = trial_run_dir(plan, trial_id), os.path.join(trial_dir, "train.log")
  os.makedirs(trial_dir, exist_ok=True)
  finished = _prepare(run_dir)
  args = command(plan, values, run_dir, _started_budget(run_dir))
  record = {"trial_id": trial_id, "tuner_id": tuner_id, "values": values, "command": args}
  start = time.time()
  returncode = 0
  if not finished:  # a trial finished before an interruption is not trained twice
    with open(log_path, "a") as log:
      returncode = subprocess.run([sys.executable, "-c", _DIE_WITH_PARENT] + args[1:],
                                  env=environment(), stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, check=False).returncode
  rows = read_history(run_dir)
  score = plan.objective.score(rows, plan.search) if returncode == 0 else None
  metrics = None
  if returncode:
    reason = f"app.train exited with status {returncode}: {_reason(log_path)}"
  elif _diverged(rows):
    reason = f"diverged: {_diverged(rows)} (app.train's divergence guard stopped it)"
  elif score is None or score != score:  # no validated epoch, or NaN
    reason = "no finite validation accuracy (diverged?); see train.log"
  else:
    reason = None
    with open(os.path.join(run_dir, "metrics.json")) as f:
      train_seconds = json.load(f)["train_seconds"]
    from app.tune.objectives import best_val_accuracy  # pylint: disable=g-import-not-at-top
    metrics = {plan.objective.name: float(score), "val_accuracy": best_val_accuracy(rows),
               "train_seconds": float(train_seconds)}
  record.update(status="FAILED" if reason else "COMPLETED", reason=reason, metrics=metrics,
                returncode=returncode, wall_seconds=time.time() - start)
  write_json(os.path.join(trial_dir, "result.json"), record)
  if reason:
    raise errors.FailedTrialError(reason)
  return metrics
