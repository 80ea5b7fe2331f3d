"""compile + fit with the run's callbacks, and recovery from a diverged loss.

On a NaN or exploding loss the run stops (DivergenceGuard); the checkpoints of earlier epochs
stay as they were. With train.on_divergence="retry" it reloads the last good epoch's weights,
halves the learning rate and goes on from that epoch, up to MAX_RETRIES times.
"""

import os
import sys

import keras
from absl import logging

from app import distribute, keras_compat
from app.core import plots, summaries
from app.train import callbacks
from app.train.backup import Backup
from app.data import pipeline
from app.core.errors import UsageError
from app.optim.optimizers import build_optimizer
from app.optim.schedules import build_schedule, sampled

MAX_RETRIES = 2


def compile_model(model, config, steps_per_epoch, peak_rate):
  """Compiles with the config's optimizer, schedule and loss; returns the schedule."""
  schedule = build_schedule(config.optim, peak_rate, config.train.epochs * steps_per_epoch,
                            steps_per_epoch)
  model.compile(
      optimizer=build_optimizer(config.optim, schedule),
      loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.train.label_smoothing),
      metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
      jit_compile=config.runtime.jit_compile,
      steps_per_execution=steps_per_execution(config.runtime.steps_per_execution, steps_per_epoch))
  return schedule


def write_schedule(run, schedule, total_steps, steps_per_epoch):
  """The learning rate at each step of the run (app.optim.schedules.sampled): learning_rate.png
  and, for TensorBoard, <run dir>/tensorboard/learning_rate_schedule (the scalar
  learning_rate_schedule/learning_rate at each sampled optimizer step, and the figure
  learning_rate_schedule/figure). Drawn again, both are replaced."""
  steps, rates = sampled(schedule, total_steps)
  path = run.file("learning_rate.png")
  plots.learning_rate_schedule(steps, rates, steps_per_epoch, path)

  description = f"by optimizer step; {steps_per_epoch} steps an epoch"
  summaries.write(os.path.join(run.path, summaries.LOG_DIR, "learning_rate_schedule"), [
      *(summaries.scalar("learning_rate_schedule/learning_rate", rate, step, description)
        for step, rate in zip(steps, rates)),
      summaries.png("learning_rate_schedule/figure", path)])


def steps_per_execution(asked, steps_per_epoch):
  """The largest divisor of the epoch's steps up to `asked` (runtime.steps_per_execution): Keras
  3.15 runs an execution across an epoch's end otherwise, so epochs end a step off and it warns
  "Your input ran out of data"; says so in one line when it differs."""
  chosen = next(n for n in range(min(asked, steps_per_epoch), 0, -1) if steps_per_epoch % n == 0)
  if chosen != asked:
    logging.info("steps_per_execution=%d does not divide the %d steps of an epoch; using %d",
                 asked, steps_per_epoch, chosen)
  return chosen


def keras_verbosity(progress, stream=None):
  """model.fit's `verbose` for train.progress: 1 (Keras's progress bar, redrawn in place within
  the epoch) for "bar", and for "auto" when `stream` (sys.stdout) is a terminal; 2 (one line per
  epoch) for "epoch", and for "auto" writing to a file or a pipe (a log, CI, a search's trial),
  where the bar's carriage returns would leave a partial line per redraw: Keras 3.15 redraws
  whenever the OS is POSIX, terminal or not (keras/src/utils/progbar.py, _dynamic_display)."""
  if progress == "auto":
    stream = stream or sys.stdout
    return 1 if hasattr(stream, "isatty") and stream.isatty() else 2
  return {"bar": 1, "epoch": 2}[progress]


def class_weights(data, config):
  """Balanced weights n / (classes x count) when config.train.class_weights, else None."""
  if not config.train.class_weights:
    return None
  counts = data.class_counts
  return {k: float(counts.sum() / (len(counts) * c)) for k, c in enumerate(counts) if c}


def _backup(model, data, config, strategy, timing):
  """The run's Backup callback and the state it resumes from: (backup, Backup.read's state or
  None), the model's weights and `timing`'s clock restored from it. Runs in one phase only
  (transfer learning's two phases start over when killed)."""
  if config.train.frozen_epochs or not config.train.backup_dir:
    return None, None
  save_freq = config.train.backup_every_steps or "epoch"
  backup = Backup(config.train.backup_dir, save_freq, writes=strategy.extended.should_checkpoint,
                  timing=timing)
  with strategy.scope():
    model.optimizer.build(model.trainable_variables)
  resumed = Backup.restore(model, config.train.backup_dir, data.steps_per_epoch)
  if resumed is None:
    return backup, None
  timing.resume(resumed)
  if resumed.get("trained"):
    logging.info("resuming from the backup in %s: training had ended (%.1f s); evaluating and "
                 "exporting its weights", config.train.backup_dir, timing.seconds_before)
  else:
    logging.info("resuming from the backup in %s: epoch %d, %d of its %d steps done (%.1f s in)",
                 config.train.backup_dir, resumed["epoch"] + 1, resumed["batches_done"],
                 data.steps_per_epoch, timing.seconds_before)
  return backup, resumed


