"""TimeBudget: a run stops cleanly once its clock passes train.time_budget_seconds. Lookahead:
airbench's slow-weight average, synced every k steps, ending on the slow weights.
ReleaseTrainingIterator: fit's training iterator is deleted off the main thread."""

import threading
import time
import types
import weakref

import keras
import numpy as np
import pytest

import tensorflow as tf

from app import keras_compat
from app.train import callbacks
from app.optim import averaging


def test_time_budget_stops_training_and_says_where():
  timing = callbacks.Timing()
  timing.start = 0.0  # perf_counter() is far past 0: the budget has run out
  budget = callbacks.TimeBudget(timing, 5.0)
  budget.set_model(types.SimpleNamespace(stop_training=False))
  budget.on_epoch_begin(2)
  budget.on_train_batch_end(6)
  assert budget.model.stop_training
  assert timing.stopped_by_budget == "epoch 3, step 7"
  timing.start = timing.elapsed_seconds + 1e9  # a fresh clock: under budget
  budget.model.stop_training = False
  budget.on_train_batch_end(0)
  assert not budget.model.stop_training


def test_lookahead_pulls_toward_the_slow_weights_and_ends_on_them():
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  lookahead = averaging.Lookahead(every=2, peak_decay=0.5)
  lookahead.set_model(model)
  lookahead.set_params({"epochs": 2, "steps": 4})  # 8 steps in all
  kernel = model.layers[0].kernel
  start = np.array(kernel)
  lookahead.on_train_begin()
  lookahead.on_epoch_begin(0)
  kernel.assign(start + 1.0)  # a training step moved the fast weights
  lookahead.on_train_batch_end(0)  # step 1: no sync
  np.testing.assert_allclose(kernel, start + 1.0)
  lookahead.on_train_batch_end(1)  # step 2: d = 0.5 * (2/8)^3 = 1/128
  decay = 0.5 * (2 / 8) ** 3
  np.testing.assert_allclose(kernel, start * decay + (start + 1.0) * (1 - decay), rtol=1e-6)
  slow = np.array(kernel)
  lookahead.on_epoch_begin(1)
  kernel.assign(slow + 4.0)
  lookahead.on_train_batch_end(3)  # step 8, the last (and, with steps_per_execution, a jump)
  np.testing.assert_allclose(kernel, slow, rtol=1e-6)  # d = 1: the slow weights stay


def test_lookahead_trains_a_model_through_fit():
  keras.utils.set_random_seed(0)  # unseeded, the weights' draw ended at 0.78 accuracy now and then
  rng = np.random.default_rng(0)
  x = rng.normal(size=(64, 4)).astype("float32")
  y = (x[:, 0] > 0).astype("int32")
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                            keras.layers.BatchNormalization(), keras.layers.Dense(2)])
  model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(True),
                metrics=["accuracy"])
  history = model.fit(x, y, batch_size=8, epochs=4, verbose=0,
                      callbacks=[averaging.Lookahead(every=5, peak_decay=0.95 ** 5)])
  assert history.history["accuracy"][-1] > 0.8
  assert all(np.isfinite(np.array(v)).all() for v in model.variables)


def _messages(caplog, text):
  return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def _replay_early_stopping(caplog, patience, accuracies):
  """Drives build_early_stopping(patience) through epochs of these val_accuracy values, then the
  end of training; returns (whether it stopped training, its "early stopping" log lines)."""
  caplog.set_level("INFO", logger="absl")  # a SavedModel save leaves absl at WARNING
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  stopping = callbacks.build_early_stopping(patience=patience)
  stopping.set_model(model)
  stopping.on_train_begin()
  model.stop_training = False
  for epoch, accuracy in enumerate(accuracies):
    stopping.on_epoch_end(epoch, {"val_accuracy": accuracy})
  stopped = model.stop_training
  stopping.on_train_end()
  return stopped, _messages(caplog, "early stopping")


def test_early_stopping_says_where_it_stopped_and_whose_weights_it_restored(caplog):
  stopped, messages = _replay_early_stopping(caplog, 2, [0.5, 0.7, 0.6, 0.65])
  assert stopped
  assert messages == [
      "early stopping at epoch 4: val_accuracy has not beaten epoch 2's 0.7 "
      "(train.early_stopping_patience=2); restored epoch 2's weights"]


def test_early_stopping_says_so_when_it_restores_an_earlier_epoch_at_the_end(caplog):
  # The run ends before the patience runs out.
  _, messages = _replay_early_stopping(caplog, 5, [0.5, 0.7, 0.6])
  assert messages == [
      "early stopping: val_accuracy peaked at epoch 2 (0.7) and the run ended at epoch 3; "
      "restored epoch 2's weights"]


