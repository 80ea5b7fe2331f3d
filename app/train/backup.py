"""Backups for resuming a killed or preempted run at the same batch, written atomically."""

import glob
import json
import os
import shutil

import keras
from absl import logging

from app.core import files
from app.core.crash_points import crash_point


class Backup(keras.callbacks.Callback):
  """Weights and optimizer state at each epoch end and every `save_freq` steps (an int; "epoch"
  = epoch ends only), made exact and atomic for resuming a killed or preempted run:

  - each save is `weights-E-B.weights.h5` (epoch E, B batches of it done) written through a
    temporary file, then `state.json` naming it, also renamed into place: a kill at any moment
    leaves a consistent pair;
  - an epoch end's backup is committed (state.json) only once that epoch's history.csv row and
    checkpoints are written (`commit_callback`, last in the callback list), and a rerun drops
    the rows a killed process wrote past its backup (app/train/fitting.py): history.csv holds each
    epoch once, whenever the kill;
  - a step backup due on an epoch's last batch is left to the epoch end, which follows at once: a
    backup there would resume into an epoch with no step left; `restore` moves one an earlier
    version wrote to the next epoch's start;
  - the batch within the epoch is recorded across fit calls, and app/train/fitting.py restores it
    (`restore`), skipping the batches already done (keras.callbacks.BackupAndRestore would replay a
    mid-epoch backup's epoch from its first batch);
  - each backup records the run's clock (`timing`, app/train/callbacks.py Timing.state), so a
    resumed run's elapsed_seconds and train_seconds go on from it instead of restarting, and the
    history of the epochs before it (`history`, as fit returns it), which every worker resumes
    with (only the chief has history.csv);
  - when fit has ended, `save_trained` records the weights it left (early stopping's restore, the
    EMA, Lookahead's slow weights applied) as "trained": a run killed during its final evaluation
    or export is finished from them without training again;
  - only the process that `writes` (the chief) saves; every worker restores from the same folder.

  The step count follows keras.callbacks.BackupAndRestore's rule (steps_per_execution > 1 reports
  every k-th batch: the steps in between count too); the folder is kept until the whole run has
  ended (app/train/train_and_evaluate.py removes it).
  """

  STATE = "state.json"
  TRAINED_WEIGHTS = "weights-trained.weights.h5"

  def __init__(self, backup_dir, save_freq="epoch", writes=True, timing=None):
    super().__init__()
    self.backup_dir, self.save_freq, self.writes = backup_dir, save_freq, writes
    self.timing = timing  # app.train.callbacks.Timing, or None: no clock recorded
    self.epoch = self.skipped = self.batches_done = 0
    self.steps = None  # of each epoch, as fit runs them
    self.last_batch, self.steps_since_save = -1, 0
    self.pending = None  # an epoch end's weights file, written but not committed yet
    self.history = {}  # {key: [value per epoch]} of the epochs ended (val_ keys: validated ones)

  def start(self, epoch, skipped, steps=None):
    """Before each fit call: it begins at `epoch` with `skipped` of its `steps` batches done."""
    self.epoch, self.skipped, self.batches_done, self.steps = epoch, skipped, skipped, steps
    self.last_batch, self.steps_since_save, self.pending = -1, 0, None

  def on_train_batch_end(self, batch, logs=None):
    self.batches_done = self.skipped + batch + 1
    if self.save_freq != "epoch":
      self.steps_since_save += batch + 1 if batch <= self.last_batch else batch - self.last_batch
      self.last_batch = batch
      last_of_epoch = self.steps is not None and self.batches_done >= self.steps
      if self.steps_since_save >= self.save_freq and not last_of_epoch:
        self.steps_since_save = 0
        self.save()
    crash_point("batch_end")

  def on_epoch_end(self, epoch, logs=None):
    self.skipped = self.batches_done = self.steps_since_save = 0
    self.epoch, self.last_batch = epoch + 1, -1  # the next epoch, batch 0
    # The raw weights (this callback comes before the EMA swap), committed by commit_callback.
    self.pending = self._write_weights() if self._saves() else None

  def commit_callback(self):
    """The callback, last in the list, that commits each epoch end's backup (class docstring)."""
    return _CommitEpochBackup(self)

  def _saves(self):
    # DivergenceGuard (or the time budget) stopped it: keep the last good backup.
    return self.writes and not self.model.stop_training

  def save(self):
    if self._saves():
      self.commit(self._write_weights())

  def save_trained(self):
    """Records the weights fit has left as the run's trained state (class docstring)."""
    if self.writes:
      self.commit(self._write_weights(self.TRAINED_WEIGHTS), trained=True)

  def record_resume(self, state):
    """Writes the `state` this process resumes from (restore's) again with its resume added to
    the clock's list (Timing.resumes): metrics.json lists every resume, even one killed again
    before its next backup."""
    if self.writes and self.timing is not None:
      files.write_json(os.path.join(self.backup_dir, self.STATE),
                       dict(state, resumes=self.timing.resumes))

  def _write_weights(self, name=None):
    os.makedirs(self.backup_dir, exist_ok=True)
    name = name or f"weights-{self.epoch}-{self.batches_done}.weights.h5"
    with files.atomic_path(os.path.join(self.backup_dir, name), ".weights.h5") as temporary:
      self.model.save_weights(temporary, overwrite=True)
    return name

  def commit(self, name, trained=False):
    state = {"epoch": self.epoch, "batches_done": self.batches_done, "weights": name,
             "trained": trained, "history": self.history}
    if self.timing is not None:
      state.update(self.timing.state())
    files.write_json(os.path.join(self.backup_dir, self.STATE), state)
    for old in glob.glob(os.path.join(self.backup_dir, "weights-*.weights.h5")):
      if os.path.basename(old) != name:
        os.remove(old)

  @staticmethod
  def read(backup_dir):
    """The last backup's state ({"epoch", "batches_done", "weights", "trained", "history", and
    the run's clock: Timing.state}), or None when there is none."""
    path = os.path.join(backup_dir, Backup.STATE)
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return json.load(f)

  @staticmethod
  def restore(model, backup_dir, steps_per_epoch):
    """Loads the last backup's weights and optimizer state into `model` (built, with its
    optimizer built); returns its state (read), or None when there is no backup. A backup of an
    epoch's last step (`steps_per_epoch` batches done: written by an earlier version) comes back
    as the next epoch's start."""
    state = Backup.read(backup_dir)
    if state is None:
      return None
    model.load_weights(os.path.join(backup_dir, state["weights"]))
    if not state.get("trained") and state["batches_done"] >= steps_per_epoch:
      logging.warning("the backup in %s was taken on the last step of epoch %d: resuming at the "
                      "start of epoch %d", backup_dir, state["epoch"] + 1, state["epoch"] + 2)
      state = dict(state, epoch=state["epoch"] + 1, batches_done=0)
    return state

  @staticmethod
  def remove(backup_dir):
    shutil.rmtree(backup_dir, ignore_errors=True)


class _CommitEpochBackup(keras.callbacks.Callback):
  """Commits the epoch end's backup that `backup` wrote, once the callbacks before this one (the
  history row, the checkpoints) have written the epoch."""

  def __init__(self, backup):
    super().__init__()
    self.backup = backup

  def on_epoch_end(self, epoch, logs=None):
    for key, value in (logs or {}).items():  # every callback has added its values by now
      self.backup.history.setdefault(key, []).append(float(value))
    crash_point("epoch_written")
    if self.backup.pending:
      self.backup.commit(self.backup.pending)
      self.backup.pending = None
    crash_point("epoch_end")
