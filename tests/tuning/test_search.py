"""The search plan and directory: fingerprints resume the same search, refuse another, and
--overwrite never deletes a directory that is not a search's."""

import pytest

from app.errors import UsageError
from app.tuning import search
from configs import tune_fashion_mnist


def plan_for(config, search_dir, overrides=None):
  return search.make_plan(config, "configs/tune_fashion_mnist.py", overrides or {}, str(search_dir))


def test_same_search_resumes_another_is_refused_and_overwrite_starts_over(tmp_path):
  config, search_dir = tune_fashion_mnist.get_config(), tmp_path / "search"
  plan = plan_for(config, search_dir)
  search.check_search_dir(plan.search_dir, search.fingerprint(config, plan), overwrite=False)
  (search_dir / "leaderboard.md").write_text("kept")
  config.search.max_trials = 40  # more trials: the same search, resumed
  search.check_search_dir(plan.search_dir, search.fingerprint(config, plan), overwrite=False)
  assert (search_dir / "leaderboard.md").exists()
  config.data.limit = 1000  # another data set
  with pytest.raises(UsageError, match=r"different search space/data \(changed: data.limit\)"):
    search.check_search_dir(plan.search_dir, search.fingerprint(config, plan), overwrite=False)
  search.check_search_dir(plan.search_dir, search.fingerprint(config, plan), overwrite=True)
  assert sorted(p.name for p in search_dir.iterdir()) == ["fingerprint.json"]


def test_a_directory_that_is_not_a_search_is_never_overwritten(tmp_path):
  config = tune_fashion_mnist.get_config()
  (tmp_path / "precious.txt").write_text("data")
  plan = plan_for(config, tmp_path)
  with pytest.raises(UsageError, match="not a search directory"):
    search.check_search_dir(plan.search_dir, search.fingerprint(config, plan), overwrite=True)
  assert (tmp_path / "precious.txt").exists()


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