def test_a_resumed_clock_goes_on_from_its_backup():
  """A resumed run restarted its clock (elapsed_seconds 15.0 -> 5.2), and one with nothing left
  to train had none at all (TypeError: float - NoneType)."""
  killed = callbacks.Timing()
  killed.start = time.perf_counter() - 15.0  # fit began 15 s ago
  killed.train_seconds_per_epoch = [6.0, 6.0]
  state = dict(killed.state(), epoch=2, batches_done=3)
  assert state["elapsed_seconds"] == pytest.approx(15.0, abs=0.1)
  resumed = callbacks.Timing()
  resumed.resume(state)
  assert resumed.elapsed_seconds == pytest.approx(15.0, abs=0.1)  # before its own fit begins
  resumed.on_train_begin()
  logs = {}
  resumed.on_epoch_begin(2)
  resumed.on_epoch_end(2, logs)
  assert logs["elapsed_seconds"] >= state["elapsed_seconds"]
  assert len(resumed.train_seconds_per_epoch) == 3 and resumed.batches_skipped == 3
  assert resumed.resumes == [{"epoch": 2, "batches_done": 3, "trained": False,
                              "elapsed_seconds": state["elapsed_seconds"]}]
  again = callbacks.Timing()  # killed again before its next backup, resumed from the same one
  again.resume(dict(resumed.state(), epoch=3, batches_done=0))
  assert again.batches_skipped == 3 and len(again.resumes) == 2


def test_a_resumed_run_forgets_the_rows_written_after_its_backup_and_a_row_cut_short(tmp_path):
  path = tmp_path / callbacks.HISTORY_CSV
  path.write_text("epoch,loss,val_loss\r\n0,2.0,NA\r\n1,1.5,1.6\r\n2,1.2,1.3\r\n3,1.")
  callbacks.forget_epochs(str(tmp_path), 2)  # the run resumes in epoch 3
  assert path.read_bytes() == b"epoch,loss,val_loss\r\n0,2.0,NA\r\n1,1.5,1.6\r\n"
  assert callbacks.read_history(str(tmp_path)) == {"loss": [2.0, 1.5], "val_loss": [1.6]}
  path.write_bytes(path.read_bytes() + b"2,1.")  # killed mid-row: the rerun resumes in epoch 3
  callbacks.forget_epochs(str(tmp_path), 2)
  assert path.read_bytes() == b"epoch,loss,val_loss\r\n0,2.0,NA\r\n1,1.5,1.6\r\n"


# === Issue 19 (17): divergence in the first epoch, NaN validation, the last good checkpoint ===


def _ten_class_model():
  inputs = keras.Input((4,))
  return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(inputs))


def test_a_loss_exploding_in_the_first_epoch_is_divergence():
  """The reference was the first epoch's mean loss, so nothing was caught within it: 2.9e16 and
  exit 0. Until an epoch ends, the ceiling is factor x max(first batch, ln(classes))."""
  guard = callbacks.DivergenceGuard(factor=10.0)
  guard.set_model(_ten_class_model())
  guard.model.stop_training = False  # fit sets it
  guard.on_train_begin()
  guard.on_epoch_begin(0)
  guard.on_train_batch_end(0, {"loss": 2.2})
  guard.on_train_batch_end(1, {"loss": 21.0})  # below 10 x ln(10) = 23.0
  assert not guard.diverged and not guard.model.stop_training
  guard.on_train_batch_end(2, {"loss": 2.9e16})
  assert guard.diverged == "epoch 1, step 3 (loss 2.9e+16)" and guard.model.stop_training


def _checkpointed_epoch(guard, checkpoint, epoch, logs, weight):
  guard.model.stop_training = False
  guard.on_epoch_begin(epoch)
  guard.model.set_weights([np.full_like(w, weight) for w in guard.model.get_weights()])
  for callback in (guard, checkpoint):  # callbacks.build's order: the guard first
    callback.on_epoch_end(epoch, logs)


def test_a_nan_validation_loss_is_divergence_and_last_keras_stays_the_finite_epoch(tmp_path):
  """An epoch with a NaN val_loss was saved as last.keras, the checkpoint on_divergence=retry
  reloads as the last good one."""
  from app.models import load_model  # pylint: disable=g-import-not-at-top
  model, guard = _ten_class_model(), callbacks.DivergenceGuard(factor=10.0)
  checkpoint = callbacks.AtomicCheckpoint(str(tmp_path), guard)
  for callback in (guard, checkpoint):
    callback.set_model(model)
  _checkpointed_epoch(guard, checkpoint, 0, {"loss": 2.0, "val_loss": 1.5, "val_accuracy": 0.5},
                      0.25)
  assert not guard.diverged and guard.reference == 2.0
  _checkpointed_epoch(guard, checkpoint, 1, {"loss": 1.9, "val_loss": float("nan"),
                                             "val_accuracy": 0.1}, 7.0)
  assert guard.diverged == "epoch 2, validation (val_loss nan)" and model.stop_training
  saved = load_model(str(tmp_path / "last.keras")).get_weights()
  assert all((w == 0.25).all() for w in saved)  # epoch 1's, not the NaN-validated epoch 2's


