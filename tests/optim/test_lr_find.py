"""app/optim/lr_find.py: the sweep, the suggestion and the reading of lr_find.json."""

import json

import numpy as np
import pytest

from app.core.errors import UsageError
from app.optim import lr_find


def test_sweep_is_exponential_from_min_to_max():
  sweep = lr_find.ExponentialSweep(1e-4, 1.0, 5)
  assert [float(sweep(k)) for k in range(5)] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0], rel=1e-4)


def test_suggestion_is_a_tenth_of_the_rate_at_the_lowest_loss():
  rates = np.logspace(-5, 1, 61)
  losses = 2.0 - np.exp(-((np.log10(rates) + 1) ** 2))  # lowest at 0.1
  losses[rates > 1] = 10.0  # blow-up
  suggested, at_minimum, steepest = lr_find.suggest(list(rates), list(losses))
  assert at_minimum == pytest.approx(0.1, rel=0.01)
  assert suggested == pytest.approx(0.01, rel=0.01)
  assert 1e-5 < steepest < 0.1


def test_the_suggested_rate_is_read_back_and_a_bad_file_is_a_usage_error(tmp_path):
  path = tmp_path / "lr_find.json"
  path.write_text(json.dumps({"suggested_learning_rate": 0.03}))
  assert lr_find.read_suggested_rate(str(path)) == pytest.approx(0.03)
  with pytest.raises(UsageError, match="is not an lr_find.json"):
    lr_find.read_suggested_rate(str(tmp_path / "missing.json"))
  path.write_text(json.dumps({"suggested_learning_rate": 0.0}))
  with pytest.raises(UsageError, match="non-positive learning rate"):
    lr_find.read_suggested_rate(str(path))
