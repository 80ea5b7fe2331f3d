"""--time_budget: budgeted training (Li, Yumer, Ramanan, "Budgeted Training: Rethinking Deep
Neural Network Training Under Resource Constraints", ICLR 2020). A schedule that decays to zero
at the budget beats a longer one cut when time runs out, so the run's length is planned before
it starts: the step time, the evaluation time and a checkpoint's are measured on a throwaway
copy of the run's model on the run's own batches, and train.epochs is set so that the whole
command (what has run so far, the model's build and tracing, the epochs with their validations
and checkpoints, the test evaluation and the export) ends within the budget. The recipe's lengths
in epochs (warmup, decay points, frozen epochs) scale with it, so the schedule keeps its shape.

A plan that misjudges is held by the clock: training stops at the budget less what must follow
it (the evaluation and export), logged as an overrun. A resumed run keeps the plan it started
with (config.yaml), as --accel=auto keeps its probed switches.
"""

import math
import os
import statistics
import tempfile
import time

import keras
import ml_collections
from absl import logging

from app import accel
from app.core import clock, readers
from app.core.errors import UsageError
from app.data import augment, pipeline
from app.optim.schedules import scaled_length
from app.train import fitting

WARMUP_STEPS = 3  # untimed: the first call traces the step
TIMED_STEPS = 16
TIMED_EVALUATION_BATCHES = 4
# The export (tracing the serving graph, writing the SavedModel, its parity check on held-out
# images and checksums): EXPORT_TRACE_FACTOR times the training step's tracing time plus
# EXPORT_SECONDS (ResNet-9 at 112 px on this CPU: step traced in 3.1 s, export 6.6 s).
EXPORT_TRACE_FACTOR = 1.2
EXPORT_SECONDS = 3.0
# Checkpoints per epoch: last.keras, the backup (weights and optimizer state), best.keras when
# the validation improves.
SAVES_PER_EPOCH = 2.5
FINISH_SECONDS = 2.0  # plots, history, metrics.json
# Validation takes at most this share of the training time when the recipe lets the plan choose
# how often it runs (the data-aware recipe).
VALIDATION_SHARE = 0.1
PLAN_FILE = "time_budget.json"  # the plan, in the run dir: what a resumed run reports
# Planned keys a resumed run takes from the run it continues.
PLANNED_KEYS = ("train.epochs", "train.validation_every_epochs", "train.time_budget_seconds")