def _fit_spans(first, last, skip):
  """[(first epoch, last epoch, batches to skip)] of the fit calls from `first` (with `skip`
  batches of it done) to `last`: a mid-epoch start finishes its epoch in a call of its own. With
  nothing left (a run killed after its last epoch's backup), one call of no epoch: Keras still
  ends the fit (the EMA's weights put in place, on_train_end), as it would have."""
  if first >= last:
    return [(last, last, 0)]
  if not skip:
    return [(first, last, 0)]
  return [(first, first + 1, skip)] + ([(first + 1, last, 0)] if first + 1 < last else [])


def _forget_epochs(history, history_start, first_forgotten, validation_every):
  """Drops the values of epochs `first_forgotten` on from a merged history dict whose first epoch
  is `history_start`; val_ keys hold one value per validated epoch only."""
  for key, values in history.items():
    epochs_kept = range(history_start, first_forgotten)
    if key.startswith("val_"):
      epochs_kept = [e for e in epochs_kept if (e + 1) % validation_every == 0]  # Keras's test
    del values[len(epochs_kept):]


def fit(model, data, config, run, schedule, strategy, first_epoch=0, timing=None):
  """Trains for config.train.epochs, writing into the run directory `run` (app.core.run_dir.RunDir);
  returns (merged history dict, Timing callback). Epochs are
  numbered from `first_epoch`: a later phase of a run (app/transfer.py) continues the count.
  A backup in config.train.backup_dir (a killed run's) is resumed from, at the same batch, its
  clock going on and the history of its earlier processes included; one taken once training had
  ended (Backup.save_trained) is not trained again."""
  rate, last_epoch = config.optim.peak_learning_rate, first_epoch + config.train.epochs
  distribute.prepare_fit(model, data.train, strategy)
  first_weights = model.get_weights()
  timing = timing or callbacks.Timing()
  verbose = keras_verbosity(config.train.progress)
  backup, resumed = _backup(model, data, config, strategy, timing)
  initial_epoch, skip = (resumed["epoch"], resumed["batches_done"]) if resumed else (first_epoch, 0)
  history, history_start = {}, first_epoch
  if resumed:
    backup.record_resume(resumed)
    if not resumed.get("trained"):
      callbacks.forget_epochs(run.path, initial_epoch)  # rows written after the backup it resumes
    backup.history = resumed.get("history") or callbacks.read_history(run.path)  # or an old one's
    history = {key: list(values) for key, values in backup.history.items()}
    if resumed.get("trained"):
      return history, timing
  for attempt in range(MAX_RETRIES + 1):  # the last attempt returns or raises
    timing, guard, run_callbacks = callbacks.build(run.path, config, schedule, timing, backup)
    callbacks.add_precise_batch_norm(run_callbacks, model, data, config.model.bn_momentum)
    if resumed and history.get("loss"):  # the run's first epoch's loss, as if never killed
      guard.reference = history["loss"][0]
    for span_first, span_last, span_skip in _fit_spans(initial_epoch, last_epoch, skip):
      train, steps = pipeline.distributed_train(data, strategy, (span_first, span_last), span_skip)
      if backup:
        backup.start(span_first, span_skip, steps)
      result = model.fit(
          train, epochs=span_last, initial_epoch=span_first, steps_per_epoch=steps - span_skip,
          validation_data=data.validation, validation_freq=config.train.validation_every_epochs,
          callbacks=run_callbacks, verbose=verbose, class_weight=class_weights(data, config),
          shuffle=False)  # the pipeline shuffles, per epoch (app/data/pipeline.py)
      for key, values in result.history.items():
        history.setdefault(key, []).extend(values)
      if guard.diverged or timing.stopped_by_budget:
        break
    skip = 0
    if not guard.diverged:
      if backup:
        backup.save_trained()
      return history, timing
    last_good = run.checkpoint("last")
    if config.train.on_divergence != "retry" or attempt == MAX_RETRIES:
      kept = f"the last good checkpoint {last_good} is intact" if os.path.exists(last_good) else \
          "no epoch finished, so no checkpoint was written"
      raise UsageError(
          f"training diverged at {guard.diverged}; {kept}; lower --learning_rate"
          + ("" if config.train.on_divergence == "retry" else
             " or pass --config.train.on_divergence=retry"))
    # Retry: back to the last good epoch with half the rate, the schedule where it was.
    initial_epoch = history_start + len(history.get("loss", [])) - 1  # the diverged epoch is redone
    for kept in [history] + ([backup.history] if backup else []):
      _forget_epochs(kept, history_start, initial_epoch, config.train.validation_every_epochs)
    callbacks.forget_epochs(run.path, initial_epoch)  # history.csv: the retry writes them again
    rate /= 2
    logging.warning("training diverged at %s; retrying from epoch %d at learning rate %g",
                    guard.diverged, initial_epoch + 1, rate)
    if initial_epoch > first_epoch and os.path.exists(last_good):
      from app.models import load_model  # pylint: disable=g-import-not-at-top
      model.set_weights(load_model(last_good).get_weights())
    else:
      model.set_weights(first_weights)
    with strategy.scope():
      schedule = compile_model(model, config, data.steps_per_epoch, rate)
      model.optimizer.build(model.trainable_variables)
      keras_compat.set_optimizer_step(model.optimizer,
                                      (initial_epoch - first_epoch) * data.steps_per_epoch)
