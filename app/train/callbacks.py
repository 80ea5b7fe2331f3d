"""The run directory's callbacks and their order: timing, the time budget, the learning-rate log,
the divergence guard, early stopping, atomic checkpoints, history.csv and TensorBoard (build()). Backups are
app/train/backup.py; weight averaging and the plateau schedule are app/optim's."""

import csv
import io
import json
import math
import os
import shutil
import sys
import threading
import time

import keras
import numpy as np
from absl import logging

from app import keras_compat
from app.core import files
from app.data import pipeline
from app.models.layers import batch_norm_layers, recompute_batch_norm_statistics
from app.optim.averaging import KeepEMAOnEarlyStop, Lookahead
from app.optim.schedules import ReduceOnPlateau
from app.train import preemption
from app.train.run_profile import FitSplit
from app.train.step_profile import profiled_steps


class Timing(keras.callbacks.Callback):
  """Adds `elapsed_seconds` (wall time since fit started, validation and compilation included:
  the time-to-accuracy clock) to each epoch's logs, and keeps the time spent in training batches
  alone so throughput is not diluted by validation.

  A run resumed from a backup goes on with the clock the backup recorded (`state`, `resume`):
  its elapsed_seconds, train_seconds and time budget count the killed processes' time up to the
  backup as well, so a resumed run (or search trial) gets no more time than one never killed."""

  def __init__(self):
    super().__init__()
    self.start = self.epoch_start = self.validation_start = None
    self.seconds_before = 0.0  # the clock of the backup this process resumed from
    self.train_seconds_per_epoch = []  # the run's epochs, the killed processes' included
    self.batches_skipped = 0  # batches done before a mid-epoch resume, not timed in its epoch
    self.stopped_by_budget = None  # where TimeBudget stopped the run, if it did
    self.resumes = []  # {"epoch", "batches_done", "elapsed_seconds", "trained"}, one per resume
    # This process's split of fit's time for the whole-run profile (app/train/run_profile.py);
    # EpochEndMark, the last callback, closes each epoch's end.
    self.fit_split = FitSplit()
    self.epoch_end_start = self._execution_start = None

  def state(self):
    """The clock, as a backup records it (app/train/backup.py)."""
    return {"elapsed_seconds": self.elapsed_seconds,
            "train_seconds_per_epoch": list(self.train_seconds_per_epoch),
            "batches_skipped": self.batches_skipped,
            "stopped_by_time_budget": self.stopped_by_budget, "resumes": list(self.resumes)}

  def resume(self, backup):
    """Goes on from the clock of a backup's state (`backup`, app.train.backup.Backup.read) that
    this process resumes from: at its epoch and batch, or trained (nothing left to train)."""
    self.seconds_before = float(backup.get("elapsed_seconds", 0.0))
    self.train_seconds_per_epoch = list(backup.get("train_seconds_per_epoch", []))
    trained = bool(backup.get("trained"))
    self.batches_skipped = backup.get("batches_skipped", 0) + (
        0 if trained else backup["batches_done"])
    self.stopped_by_budget = backup.get("stopped_by_time_budget")
    self.resumes = list(backup.get("resumes", [])) + [
        {"epoch": backup["epoch"], "batches_done": backup["batches_done"],
         "elapsed_seconds": self.seconds_before, "trained": trained}]

  def on_train_begin(self, logs=None):
    if self.start is None:  # one clock across the fit calls of a run (retries, transfer phases)
      self.start = time.perf_counter()

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch_start = time.perf_counter()
    self.validation_start = None

  def on_train_batch_begin(self, batch, logs=None):
    self._execution_start = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):  # one execution (steps_per_execution steps)
    seconds, split = time.perf_counter() - self._execution_start, self.fit_split
    if split.first_execution_seconds is None:
      split.first_execution_seconds = seconds
    split.execution_seconds += seconds
    split.executions += 1

  def on_test_begin(self, logs=None):
    self.validation_start = time.perf_counter()

  def on_test_end(self, logs=None):
    self.fit_split.validation_seconds.append(time.perf_counter() - self.validation_start)

  def on_epoch_end(self, epoch, logs=None):
    train_end = self.validation_start or time.perf_counter()
    self.train_seconds_per_epoch.append(train_end - self.epoch_start)
    if logs is not None:
      logs["elapsed_seconds"] = self.elapsed_seconds
    self.epoch_end_start = time.perf_counter()

  @property
  def elapsed_seconds(self):
    """The run's clock: a resumed run's backup's, plus this process's since its fit began (none
    yet when a run killed after training is finished without fitting)."""
    since_start = 0.0 if self.start is None else time.perf_counter() - self.start
    return self.seconds_before + since_start


