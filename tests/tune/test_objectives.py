"""Objectives scored from history.csv rows, and the keys each one needs."""

import pytest

from app.core.errors import UsageError
from app.tune import objectives
from configs import default

ROWS = [{"val_accuracy": "0.70", "elapsed_seconds": "10.0"},
        {"val_accuracy": "", "elapsed_seconds": "15.0"},  # an epoch without validation
        {"val_accuracy": "0.86", "elapsed_seconds": "20.0"},
        {"val_accuracy": "0.84", "elapsed_seconds": "30.0"}]


def search(**values):
  config = default.get_config().search
  config.update(values)
  return config


def test_val_accuracy_is_the_best_epoch():
  objective = objectives.get(search(objective="val_accuracy"))
  assert objective.direction == "max"
  assert objective.score(ROWS, search()) == pytest.approx(0.86)
  assert objective.score([{"val_accuracy": "nan"}], search()) is None


def test_time_to_target_is_the_first_epoch_reaching_it_or_a_penalty_beyond_the_budget():
  settings = search(objective="time_to_target", target_accuracy=0.85,
                    trial_time_budget_seconds=60.0)
  objective = objectives.get(settings)
  assert objective.direction == "min"
  assert objective.score(ROWS, settings) == pytest.approx(20.0)
  settings.target_accuracy = 0.9  # never reached: 60 s * (1 + 0.9 - 0.86)
  assert objective.score(ROWS, settings) == pytest.approx(60 * 1.04)
  assert objective.score(ROWS, settings) > settings.trial_time_budget_seconds


@pytest.mark.parametrize("values, message", [
    (dict(objective="accuracy"), "unknown objective 'accuracy'"),
    (dict(objective="accuracy_within_budget"), "needs a per-trial wall-clock budget"),
    (dict(objective="time_to_target", trial_time_budget_seconds=30.0),
     "needs a target validation accuracy"),
])
def test_objectives_refuse_missing_settings(values, message):
  with pytest.raises(UsageError, match=message):
    objectives.get(search(**values))
