"""TimeBudget: a run stops cleanly once its clock passes train.time_budget_seconds."""

import types

from app import callbacks


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