class EpochEndMark(keras.callbacks.Callback):
  """The last callback: adds the time since Timing's on_epoch_end (the first callback's) to the
  epoch-end callbacks' seconds of the whole-run profile (checkpoints, backups, logs)."""

  def __init__(self, timing):
    super().__init__()
    self.timing = timing

  def on_epoch_end(self, epoch, logs=None):
    if self.timing.epoch_end_start is not None:
      self.timing.fit_split.epoch_end_seconds += time.perf_counter() - self.timing.epoch_end_start
      self.timing.epoch_end_start = None


class ReleaseTrainingIterator(keras.callbacks.Callback):
  """Moves the deletion of fit's training iterator off the main thread: at the end of training it
  takes a reference to the iterator's handle (keras_compat.fit_training_iterator_handles) and a
  daemon thread drops it once it is the last one (fit has returned), so the deletion's wait for
  tf.data's autotuning thread (up to 60 s, docs/BENCHMARKS.md "The stall at fit's end") delays
  that thread instead of the evaluation, the export and the time budget."""

  POLL_SECONDS = 0.05, 1.0  # the first wait for fit's return, the longest

  def __init__(self):
    super().__init__()
    self.threads = []  # one per fit call that had an iterator to release (tests join them)

  def on_train_end(self, logs=None):
    handles = keras_compat.fit_training_iterator_handles()
    if not handles:
      return
    thread = threading.Thread(target=self._release, args=(handles,), daemon=True,
                              name="release-training-iterator")
    self.threads.append(thread)
    thread.start()

  @classmethod
  def _release(cls, handles):
    # References while fit still holds the iterator: the list's, getrefcount's argument, fit's
    # (one that a reference cycle keeps goes when the collector frees it).
    wait, longest = cls.POLL_SECONDS
    while sys.getrefcount(handles[0]) > 2:
      time.sleep(wait)
      wait = min(2 * wait, longest)
    started = time.perf_counter()
    handles.clear()  # the last reference: the iterator is deleted here, in this thread
    logging.info("fit's training iterator deleted off the main thread in %.1f s",
                 time.perf_counter() - started)


class TimeBudget(keras.callbacks.Callback):
  """Stops training cleanly (model.stop_training) once the run's clock (`timing`, so one budget
  across retries and transfer phases) passes `seconds`: the epoch it runs out in ends early and is
  still validated, checkpointed and evaluated as usual. For time-aware searches (app/tune)."""

  def __init__(self, timing, seconds):
    super().__init__()
    self.timing, self.seconds, self.epoch = timing, seconds, 0

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    if self.timing.elapsed_seconds >= self.seconds:
      if self.timing.stopped_by_budget is None:
        self.timing.stopped_by_budget = f"epoch {self.epoch + 1}, step {batch + 1}"
      self.model.stop_training = True


class LearningRateLog(keras.callbacks.Callback):
  """Adds the optimizer's current `learning_rate` (after the schedule) to each epoch's logs."""

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def save_atomically(model, path):
  """Write `path` through a temporary file and a rename: a crash never leaves half a checkpoint."""
  with files.atomic_path(path, ".keras") as temporary:
    model.save(temporary)


class AtomicCheckpoint(keras.callbacks.Callback):
  """Saves `last.keras` every epoch and `best.keras` when `monitor` improves (every epoch when
  `monitor` is None: no selection), both atomically; an epoch the DivergenceGuard flagged is not
  saved, so the last good checkpoint survives."""

  def __init__(self, directory, guard, monitor="val_accuracy"):
    super().__init__()
    self.directory, self.guard, self.monitor = directory, guard, monitor
    os.makedirs(directory, exist_ok=True)
    # A later fit call of the same run (a retry, a transfer phase) keeps the best so far.
    self.best_record = os.path.join(directory, "best.json")
    self.best = None
    if monitor and os.path.exists(self.best_record):
      with open(self.best_record) as f:
        self.best = json.load(f).get(monitor)

  def on_epoch_end(self, epoch, logs=None):
    if self.guard.diverged:
      return
    save_atomically(self.model, os.path.join(self.directory, "last.keras"))
    if self.monitor is None:
      with files.atomic_path(os.path.join(self.directory, "best.keras"), ".keras") as temporary:
        shutil.copyfile(os.path.join(self.directory, "last.keras"), temporary)
      files.write_json(self.best_record, {"selected_on": None, "epoch": epoch + 1})
      return
    value = (logs or {}).get(self.monitor)
    if value is not None and (self.best is None or value > self.best):
      self.best = value
      save_atomically(self.model, os.path.join(self.directory, "best.keras"))
      files.write_json(self.best_record, {self.monitor: float(value), "epoch": epoch + 1})


