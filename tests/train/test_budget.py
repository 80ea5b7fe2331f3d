"""--time_budget's plan (app/train/budget.py) from given measurements: the epochs that fit, the
lengths scaled alike, the clock's hold, and the refusal of a budget too short for one epoch."""

import types

import ml_collections
import pytest

from app import config as config_lib
from app.core.errors import UsageError
from app.train import budget
from configs import default

MEASURED = {"build_seconds": 0.5, "trace_seconds": 2.0, "step_seconds": 0.1,
            "evaluation_trace_seconds": 0.5, "evaluation_batch_seconds": 0.05,
            "checkpoint_seconds": 0.2, "measure_seconds": 4.0}


def _plan(monkeypatch, time_budget, elapsed=10.0, **keys):
  recipe = default.get_config()
  recipe.train.epochs, recipe.optim.warmup_epochs = 10, 2.0
  config = ml_collections.ConfigDict(recipe.to_dict())
  config.train.time_budget = time_budget
  for key, value in keys.items():
    config_lib.set_key(config, key, value)
  resolved = config_lib.resolve(config, recipe=recipe)
  monkeypatch.setattr(budget, "measure", lambda *args: dict(MEASURED))
  monkeypatch.setattr(budget.clock, "process_seconds", lambda: elapsed)
  data = types.SimpleNamespace(steps_per_epoch=20, num_validation=64, num_test=64)
  return budget.plan(resolved, data, None, run=None, started=None)


def test_the_plan_fills_the_budget_and_scales_the_lengths(monkeypatch):
  planned, plan = _plan(monkeypatch, "2m")
  # An epoch: 20 steps x 0.1 + 2.5 checkpoints x 0.2 + one validation batch (64 images of a
  # batch of 128) x 0.05 = 2.55 s.
  per_epoch = 20 * 0.1 + 2.5 * 0.2 + 0.05
  export = budget.EXPORT_TRACE_FACTOR * 2.0 + budget.EXPORT_SECONDS
  fixed = 10.0 + (0.5 + 2.0 + 0.5) + (0.05 + 0.5 + export + budget.FINISH_SECONDS)
  assert plan["planned_epochs"] == planned.train.epochs == int((120 - fixed) // per_epoch)
  assert planned.optim.warmup_epochs == pytest.approx(2.0 * planned.train.epochs / 10)
  assert plan["planned_seconds"] <= 120 and plan["budget_seconds"] == 120
  # The hold: training stops where the test evaluation and the export would no longer fit.
  assert planned.train.time_budget_seconds == pytest.approx(
      120 - 10.0 - 0.5 - (0.05 + 0.5 + export + budget.FINISH_SECONDS), abs=0.1)


def test_a_key_the_command_line_set_is_not_scaled(monkeypatch):
  recipe = default.get_config()
  recipe.train.epochs, recipe.optim.warmup_epochs = 10, 2.0
  config = ml_collections.ConfigDict(recipe.to_dict())
  config.train.time_budget = "2m"
  resolved = config_lib.resolve(config, recipe=recipe, overridden=["optim.warmup_epochs"])
  monkeypatch.setattr(budget, "measure", lambda *args: dict(MEASURED))
  monkeypatch.setattr(budget.clock, "process_seconds", lambda: 10.0)
  data = types.SimpleNamespace(steps_per_epoch=20, num_validation=64, num_test=64)
  planned, _ = budget.plan(resolved, data, None, run=None, started=None)
  assert planned.train.epochs > 10 and planned.optim.warmup_epochs == 2.0


def test_a_budget_too_short_for_one_epoch_is_refused_saying_how_long_it_needs(monkeypatch):
  with pytest.raises(UsageError, match=r"^--time_budget=20s leaves no time for one epoch: 15 s "
                     r"have gone .* pass --time_budget=\d+s or more"):
    _plan(monkeypatch, "20s", elapsed=15.0)


def test_no_budget_no_plan(monkeypatch):
  config = config_lib.resolve(default.get_config())
  assert budget.plan(config, None, None, run=None, started=None) == (config, None)
