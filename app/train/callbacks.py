"""The run directory's callbacks and their order: timing, the time budget, the learning-rate log,
the divergence guard, atomic checkpoints, history.csv and TensorBoard (build()). Backups are
app/train/backup.py; weight averaging and the plateau schedule are app/optim's."""

import json
import math
import os
import time

import keras

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
    run_callbacks.append(keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=config.train.early_stopping_patience,
        restore_best_weights=True))
  if swap_ema:
    run_callbacks.append(KeepEMAOnEarlyStop(swap_ema))
  run_callbacks += [
      keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv"), append=True),
      AtomicCheckpoint(os.path.join(run_dir, "checkpoints"), guard),
      keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), update_freq="epoch",
                                  # "START,STOP" (validated): Keras parses it; "" = 0, off
                                  profile_batch=config.train.profile_steps or 0),
  ]
  return timing, guard, run_callbacks