HISTORY_CSV = "history.csv"


def _read_rows(path):
  if not os.path.exists(path):
    return []
  with open(path, newline="") as f:
    return list(csv.reader(f))


class HistoryCSV(keras.callbacks.CSVLogger):
  """history.csv, one row per epoch over every fit call of a run (the spans of a resumed epoch,
  retries, transfer phases), appending. Keras's CSVLogger picks each call's columns from its
  first epoch (one without validation adds a val_ twin of every key, one with it does not), so a
  later call could write rows that do not match the header; here they take the header's."""

  def __init__(self, run_dir):
    super().__init__(os.path.join(run_dir, HISTORY_CSV), append=True)

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    header = next(iter(_read_rows(self.filename)), None)
    if header:
      self.keys = header[1:]  # after "epoch"


def _epoch_of(row, header):
  """A history.csv row's epoch (0-based), or None for a row cut short by a kill mid-write."""
  try:
    return int(row[0]) if len(row) == len(header) else None
  except ValueError:
    return None


def forget_epochs(run_dir, first_forgotten):
  """Rewrites history.csv (atomically) without the rows of epochs `first_forgotten` (0-based, as
  its epoch column) on: a retry trains them again and appends their rows anew, and a resumed
  run those a killed process wrote after its last backup. A row cut short goes too."""
  path = os.path.join(run_dir, HISTORY_CSV)
  rows = _read_rows(path)
  if not rows:
    return
  kept = [row for row in rows[1:] if (_epoch_of(row, rows[0]) is not None
                                      and _epoch_of(row, rows[0]) < first_forgotten)]
  if len(kept) == len(rows) - 1:
    return
  text = io.StringIO()
  csv.writer(text).writerows([rows[0]] + kept)  # the excel dialect, as CSVLogger writes
  files.write_text(path, text.getvalue())


def read_history(run_dir):
  """history.csv as the history dict fit returns ({key: [value per epoch]}; a val_ key holds the
  validated epochs' values only): for a backup an earlier version wrote, which holds none."""
  rows = _read_rows(os.path.join(run_dir, HISTORY_CSV))
  history = {}
  for row in rows[1:]:
    for key, value in zip(rows[0][1:], row[1:]):
      if value not in ("", "NA"):  # CSVLogger's mark of a key an epoch did not log
        history.setdefault(key, []).append(float(value))
  return history


class DivergenceGuard(keras.callbacks.Callback):
  """Stops training (model.stop_training) when it diverges; `self.diverged` then says where, and
  the epoch's checkpoints and backup are not written (AtomicCheckpoint, Backup), so the last good
  ones stay. It diverges at

  - a batch whose loss (Keras's running mean of the epoch) is NaN/inf or above `factor` times the
    reference: the first finished epoch's mean loss, and until one finished (a loss can explode
    within the first epoch: 2.9e16 and exit 0 before), the larger of the first batch's loss and
    ln(classes), a uniform prediction's cross-entropy, which no model that learns stays above;
  - an epoch whose validation loss is NaN/inf (the weights give no finite prediction);
  - an epoch not validated (train.validation_every_epochs > 1) whose weights are not all finite:
    so last.keras, the "last good" checkpoint of on_divergence=retry, is always an epoch whose
    validation loss is finite, or whose weights are."""

  def __init__(self, factor):
    super().__init__()
    self.factor, self.reference, self.diverged, self.epoch = factor, None, None, 0
    self.first_loss = None

  def on_train_begin(self, logs=None):
    self.first_loss = None  # this fit call's first batch (a retry, a resumed span: its own)

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def ceiling(self):
    """The loss above which a batch has diverged (see the class docstring)."""
    if self.reference is not None:
      return self.factor * self.reference
    classes = int(self.model.outputs[0].shape[-1])
    return self.factor * max(self.first_loss or 0.0, math.log(max(classes, 2)))

  def _stop(self, where):
    self.diverged = f"epoch {self.epoch + 1}, {where}"
    self.model.stop_training = True

  def on_train_batch_end(self, batch, logs=None):
    loss = float((logs or {}).get("loss", 0.0))
    if self.first_loss is None and math.isfinite(loss):
      self.first_loss = loss
    if not math.isfinite(loss) or loss > self.ceiling():
      self._stop(f"step {batch + 1} (loss {loss:.4g})")

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    if self.diverged:
      return
    if "val_loss" in logs and not math.isfinite(logs["val_loss"]):
      self._stop(f"validation (val_loss {logs['val_loss']:.4g})")
    elif "val_loss" not in logs and not all(np.isfinite(w).all() for w in self.model.get_weights()):
      self._stop("its end (weights not finite)")
    elif self.reference is None and math.isfinite(logs.get("loss", math.nan)):
      self.reference = logs["loss"]


