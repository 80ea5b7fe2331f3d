"""The whole-run profile: where a run's wall time went, start-up to export (run_profile.json).

The step profile (app/train/step_profile.py) looks inside the training step; this looks at the
whole command, which on short runs spends as much outside the step as in it: Python's and
TensorFlow's start-up, loading and checking the data, building the model and its data-dependent
init (airbench's whitening), tracing and compiling, the training steps, the evaluations during
fit (every one with the model's test-time augmentation when model.tta is set), the checkpoints,
backups and logs at each epoch's end, the final evaluation, and the export (its tracing, parity
check and other formats).

train_and_evaluate marks the end of each phase on a lap clock (`RunProfile.lap`); inside fit,
app.train.callbacks.Timing splits fit's wall time (FitSplit). The figures are this process's:
a resumed run's profile covers the process that finished it.
"""

import time

from absl import logging

from app.core import clock

PROFILE_FILE = "run_profile.json"

# Each phase's key (run_profile.json) -> what it holds, in run order.
PHASES = {
    "start_up": "interpreter, imports (TensorFlow), flags, config",
    "data": "load the source, check it, build the pipelines",
    "accel_probe": "--accel=auto's measured settings",
    "lr_range_test": "optim.learning_rate_from=auto's range test",
    "budget_measurement": "--time_budget's timed steps",
    "model": "build, compile, data-dependent init",
    "run_dir": "run directory, config, schedule plot",
    "fit_tracing": "first training execution less a typical one: tracing and compiling",
    "fit_steps": "training steps",
    "fit_validation": "validation during fit (model.tta's views included)",
    "fit_epoch_end": "epoch-end callbacks: checkpoints, backups, logs, plots",
    "fit_other": "the rest of fit: the other callbacks' batch hooks (Lookahead's syncs), each "
                 "epoch's pipeline start-up, fit's begin and end",
    "final_evaluation": "test (and validation) evaluation of the final weights, plots, warnings",
    "export": "SavedModel, its parity check and the other formats",
    "other": "everything not in a phase above",
}


class FitSplit:
  """Fit's wall time for one process, as app.train.callbacks.Timing measures it: the first
  training execution (it traces and compiles), the number of executions and their total, each
  validation's seconds, and the epoch-end callbacks' seconds."""

  def __init__(self):
    self.first_execution_seconds = None
    self.execution_seconds = 0.0  # every training execution, the first included
    self.executions = 0
    self.validation_seconds = []
    self.epoch_end_seconds = 0.0

  def phases(self, fit_seconds):
    """{phase: seconds} of fit's `fit_seconds` (its lap)."""
    tracing = 0.0
    if self.executions > 1 and self.first_execution_seconds is not None:
      typical = (self.execution_seconds - self.first_execution_seconds) / (self.executions - 1)
      tracing = max(self.first_execution_seconds - typical, 0.0)
    split = {"fit_tracing": tracing, "fit_steps": self.execution_seconds - tracing,
             "fit_validation": sum(self.validation_seconds),
             "fit_epoch_end": self.epoch_end_seconds}
    split["fit_other"] = max(fit_seconds - sum(split.values()), 0.0)
    return split

  def validation_note(self):
    """The first validation's seconds against the later ones' (the first traces)."""
    if len(self.validation_seconds) < 2:
      return None
    later = self.validation_seconds[1:]
    return {"validations": len(self.validation_seconds),
            "first_seconds": round(self.validation_seconds[0], 3),
            "later_mean_seconds": round(sum(later) / len(later), 3)}


class RunProfile:
  """A lap clock over train_and_evaluate's phases: `lap(phase)` ends the phase running since the
  last lap (the first: since the process started)."""

  def __init__(self):
    self.seconds = {"start_up": clock.process_seconds()}
    self._last = time.perf_counter()
    self.fit_split = None

  def lap(self, phase):
    now = time.perf_counter()
    self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
    self._last = now

  def fit(self, fit_split):
    """Ends fit's lap, split by `fit_split` (FitSplit)."""
    self.lap("fit")
    self.fit_split = fit_split
    for phase, seconds in fit_split.phases(self.seconds.pop("fit")).items():
      self.seconds[phase] = seconds

  def report(self, total_seconds, tta):
    """run_profile.json's dict: the phases in run order with seconds and share of the total."""
    seconds = dict(self.seconds, other=max(total_seconds - sum(self.seconds.values()), 0.0))
    rows = [{"phase": phase, "seconds": round(seconds[phase], 3),
             "share": round(seconds[phase] / total_seconds, 4) if total_seconds else 0.0,
             "what": what} for phase, what in PHASES.items() if phase in seconds]
    return {"total_seconds": round(total_seconds, 3), "phases": rows,
            "validation_tta": tta or None,
            "validations": self.fit_split.validation_note() if self.fit_split else None,
            "note": "this process's time: a resumed run's killed processes are not in it"}


def log(report):
  """One line per phase, the largest first."""
  rows = sorted(report["phases"], key=lambda row: -row["seconds"])
  logging.info("where the run's %.1f s went: %s", report["total_seconds"], "; ".join(
      f"{row['phase']} {row['seconds']:.1f} s ({row['share']:.0%})" for row in rows
      if row["seconds"] >= 0.05))
