"""The run directory's callbacks and their order: timing, the time budget, the learning-rate log,
the divergence guard, early stopping, atomic checkpoints, history.csv and TensorBoard (build()). Backups are
app/train/backup.py; weight averaging and the plateau schedule are app/optim's."""

import csv
import io
import json
import math
import os
import time

import keras
from absl import logging

from app.core import files
from app.optim.averaging import KeepEMAOnEarlyStop, Lookahead
from app.optim.schedules import ReduceOnPlateau


class Timing(keras.callbacks.Callback):
  """Adds `elapsed_seconds` (wall time since fit started, validation and compilation included:
  the time-to-accuracy clock) to each epoch's logs, and keeps the time spent in training batches
  alone so throughput is not diluted by validation."""

  def __init__(self):
    super().__init__()
    self.start = self.epoch_start = self.validation_start = None
    self.train_seconds_per_epoch = []
    self.stopped_by_budget = None  # where TimeBudget stopped the run, if it did

  def on_train_begin(self, logs=None):
    if self.start is None:  # one clock across the fit calls of a run (retries, transfer phases)
      self.start = time.perf_counter()

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch_start = time.perf_counter()
    self.validation_start = None

  def on_test_begin(self, logs=None):
    self.validation_start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    train_end = self.validation_start or time.perf_counter()
    self.train_seconds_per_epoch.append(train_end - self.epoch_start)
    if logs is not None:
      logs["elapsed_seconds"] = time.perf_counter() - self.start

  @property
  def elapsed_seconds(self):
    return time.perf_counter() - self.start


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
  """Saves `last.keras` every epoch and `best.keras` when `monitor` improves, both atomically;
  an epoch the DivergenceGuard flagged is not saved, so the last good checkpoint survives."""

  def __init__(self, directory, guard, monitor="val_accuracy"):
    super().__init__()
    self.directory, self.guard, self.monitor = directory, guard, monitor
    os.makedirs(directory, exist_ok=True)
    # A later fit call of the same run (a retry, a transfer phase) keeps the best so far.
    self.best_record = os.path.join(directory, "best.json")
    self.best = None
    if os.path.exists(self.best_record):
      with open(self.best_record) as f:
        self.best = json.load(f)[monitor]

  def on_epoch_end(self, epoch, logs=None):
    if self.guard.diverged:
      return
    save_atomically(self.model, os.path.join(self.directory, "last.keras"))
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


def forget_epochs(run_dir, first_forgotten):
  """Rewrites history.csv (atomically) without the rows of epochs `first_forgotten` (0-based, as
  its epoch column) on: a retry trains them again and appends their rows anew."""
  path = os.path.join(run_dir, HISTORY_CSV)
  rows = _read_rows(path)
  if not rows:
    return
  text = io.StringIO()
  csv.writer(text).writerows(  # the excel dialect, as CSVLogger writes
      [rows[0]] + [row for row in rows[1:] if int(row[0]) < first_forgotten])
  files.write_text(path, text.getvalue())


class DivergenceGuard(keras.callbacks.Callback):
  """Stops training at the first batch whose loss is NaN/inf or above `factor` times the first
  epoch's mean loss; `self.diverged` then says where. The checkpoints of earlier epochs stay."""

  def __init__(self, factor):
    super().__init__()
    self.factor, self.reference, self.diverged, self.epoch = factor, None, None, 0

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    loss = float((logs or {}).get("loss", 0.0))
    if not math.isfinite(loss) or (self.reference is not None and loss > self.factor * self.reference):
      self.diverged = f"epoch {self.epoch + 1}, step {batch + 1} (loss {loss:.4g})"
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    if self.reference is None and logs and math.isfinite(logs.get("loss", math.nan)):
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


def build(run_dir, config, schedule, timing=None, backup=None):
  """The callbacks for a run; the backup comes right after the divergence guard (so it never saves
  a diverged state) and before the EMA swap (it saves the raw weights); the log-adding ones come
  before the writers that read their values; the EMA swap before anything that evaluates or saves."""
  timing, guard = timing or Timing(), DivergenceGuard(config.train.divergence_factor)
  run_callbacks = [timing, guard] + ([backup] if backup else []) + [LearningRateLog()]
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
      AtomicCheckpoint(os.path.join(run_dir, "checkpoints"), guard),
      keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), update_freq="epoch",
                                  # "START,STOP" (validated): Keras parses it; "" = 0, off
                                  profile_batch=config.train.profile_steps or 0),
  ]
  return timing, guard, run_callbacks