class _LoggedEarlyStopping(keras.callbacks.EarlyStopping):
  """Keras's EarlyStopping, saying in one line what it did: where it stopped and whose weights it
  restored. Keras 3.15 restores the best epoch's weights when fit ends, stopped or not."""

  def on_train_begin(self, logs=None):
    super().on_train_begin(logs)
    self.last_epoch = None

  def on_epoch_end(self, epoch, logs=None):
    super().on_epoch_end(epoch, logs)
    self.last_epoch = epoch

  def on_train_end(self, logs=None):
    stopped, restored = self.stopped_epoch, self.best_weights is not None
    super().on_train_end(logs)
    restore = f"restored epoch {self.best_epoch + 1}'s weights" if restored else "kept the weights"
    if stopped:
      logging.info("early stopping at epoch %d: %s has not beaten epoch %d's %.4g "
                   "(train.early_stopping_patience=%d); %s", stopped + 1, self.monitor,
                   self.best_epoch + 1, self.best, self.patience, restore)
    elif restored and self.best_epoch != self.last_epoch:
      logging.info("early stopping: %s peaked at epoch %d (%.4g) and the run ended at epoch %d; "
                   "%s", self.monitor, self.best_epoch + 1, self.best, self.last_epoch + 1, restore)


def build_early_stopping(patience):
  """Stops after `patience` epochs without a better val_accuracy; the best epoch's weights stay."""
  return _LoggedEarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                              restore_best_weights=True)


class StepMarkedTensorBoard(keras.callbacks.TensorBoard):
  """Keras's TensorBoard callback, tracing profile_steps ("START,STOP"; "" = off) with each traced
  step marked as the profiler's analyses find steps (keras_compat.step_marker): without the marks,
  xprof (TensorBoard's Profile tab, app/train/step_profile.py) reports no step time. A step's mark
  runs from this callback's batch start to the next one's, so that it holds the step function,
  every callback's batch hooks and fit's loop between them, as tf_keras's fit marked it; the last
  ends before the profiler stops, and validation or an epoch's end closes one."""

  def __init__(self, log_dir, profile_steps, **kwargs):
    super().__init__(log_dir, profile_batch=profile_steps or 0, **kwargs)  # Keras parses it too
    self._traced = profiled_steps(profile_steps)
    self._step, self._mark = 0, None

  def _end_mark(self):
    if self._mark is not None:
      self._mark.__exit__(None, None, None)
      self._mark = None

  def on_train_begin(self, logs=None):
    self._step = 0  # counted like Keras's own (1-based, across epochs, from each fit)
    super().on_train_begin(logs)

  def on_train_batch_begin(self, batch, logs=None):
    self._end_mark()
    super().on_train_batch_begin(batch, logs)  # starts the profiler at the first traced step
    self._step += 1
    if self._step in self._traced:
      self._mark = keras_compat.step_marker(self._step)
      self._mark.__enter__()

  def on_train_batch_end(self, batch, logs=None):
    if self._traced and self._step == self._traced[-1]:
      self._end_mark()  # the profiler stops in this call
    super().on_train_batch_end(batch, logs)

  def on_test_begin(self, logs=None):
    self._end_mark()  # fit's validation is no part of a training step
    super().on_test_begin(logs)

  def on_epoch_end(self, epoch, logs=None):
    self._end_mark()
    super().on_epoch_end(epoch, logs)

  def on_train_end(self, logs=None):
    self._end_mark()
    super().on_train_end(logs)


