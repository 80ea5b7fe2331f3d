"""TimeBudget: a run stops cleanly once its clock passes train.time_budget_seconds. Lookahead:
airbench's slow-weight average, synced every k steps, ending on the slow weights."""

import types

import keras
import numpy as np

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
