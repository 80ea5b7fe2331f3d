"""OBJECTIVES: what a search optimises, scored from a finished trial's history.csv rows.

  val_accuracy            (max) the best validation accuracy of any epoch
  accuracy_within_budget  (max) the best validation accuracy reached while training for at most
                          search.trial_time_budget_seconds of wall time (app.train stops at the
                          budget, mid-epoch if need be, and validates where it stopped)
  time_to_target          (min) wall seconds (history.csv `elapsed_seconds`, validation included)
                          to the first epoch whose validation accuracy reaches
                          search.target_accuracy. A trial that never reaches it scores
                          budget * (1 + shortfall), shortfall = target - its best accuracy: always
                          worse than any trial that made it within the budget, and better the
                          closer it came, so the tuner still learns which way is up.
"""

import dataclasses
import math
from typing import Callable

from app.core.errors import UsageError
from app.core.registry import Registry

OBJECTIVES = Registry("objective")


@dataclasses.dataclass(frozen=True)
class Objective:
  name: str
  direction: str  # "max" or "min"
  score: Callable  # (history rows, search config) -> float
  needs_budget: bool = False  # search.trial_time_budget_seconds > 0
  needs_target: bool = False  # search.target_accuracy in (0, 1]


def _finite(rows, column):
  values = []
  for row in rows:
    try:
      value = float(row.get(column, ""))
    except ValueError:
      continue  # an epoch without validation (train.validation_every_epochs > 1)
    if math.isfinite(value):
      values.append(value)
  return values


def best_val_accuracy(rows):
  values = _finite(rows, "val_accuracy")
  return max(values) if values else None


def _val_accuracy(rows, search):
  del search
  return best_val_accuracy(rows)


def _time_to_target(rows, search):
  target, budget = search.target_accuracy, search.trial_time_budget_seconds
  for row in rows:
    accuracy, seconds = _finite([row], "val_accuracy"), _finite([row], "elapsed_seconds")
    if accuracy and seconds and accuracy[0] >= target:
      return seconds[0]
  best = best_val_accuracy(rows)
  return None if best is None else budget * (1 + target - best)


OBJECTIVES.register("val_accuracy", Objective("val_accuracy", "max", _val_accuracy))
OBJECTIVES.register("accuracy_within_budget", Objective(
    "accuracy_within_budget", "max", _val_accuracy, needs_budget=True))
OBJECTIVES.register("time_to_target", Objective(
    "time_to_target", "min", _time_to_target, needs_budget=True, needs_target=True))


def get(search):
  """The objective search.objective names, after checking the keys it needs."""
  objective = OBJECTIVES.get(search.objective)
  if objective.needs_budget and not search.trial_time_budget_seconds > 0:
    raise UsageError(f"--objective={objective.name} needs a per-trial wall-clock budget; pass "
                     "--trial_time_budget_seconds=120 (or set search.trial_time_budget_seconds)")
  if objective.needs_target and not 0 < search.target_accuracy <= 1:
    raise UsageError(f"--objective={objective.name} needs a target validation accuracy in (0, 1]; "
                     f"received {search.target_accuracy}; pass e.g. --target_accuracy=0.9")
  return objective