def build(run_dir, config, schedule, timing=None, backup=None):
  """The callbacks for a run; the backup comes right after the divergence guard (so it never saves
  a diverged state) and before the EMA swap (it saves the raw weights); the log-adding ones come
  before the writers that read their values; the EMA swap before anything that evaluates or saves."""
  timing, guard = timing or Timing(), DivergenceGuard(config.train.divergence_factor)
  run_callbacks = [timing, guard] + ([backup] if backup else []) + [LearningRateLog(),
                                                                    ReleaseTrainingIterator()]
  if config.train.time_budget_seconds:
    run_callbacks.append(TimeBudget(timing, config.train.time_budget_seconds))
  swap_ema = keras.callbacks.SwapEMAWeights(swap_on_epoch=True) if config.optim.ema else None
  if swap_ema:
    # Validation and checkpoints see the EMA weights; fit() leaves them in the model at the end.
    run_callbacks.append(swap_ema)
  if config.optim.lookahead_every:
    run_callbacks.append(Lookahead(config.optim.lookahead_every, config.optim.lookahead_decay))
  if config.optim.schedule == "plateau":
    run_callbacks.append(ReduceOnPlateau(schedule, config.optim.decay_rate,
                                         config.optim.plateau_patience, config.optim.final_fraction))
  if config.train.early_stopping_patience:
    run_callbacks.append(build_early_stopping(config.train.early_stopping_patience))
  if swap_ema:
    run_callbacks.append(KeepEMAOnEarlyStop(swap_ema))
  run_callbacks += [
      HistoryCSV(run_dir),
      # Validating on the test split (the speedrun convention), nothing selects: best = last.
      AtomicCheckpoint(os.path.join(run_dir, "checkpoints"), guard,
                       monitor=None if config.derived.validation_is_test else "val_accuracy"),
      StepMarkedTensorBoard(os.path.join(run_dir, "tensorboard"), config.train.profile_steps,
                            update_freq="epoch"),
  ]
  if backup:  # last: an epoch's backup counts once everything above has written the epoch
    run_callbacks.append(backup.commit_callback())
  run_callbacks.append(preemption.StopOnSignal(backup))  # after all: SIGTERM stops with a backup
  run_callbacks.append(EpochEndMark(timing))  # last: the epoch-end callbacks' time ends here
  return timing, guard, run_callbacks


# Training images precise batch norm reads (Wu & Johnson 2021 found ~1k enough), at most 256 MB
# of them decoded (held in memory for the run), in batches of at most 128 MB of float32 images:
# its forward pass runs beside training's memory (at the run's batch of 256 images of 500x369,
# the run was killed out of memory on 23 GB).
PRECISE_BN_IMAGES, PRECISE_BN_BYTES, PRECISE_BN_BATCH_BYTES = 1024, 2 ** 28, 2 ** 27


class PreciseBatchNorm(keras.callbacks.Callback):
  """Sets batch norm's moving statistics to those of `batches` under the current weights
  (app.models.layers.recompute_batch_norm_statistics) before each validation, at the end of an
  epoch that had none (before its checkpoint) and when training ends, so validation, checkpoints,
  the test and the export see the statistics of the weights they use. Goes after the EMA swap and
  early stopping (it measures the weights they put in place), before the checkpoint writers."""

  def __init__(self, batches):
    super().__init__()
    self.batches, self.validated = batches, False

  def _recompute(self):
    recompute_batch_norm_statistics(
        self.model, (keras.ops.cast(images, "float32") for images, _ in self.batches))

  def on_epoch_begin(self, epoch, logs=None):
    self.validated = False

  def on_test_begin(self, logs=None):
    self._recompute()
    self.validated = True

  def on_epoch_end(self, epoch, logs=None):
    if not self.validated:
      self._recompute()

  def on_train_end(self, logs=None):
    self._recompute()


def add_precise_batch_norm(run_callbacks, model, data, momentum):
  """Puts a PreciseBatchNorm into build()'s `run_callbacks`, before the writers, when batch
  norm's moving averages span more steps than an epoch has (1 / (1 - momentum): 10 at 0.9). Such
  averages mix in the weights of epochs ago: 24 steps at 2 an epoch left them at 0.68-0.87 of the
  final weights' variance and the test accuracy at chance (app/models/layers.py). Longer epochs
  keep Keras's moving averages (and every recipe's figures) as they are."""
  window = 1.0 / (1.0 - momentum)  # steps; 1e-6: 1 / (1 - 0.9) is 10.000000000000002
  if data.steps_per_epoch >= window - 1e-6 or not any(batch_norm_layers(model)):
    return
  image_bytes = int(np.prod(data.image_shape))
  count = min(data.num_train, PRECISE_BN_IMAGES,
              max(data.batch_size, PRECISE_BN_BYTES // image_bytes))
  examples = data.train_examples.subset(
      np.linspace(0, data.num_train - 1, count).round().astype(int))
  logging.info("batch norm: %d steps an epoch, fewer than the %.0f its moving averages span; "
               "statistics recomputed from %d training images before each validation and at the "
               "end (precise BN)", data.steps_per_epoch, window, count)
  writers = next(i for i, c in enumerate(run_callbacks) if isinstance(c, HistoryCSV))
  batch_size = min(data.batch_size, max(1, PRECISE_BN_BATCH_BYTES // (4 * image_bytes)))
  run_callbacks.insert(writers, PreciseBatchNorm(pipeline.ordered_batches(
      examples, data.image_shape, batch_size, cache=True, resize=data.data.resize)))
