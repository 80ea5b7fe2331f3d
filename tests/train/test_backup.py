"""app/train/backup.py: where a backup is taken and committed, how it is restored, and the clock
and trained state it records. tests/train/test_resume_points.py kills real runs at each point."""

import json
import os

import keras
import pytest

from app.train import callbacks
from app.train.backup import Backup


@pytest.fixture
def model():
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  model.compile(optimizer="sgd", loss="mse")
  model.optimizer.build(model.trainable_variables)
  return model


def state(folder):
  with open(os.path.join(folder, Backup.STATE)) as f:
    return json.load(f)


def weight_files(folder):
  return sorted(n for n in os.listdir(folder) if n.endswith(".weights.h5"))


def test_a_step_backup_due_on_an_epoch_s_last_batch_is_left_to_the_epoch_end(tmp_path, model):
  """Taken there, it resumed into an epoch with no step left ("Your input ran out of data")."""
  backup = Backup(str(tmp_path), save_freq=2)
  backup.set_model(model)
  commit = backup.commit_callback()
  backup.start(0, 0, steps=4)
  for batch in range(4):
    backup.on_train_batch_end(batch)
  assert (state(tmp_path)["epoch"], state(tmp_path)["batches_done"]) == (0, 2)
  # The epoch end writes its weights; they count once the epoch's history row and checkpoints
  # (the callbacks before the commit) are written too.
  backup.on_epoch_end(0)
  assert state(tmp_path)["batches_done"] == 2
  assert weight_files(tmp_path) == ["weights-0-2.weights.h5", "weights-1-0.weights.h5"]
  commit.on_epoch_end(0)
  assert (state(tmp_path)["epoch"], state(tmp_path)["batches_done"]) == (1, 0)
  assert weight_files(tmp_path) == ["weights-1-0.weights.h5"]
  # The next epoch counts its steps afresh, from its first batch.
  backup.on_train_batch_end(0)
  backup.on_train_batch_end(1)
  assert state(tmp_path)["batches_done"] == 2


def test_a_backup_of_an_epoch_s_last_step_resumes_at_the_next_epoch(tmp_path, model):
  """What an earlier version wrote: epoch 1 with all of its 4 steps done."""
  model.save_weights(str(tmp_path / "weights-0-4.weights.h5"))
  (tmp_path / Backup.STATE).write_text(json.dumps(
      {"epoch": 0, "batches_done": 4, "weights": "weights-0-4.weights.h5"}))
  resumed = Backup.restore(model, str(tmp_path), steps_per_epoch=4)
  assert (resumed["epoch"], resumed["batches_done"]) == (1, 0)
  assert Backup.restore(model, str(tmp_path), steps_per_epoch=8)["batches_done"] == 4


def test_no_backup_of_a_stopped_epoch_and_none_from_a_worker(tmp_path, model):
  backup = Backup(str(tmp_path / "chief"), save_freq=1)
  backup.set_model(model)
  backup.start(0, 0, steps=4)
  model.stop_training = True  # the divergence guard stopped it
  backup.on_train_batch_end(0)
  backup.on_epoch_end(0)
  backup.commit_callback().on_epoch_end(0)
  assert not os.path.exists(tmp_path / "chief")
  worker = Backup(str(tmp_path / "worker"), save_freq=1, writes=False)
  worker.set_model(model)
  worker.on_train_batch_end(0)
  worker.save_trained()
  assert not os.path.exists(tmp_path / "worker")


def test_the_trained_state_and_the_clock_go_on_across_resumes(tmp_path, model):
  timing = callbacks.Timing()
  timing.seconds_before, timing.train_seconds_per_epoch = 15.0, [7.0, 7.0]
  backup = Backup(str(tmp_path), timing=timing)
  backup.set_model(model)
  backup.on_epoch_end(1)
  backup.save_trained()  # what fit left: early stopping's restore, the EMA, ...
  saved = state(tmp_path)
  assert saved["trained"] and saved["weights"] == Backup.TRAINED_WEIGHTS
  assert saved["elapsed_seconds"] == 15.0 and saved["train_seconds_per_epoch"] == [7.0, 7.0]
  assert weight_files(tmp_path) == [Backup.TRAINED_WEIGHTS]
  # The next process, killed after training, finishes from it: the clock as it was.
  resumed_timing = callbacks.Timing()
  resumed = Backup.restore(model, str(tmp_path), steps_per_epoch=4)
  resumed_timing.resume(resumed)
  assert resumed_timing.elapsed_seconds == 15.0  # no fit has run: no clock of its own
  assert resumed_timing.train_seconds_per_epoch == [7.0, 7.0]
  again = Backup(str(tmp_path), timing=resumed_timing)
  again.record_resume(resumed)
  assert state(tmp_path)["resumes"] == [
      {"epoch": 2, "batches_done": 0, "elapsed_seconds": 15.0, "trained": True}]
  assert state(tmp_path)["weights"] == Backup.TRAINED_WEIGHTS
