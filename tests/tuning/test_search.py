"""The search plan: a space app.train would refuse, or one contradicting the command line, is
refused before any trial."""

import pytest

from app.errors import UsageError
from app.tuning import search
from configs import tune_fashion_mnist


def plan_for(config, search_dir, overrides=None):
  return search.make_plan(config, "configs/tune_fashion_mnist.py", overrides or {}, str(search_dir))


@pytest.mark.parametrize("space, overrides, message", [
    ("model.width=int(16, 40, 8)", {"model.width": 24}, "both searched"),
    ("model.dropout=float(0.5, 1.5)", {}, "model.dropout=1.5 would be refused"),
    ("model.name=choice('vgg', 'vgg19')", {}, "unknown model 'vgg19'"),
])
def test_contradictory_spaces_are_refused_before_any_trial(tmp_path, space, overrides, message):
  config = tune_fashion_mnist.get_config()
  config.search.space = space
  with pytest.raises(UsageError, match=message):
    plan_for(config, tmp_path / "search", overrides)