def test_an_epoch_not_validated_with_weights_not_finite_is_divergence():
  model, guard = _ten_class_model(), callbacks.DivergenceGuard(factor=10.0)
  guard.set_model(model)
  guard.on_epoch_end(0, {"loss": 2.0})  # validation_every_epochs > 1: no val_loss this epoch
  assert not guard.diverged and guard.reference == 2.0
  model.set_weights([np.full_like(w, np.inf) for w in model.get_weights()])
  model.stop_training = False
  guard.on_epoch_begin(1)
  guard.on_epoch_end(1, {"loss": 2.0})
  assert guard.diverged == "epoch 2, its end (weights not finite)" and model.stop_training


def _bn_net():
  from app.models.layers import BatchNormalization  # pylint: disable=g-import-not-at-top
  inputs = keras.Input((8, 8, 3))
  x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
  x = keras.layers.ReLU()(BatchNormalization(momentum=0.9, name="bn")(x))
  outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
  model = keras.Model(inputs, outputs)
  model.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")
  return model


def test_precise_batch_norm_runs_when_the_moving_averages_span_more_than_an_epoch(tmp_path):
  # Issue 18: 2 steps an epoch left batch norm's moving averages far from the final weights'
  # statistics (test accuracy at chance); validation, checkpoints and the end get recomputed ones.
  from app.data.sources import Examples  # pylint: disable=g-import-not-at-top
  from app.models.layers import recompute_batch_norm_statistics  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (24, 8, 8, 3)).astype("uint8")
  labels = rng.integers(0, 2, 24)
  data = types.SimpleNamespace(
      steps_per_epoch=2, num_train=24, image_shape=(8, 8, 3), batch_size=12,
      train_examples=Examples(labels=labels.astype("int32"), images=images),
      data=types.SimpleNamespace(resize="resize"))
  model = _bn_net()
  writers = [callbacks.HistoryCSV(str(tmp_path))]
  callbacks.add_precise_batch_norm(writers, model, data, momentum=0.9)
  assert isinstance(writers[0], callbacks.PreciseBatchNorm)  # before the writers
  x, y = images.astype("float32"), keras.utils.to_categorical(labels, 2)
  model.fit(x, y, batch_size=12, epochs=2, validation_data=(x, y), callbacks=writers, verbose=0)
  bn = model.get_layer("bn")
  after_fit = bn.moving_variance.numpy().copy()
  recompute_batch_norm_statistics(model, [x[:12], x[12:]])  # the final weights' statistics
  np.testing.assert_allclose(after_fit, bn.moving_variance.numpy(), rtol=1e-5)
  longer = dict(vars(data), steps_per_epoch=10)  # 10 steps: the averages span an epoch
  kept = [callbacks.HistoryCSV(str(tmp_path))]
  callbacks.add_precise_batch_norm(kept, model, types.SimpleNamespace(**longer), momentum=0.9)
  assert len(kept) == 1


class _WatchTrainingIterator(keras.callbacks.Callback):
  """Records the name of the thread that deletes fit's training iterator's handle."""

  def __init__(self):
    super().__init__()
    self.deleted_in, self.watches = [], []

  def on_train_end(self, logs=None):
    for handle in keras_compat.fit_training_iterator_handles():
      self.watches.append(weakref.ref(
          handle, lambda _: self.deleted_in.append(threading.current_thread().name)))


def _fit_with(extra_callbacks):
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
  model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  images = np.zeros((32, 4), "float32")
  batches = tf.data.Dataset.from_tensor_slices((images, np.zeros(32, "int32"))).batch(8).map(
      lambda x, y: (x, y), num_parallel_calls=tf.data.AUTOTUNE).repeat(2).prefetch(2)
  watch = _WatchTrainingIterator()
  model.fit(batches, epochs=2, steps_per_epoch=4, verbose=0, callbacks=extra_callbacks + [watch])
  return watch


def test_the_training_iterator_is_deleted_off_the_main_thread_once_fit_returns():
  # Without the callback Keras deletes it on the main thread as fit returns (where tf.data's
  # wait for its autotuning thread stalled runs up to 60 s).
  assert _fit_with([]).deleted_in == ["MainThread"]
  release = callbacks.ReleaseTrainingIterator()
  watch = _fit_with([release])
  assert len(watch.watches) == 1 and len(release.threads) == 1
  release.threads[0].join(timeout=30)
  assert watch.deleted_in == ["release-training-iterator"]


def test_release_training_iterator_outside_fit_does_nothing():
  release = callbacks.ReleaseTrainingIterator()
  release.on_train_end()
  assert release.threads == []
