"""Callbacks for the run directory: timing, history.csv, atomic checkpoints, TensorBoard."""

import os
import time

import keras


class Timing(keras.callbacks.Callback):
  """Adds `elapsed_seconds` (wall time since fit started, validation and compilation included:
  the time-to-accuracy clock) to each epoch's logs, and keeps the time spent in training batches
  alone so throughput is not diluted by validation."""

  def __init__(self):
    super().__init__()
    self.start = self.epoch_start = self.validation_start = None
    self.train_seconds_per_epoch = []

  def on_train_begin(self, logs=None):
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


class LearningRateLog(keras.callbacks.Callback):
  """Adds the optimizer's current `learning_rate` (after the schedule) to each epoch's logs."""

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def save_atomically(model, path):
  """Write `path` through a temporary file and a rename: a crash never leaves half a checkpoint."""
  temporary = f"{path}.tmp.keras"
  model.save(temporary)
  os.replace(temporary, path)


class AtomicCheckpoint(keras.callbacks.Callback):
  """Saves `last.keras` every epoch and `best.keras` when `monitor` improves, both atomically."""

  def __init__(self, directory, monitor="val_accuracy"):
    super().__init__()
    self.directory, self.monitor, self.best = directory, monitor, None
    os.makedirs(directory, exist_ok=True)

  def on_epoch_end(self, epoch, logs=None):
    save_atomically(self.model, os.path.join(self.directory, "last.keras"))
    value = (logs or {}).get(self.monitor)
    if value is not None and (self.best is None or value > self.best):
      self.best = value
      save_atomically(self.model, os.path.join(self.directory, "best.keras"))


def build(run_dir):
  """The standard callbacks for a run directory; the log-adding ones come first so the writers
  after them see their values."""
  timing = Timing()
  return timing, [
      timing,
      LearningRateLog(),
      keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv")),
      AtomicCheckpoint(os.path.join(run_dir, "checkpoints")),
      keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), update_freq="epoch"),
  ]
