"""The search: KerasTuner's oracles choose, app.train subprocesses train (app/tune/trials.py).

<search_dir>/ holds fingerprint.json (what the search was made for), kerastuner/ (KerasTuner's
oracle and trial state, from which the same command resumes), trials/<id>/, leaderboard.csv,
leaderboard.md, best_recipe.py and best_trial.json, and retrain/ after --retrain.

Distributed tuning is KerasTuner's: with KERASTUNER_ORACLE_IP/PORT and KERASTUNER_TUNER_ID set,
the process whose id contains "chief" serves the oracle and the others (workers) ask it for trials
and run them. Only the chief (or a lone search) checks the fingerprint, overwrites and writes
the results.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

import keras_tuner
import ml_collections

from app import config as config_lib
from app import keras_compat
from app.core import ownership
from app.core import readers
from app.core.errors import UsageError
from app.core.registry import Registry
from app.train import output_paths
from app.tune import objectives, progress, results, space, trials
from app.tune.fingerprint import check_search_dir, fingerprint

PROJECT = "kerastuner"
TUNERS = Registry("tuner")  # KerasTuner's oracles, by --tuner name
TUNERS.register("random", keras_tuner.oracles.RandomSearchOracle)
TUNERS.register("bayesian", keras_tuner.oracles.BayesianOptimizationOracle)
TUNERS.register("hyperband", keras_tuner.oracles.HyperbandOracle)


def _require(ok, message):
  if not ok:
    raise UsageError(message)


def _scaled(config, as_written):
  """`config` as its trial's app.train resolves it: lengths in epochs scaled to its train.epochs."""
  config = ml_collections.ConfigDict(config.to_dict())
  config_lib.scale_lengths(config, as_written)
  return config


def make_plan(config, recipe, overrides, search_dir):
  """Checks the search settings and the space against the recipe; returns the trials' Plan.
  Each searched key's extreme values are validated as app.train would, so a space app.train would
  refuse is refused here, before any trial."""
  search = config.search
  TUNERS.get(search.tuner)
  objective = objectives.get(search)
  _require(search.max_trials >= 1, f"--max_trials must be >= 1; received {search.max_trials}")
  _require(search.trial_time_budget_seconds >= 0,
           "--trial_time_budget_seconds must be >= 0 (0 = no cap)")
  _require(0 < search.validation_split < 1,
           f"search.validation_split must be in (0, 1) (the trials' held-out part of the "
           f"training split); received {search.validation_split}")
  _require(search.time_budget_seconds >= 0,
           "--search_time_budget_seconds must be >= 0 (0 = no limit)")
  _require(search.initial_trials >= 0,
           "search.initial_trials must be >= 0 (0 = three per searched key)")
  _require(search.hyperband_factor >= 2, "search.hyperband_factor must be >= 2")
  _require(search.max_consecutive_failures >= 1, "search.max_consecutive_failures must be >= 1")
  _require(search_dir, "--search_dir is empty; pass a directory, e.g. --search_dir=runs/search")
  params = tuple(space.parse(search.space, config))
  both = sorted(p.key for p in params if p.key in overrides)
  _require(not both, f"{', '.join(both)} is both searched (config.search.space) and fixed on the "
           "command line; drop one")
  as_written = config_lib.load_recipe(recipe)
  config_lib.validate(_scaled(config, as_written))
  for param in params:
    for value in param.extremes():
      trial_config = config.copy_and_resolve_references()
      config_lib.set_key(trial_config, param.key, value)
      try:
        config_lib.validate(_scaled(trial_config, as_written))
      except UsageError as e:
        raise UsageError(f"search space {param.key}={value!r} would be refused: {e}") from None
  return trials.Plan(recipe=os.path.abspath(recipe), overrides=dict(overrides), params=params,
                     search=search, objective=objective, search_dir=os.path.abspath(search_dir),
                     epochs=config.train.epochs,
                     deadline=(time.time() + search.time_budget_seconds
                               if search.time_budget_seconds else 0.0))


# === KerasTuner: the oracles, made to write atomically and report after every trial ===

def _recording(oracle_class, plan):
  """`oracle_class` whose state files are written atomically (a kill never leaves half an
  oracle.json: app/keras_compat.py), which starts no trial once the search's time budget is spent,
  and which rewrites the leaderboard and best recipe after every trial, wherever the oracle lives
  (the lone search, or the chief serving workers), and prints the leaderboard's top and the time
  the search may still take (app/tune/progress.py)."""
  shown = progress.SearchProgress(plan)

  class Recording(keras_compat.with_atomic_state_files(oracle_class, trials.write_json)):

    def populate_space(self, trial_id):
      if plan.seconds_left() <= 0:
        print(f"search time budget ({plan.search.time_budget_seconds:g} s) spent: no new trial",
              flush=True)
        return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED, "values": None}
      return super().populate_space(trial_id)

    def end_trial(self, trial):
      super().end_trial(trial)
      results.write(plan, self.trials.values())
      shown.trial_ended(trial, self.trials.values())

  Recording.__name__ = Recording.__qualname__ = f"Recording{oracle_class.__name__}"
  return Recording


def build_oracle(plan):
  search = plan.search
  budget = ({"max_epochs": plan.epochs, "factor": search.hyperband_factor}
            if search.tuner == "hyperband" else {"max_trials": search.max_trials})
  if search.tuner == "bayesian" and search.initial_trials:
    budget["num_initial_points"] = search.initial_trials
  oracle = _recording(TUNERS.get(search.tuner), plan)(
      objective=keras_tuner.Objective(plan.objective.name, plan.objective.direction),
      hyperparameters=space.declare(plan.params), seed=search.seed, allow_new_entries=False,
      max_consecutive_failed_trials=search.max_consecutive_failures, **budget)
  oracle.max_trials = search.max_trials  # Hyperband has none of its own: a cap on its brackets
  return oracle


