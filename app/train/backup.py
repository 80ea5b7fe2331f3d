"""Backups for resuming a killed or preempted run at the same batch, written atomically."""

import glob
import json
import os
import shutil

import keras

from app.core import files


class Backup(keras.callbacks.Callback):
  """Weights and optimizer state at each epoch end and every `save_freq` steps (an int; "epoch"
  = epoch ends only), made exact and atomic for resuming a killed or preempted run:

  - each save is `weights-E-B.weights.h5` (epoch E, B batches of it done) written through a
    temporary file, then `state.json` naming it, also renamed into place: a kill at any moment
    leaves a consistent pair;
  - the batch within the epoch is recorded across fit calls, and app/train/fitting.py restores it
    (`restore`), skipping the batches already done (keras.callbacks.BackupAndRestore would replay a
    mid-epoch backup's epoch from its first batch);
  - only the process that `writes` (the chief) saves; every worker restores from the same folder.

  The step count follows keras.callbacks.BackupAndRestore's rule (steps_per_execution > 1 reports
  every k-th batch: the steps in between count too); the folder is kept until the whole run has
  ended (app/train/train_and_evaluate.py removes it).
  """

  STATE = "state.json"

  def __init__(self, backup_dir, save_freq="epoch", writes=True):
    super().__init__()
    self.backup_dir, self.save_freq, self.writes = backup_dir, save_freq, writes
    self.epoch = self.skipped = self.batches_done = 0
    self.last_batch, self.steps_since_save = -1, 0

  def start(self, epoch, skipped):
    """Before each fit call: it begins at `epoch` with `skipped` of its batches already done."""
    self.epoch, self.skipped, self.batches_done = epoch, skipped, skipped
    self.last_batch, self.steps_since_save = -1, 0

  def on_train_batch_end(self, batch, logs=None):
    self.batches_done = self.skipped + batch + 1
    if self.save_freq == "epoch":
      return
    self.steps_since_save += batch + 1 if batch <= self.last_batch else batch - self.last_batch
    self.last_batch = batch
    if self.steps_since_save >= self.save_freq:
      self.steps_since_save = 0
      self.save()

  def on_epoch_end(self, epoch, logs=None):
    self.skipped = self.batches_done = 0
    self.epoch, self.last_batch = epoch + 1, 0  # the next epoch, batch 0
    self.save()  # step-level backups also back up every epoch end

  def save(self):
    if not self.writes or self.model.stop_training:  # DivergenceGuard stopped it: keep the last good
      return
    os.makedirs(self.backup_dir, exist_ok=True)
    name = f"weights-{self.epoch}-{self.batches_done}.weights.h5"
    with files.atomic_path(os.path.join(self.backup_dir, name), ".weights.h5") as temporary:
      self.model.save_weights(temporary, overwrite=True)
    files.write_json(os.path.join(self.backup_dir, self.STATE),
                     {"epoch": self.epoch, "batches_done": self.batches_done, "weights": name})
    for old in glob.glob(os.path.join(self.backup_dir, "weights-*.weights.h5")):
      if os.path.basename(old) != name:
        os.remove(old)

  @staticmethod
  def read(backup_dir):
    """The last backup's {"epoch", "batches_done", "weights"}, or None when there is none."""
    path = os.path.join(backup_dir, Backup.STATE)
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return json.load(f)

  @staticmethod
  def restore(model, backup_dir):
    """Loads the last backup's weights and optimizer state into `model` (built, with its
    optimizer built); returns (epoch, batches done of it), or None when there is no backup."""
    state = Backup.read(backup_dir)
    if state is None:
      return None
    model.load_weights(os.path.join(backup_dir, state["weights"]))
    return state["epoch"], state["batches_done"]

  @staticmethod
  def remove(backup_dir):
    shutil.rmtree(backup_dir, ignore_errors=True)