class _StepClock(keras.callbacks.Callback):
  """The wall time at each training batch's end."""

  def __init__(self):
    super().__init__()
    self.ends = []

  def on_train_batch_end(self, batch, logs=None):
    self.ends.append(time.perf_counter())

  def trimmed_step_seconds(self, start):
    marks = [start] + self.ends
    steps = sorted(b - a for a, b in zip(marks, marks[1:]))
    return statistics.mean(steps[:max(1, len(steps) - len(steps) // 8)])


def _copy(config):
  return ml_collections.ConfigDict(config.to_dict())


def measure(config, data, strategy):
  """Seconds of the run's pieces, on a fresh copy of its model and its own batches: build,
  step tracing, a training step, an evaluation batch (and its tracing), one checkpoint."""
  from app.models import build_model  # pylint: disable=g-import-not-at-top
  probe = _copy(config)
  probe.optim.schedule, probe.optim.warmup_epochs = "constant", 0.0
  keras.utils.set_random_seed(config.seed)
  started = time.perf_counter()
  with strategy.scope():
    device_augmentation = augment.build(config.derived.augment_on_device, on_device=True)
    model = build_model(config.model, data.image_shape, len(data.class_names), data.mean,
                        data.variance, device_augmentation.layers(),
                        batch_size=config.train.batch_size)
    fitting.compile_model(model, probe, data.steps_per_epoch,
                          0.05 * config.optim.peak_learning_rate)  # small: the weights are thrown away
  built = time.perf_counter()
  epochs = -(-(WARMUP_STEPS + TIMED_STEPS) // data.steps_per_epoch)
  batches = pipeline.training_batches(data, 0, epochs).map(lambda images, labels: (images, labels))
  model.fit(batches.take(WARMUP_STEPS), epochs=1, verbose=0, shuffle=False)
  traced = time.perf_counter()
  clock_marks = _StepClock()
  model.fit(batches.skip(WARMUP_STEPS).take(TIMED_STEPS), epochs=1, verbose=0, shuffle=False,
            callbacks=[clock_marks])
  stepped = time.perf_counter()
  # The mean without the slowest eighth: a slow step or two (another process) moved the mean of
  # 12 by 60% between two seeds of the same run (0.27 s and 0.43 s, hymenoptera at 160 px), and
  # the median, 26% under the real epoch's pace (hand recipe, 128 px), cut a run short.
  step_seconds = clock_marks.trimmed_step_seconds(traced)
  evaluation = data.validation.take(TIMED_EVALUATION_BATCHES)
  model.evaluate(evaluation.take(1), verbose=0)  # tracing, and one batch
  evaluation_traced = time.perf_counter()
  model.evaluate(evaluation, verbose=0)
  evaluated = time.perf_counter()
  batches_evaluated = min(TIMED_EVALUATION_BATCHES,
                          _evaluation_batches(data.num_validation, config.train.batch_size))
  evaluation_batch_seconds = (evaluated - evaluation_traced) / max(batches_evaluated, 1)
  with tempfile.TemporaryDirectory() as scratch:
    model.save(os.path.join(scratch, "probe.keras"))
  saved = time.perf_counter()
  return {
      "build_seconds": built - started,
      "trace_seconds": max(traced - built - WARMUP_STEPS * step_seconds, 0.0),
      "step_seconds": step_seconds,
      "evaluation_trace_seconds": max(evaluation_traced - stepped - evaluation_batch_seconds, 0.0),
      "evaluation_batch_seconds": evaluation_batch_seconds,
      "checkpoint_seconds": saved - evaluated,
      "measure_seconds": saved - started,
  }


def _evaluation_batches(count, batch_size):
  return -(-count // batch_size)


def plan(config, data, strategy, run, started):
  """(config with its planned length, the plan for metrics.json) for a budgeted run
  (config.derived.time_budget_seconds > 0), or (config, None) without a budget; `started`: the
  config a resumed run started with (RunDir.started_config), whose plan it keeps. UsageError when
  even one epoch cannot fit."""
  budget = config.derived.time_budget_seconds
  if not budget:
    return config, None
  if started:  # resumed: the plan it started with
    planned = _copy(config)
    for key in PLANNED_KEYS + tuple(config.derived.budget_scaled_keys):
      section, leaf = key.split(".")
      planned[section][leaf] = started[section][leaf]
    path = run.file(PLAN_FILE)
    previous = readers.read_json(path, "budget plan", "remove the run dir to start over") \
        if os.path.exists(path) else {}
    return planned, dict(previous, resumed=True)
  measured = measure(config, data, strategy)
  accel.set_precision(config.runtime)
  logging.info("--time_budget: measured %s", ", ".join(f"{k} {v:.3f}" for k, v in measured.items()))
  batch = config.train.batch_size
  validation_batches = _evaluation_batches(data.num_validation, batch)
  per_validation = validation_batches * measured["evaluation_batch_seconds"]
  per_epoch = (data.steps_per_epoch * measured["step_seconds"]
               + SAVES_PER_EPOCH * measured["checkpoint_seconds"])
  validation_every = config.train.validation_every_epochs
  if config.derived.budget_plans_validation:
    validation_every = max(1, math.ceil(per_validation / (VALIDATION_SHARE * per_epoch)))
  export = (EXPORT_TRACE_FACTOR * measured["trace_seconds"] + EXPORT_SECONDS
            if config.export.enabled else 0.0)
  # One evaluation of the test split after training, even for a run that validates on it (whose
  # last validation gives the test figures): then it is the reserve the clock's hold keeps for
  # the validation that follows a hold-stopped epoch. The plan's training must end by the hold,
  # or the schedule would be cut before its end, so the reserve cannot go to more epochs.
  after_training = (_evaluation_batches(data.num_test, batch) * measured["evaluation_batch_seconds"]
                    + measured["evaluation_trace_seconds"] + export + FINISH_SECONDS)
  before_training = measured["build_seconds"] + measured["trace_seconds"] + \
      measured["evaluation_trace_seconds"]
  elapsed = clock.process_seconds()
  available = budget - elapsed - before_training - after_training
  epochs = int(available // (per_epoch + per_validation / validation_every))
  if validation_every > 1 and epochs >= validation_every:
    epochs -= epochs % validation_every  # the last epoch validated
  if epochs < 1:
    least = elapsed + before_training + after_training + per_epoch + per_validation
    raise UsageError(
        f"--time_budget={config.train.time_budget} leaves no time for one epoch: {elapsed:.0f} s "
        f"have gone on start-up and measuring, and one epoch with its evaluations and the "
        f"export needs about {least - elapsed:.0f} s more; pass --time_budget={math.ceil(least * 1.2)}s "
        "or more (or lower --config.data.image_size or the model's width)")
  planned = _copy(config)
  scale = epochs / config.train.epochs
  for key in config.derived.budget_scaled_keys:
    section, leaf = key.split(".")
    planned[section][leaf] = scaled_length(planned[section][leaf], scale, epochs)
  planned.train.epochs = epochs
  planned.train.validation_every_epochs = validation_every
  planned_training = epochs * per_epoch + (epochs // validation_every) * per_validation
  # The clock's hold: training (timed from fit's start, after the build and tracing) stops where
  # what must follow it would no longer fit.
  hold = budget - elapsed - measured["build_seconds"] - after_training
  if not config.train.time_budget_seconds or hold < config.train.time_budget_seconds:
    planned.train.time_budget_seconds = round(max(hold, 1.0), 1)
  result = {
      "budget_seconds": budget, "planned_epochs": epochs,
      "planned_seconds": elapsed + before_training + planned_training + after_training,
      "planned_training_seconds": planned_training, "validation_every_epochs": validation_every,
      "seconds_before_plan": elapsed, "measured": measured,
      "estimated_export_seconds": export,
  }
  logging.info("--time_budget=%s: %d epochs of %d steps (%.3f s each), validating every %d, "
               "planned to end at %.0f s of %.0f", config.train.time_budget, epochs,
               data.steps_per_epoch, measured["step_seconds"], validation_every,
               result["planned_seconds"], budget)
  return planned, result