class SubprocessTuner(keras_tuner.Tuner):
  """run_trial trains the trial's values in a fresh app.train process (app/tune/trials.py)."""

  def __init__(self, oracle, plan, directory):
    self.plan = plan
    super().__init__(oracle=oracle, directory=directory, project_name=PROJECT, overwrite=False)

  def run_trial(self, trial, *args, **kwargs):
    name, values = self.plan.objective.name, trial.hyperparameters.values
    print(f"trial {trial.trial_id} on {self.tuner_id}: {values}", flush=True)
    try:
      with progress.relayed_epochs(trials.trial_run_dir(self.plan, trial.trial_id),
                                   f"trial {trial.trial_id}"):  # its epochs as they end
        metrics = trials.run(self.plan, trial.trial_id, values, self.tuner_id)
    except keras_tuner.errors.FailedTrialError as e:
      print(f"trial {trial.trial_id} FAILED: {e}", flush=True)
      raise
    print(f"trial {trial.trial_id}: {name} {metrics[name]:.4g}", flush=True)
    return metrics

  def save(self):
    if not keras_compat.tuner_is_worker(self):
      self.oracle.save()
    trials.write_json(keras_compat.tuner_state_file(self), self.get_state())

  def search(self, *args, **kwargs):
    if keras_compat.is_chief_oracle():
      self.oracle.verbose = kwargs.get("verbose", 1)
      self.save()
      serve(self.oracle)
      return
    super().search(*args, **kwargs)


def serve(oracle):
  """Serves the oracle to the workers until the search ends (KerasTuner's chief server, polled
  every second: app/keras_compat.py)."""
  address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
  if not keras_compat.serve_oracle(oracle, address):
    raise UsageError(f"the chief cannot listen on {address}; set KERASTUNER_ORACLE_IP/PORT to "
                     "an address of this host and a free port")


def load_tuner(oracle, plan, directory):
  """The SubprocessTuner, which reloads KerasTuner's state (oracle.json, tuner*.json,
  trial_*/trial.json under <directory>/kerastuner) when resuming. A file a kill cut short or a
  hand edited is one UsageError naming it, not KerasTuner's traceback."""
  fix = "pass --overwrite to start the search over (its trials are lost), or restore the file"
  state = os.path.join(directory, PROJECT)
  saved = sorted(glob.glob(os.path.join(state, "*.json"))
                 + glob.glob(os.path.join(state, "trial_*", "trial.json")))
  for path in saved:
    readers.read_json(path, "KerasTuner state file", fix)
  try:
    return SubprocessTuner(oracle, plan, directory)
  except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
    if not saved:  # nothing was reloaded: not the state's fault
      raise
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
    raise UsageError(f"cannot resume the search from its KerasTuner state in {state} "
                     f"({type(e).__name__}: {reason}); {fix}") from None


def is_worker():
  return keras_compat.has_chief_oracle() and not keras_compat.is_chief_oracle()


def run_search(config, plan, overwrite):
  """Runs (or resumes) the search; returns the oracle's trials (the chief's and a lone search's;
  a worker returns None)."""
  if not is_worker():  # the search dir's owner, for this process's life (app/core/ownership.py)
    another = "pass another --search_dir"
    output_paths.require_writable_dir(plan.search_dir, "search dir", "--search_dir")
    ownership.claim(plan.search_dir, "search dir", another, create=False)  # a live search: refused
    check_search_dir(plan.search_dir, fingerprint(config, plan), overwrite)
    ownership.claim(plan.search_dir, "search dir", another)  # made (or emptied by --overwrite)
  oracle = build_oracle(plan)
  # A worker keeps no state of its own (the chief's oracle knows its ongoing trial), and must not
  # touch the search directory before the chief has checked or overwritten it.
  directory = tempfile.mkdtemp(prefix="kerastuner-worker-") if is_worker() else plan.search_dir
  tuner = load_tuner(oracle, plan, directory)  # check_search_dir did any overwrite
  try:
    tuner.search(verbose=0)
  except RuntimeError as e:  # the oracle's limit on consecutive failed trials
    if "consecutive failures" not in str(e):
      raise
    results.write(plan, oracle.trials.values())
    raise UsageError(f"the search stopped after {plan.search.max_consecutive_failures} failed "
                     f"trials in a row; see {plan.search_dir}/leaderboard.md and the trials' "
                     "train.log") from None
  finally:
    if is_worker():
      shutil.rmtree(directory, ignore_errors=True)
  if is_worker():
    return None
  results.write(plan, oracle.trials.values())
  return list(oracle.trials.values())


def retrain(plan, epochs=0):
  """Trains best_recipe.py as its base recipe validates (data.validation_split) and exports it (an app.train
  subprocess, its output shown as it runs); returns the run directory."""
  recipe = os.path.join(plan.search_dir, "best_recipe.py")
  _require(os.path.exists(recipe), f"no trial of {plan.search_dir} completed, so there is no "
           "best configuration to retrain")
  run_dir = os.path.join(plan.search_dir, "retrain")
  args = [sys.executable, "-m", "app.train", f"--config={os.path.abspath(recipe)}",
          f"--output_dir={run_dir}"] + ([f"--epochs={epochs}"] if epochs else [])
  returncode = subprocess.run(args, env=trials.environment(), check=False).returncode
  _require(returncode == 0, f"retraining the best configuration failed (app.train exited with "
           f"status {returncode}); its run directory is {run_dir}")
  return run_dir
