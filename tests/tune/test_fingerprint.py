"""Fingerprints resume the same search, refuse another, and --overwrite never deletes a directory
that is not a search's."""

import pytest

from app.core.errors import UsageError
from app.tune import fingerprint
from configs import tune_fashion_mnist
from tests.tune.test_search import plan_for


def test_same_search_resumes_another_is_refused_and_overwrite_starts_over(tmp_path):
  config, search_dir = tune_fashion_mnist.get_config(), tmp_path / "search"
  plan = plan_for(config, search_dir)
  fingerprint.check_search_dir(plan.search_dir, fingerprint.fingerprint(config, plan), overwrite=False)
  (search_dir / "leaderboard.md").write_text("kept")
  config.search.max_trials = 40  # more trials: the same search, resumed
  fingerprint.check_search_dir(plan.search_dir, fingerprint.fingerprint(config, plan), overwrite=False)
  assert (search_dir / "leaderboard.md").exists()
  config.data.limit = 1000  # another data set
  with pytest.raises(UsageError, match=r"different search space/data \(changed: data.limit\)"):
    fingerprint.check_search_dir(plan.search_dir, fingerprint.fingerprint(config, plan), overwrite=False)
  fingerprint.check_search_dir(plan.search_dir, fingerprint.fingerprint(config, plan), overwrite=True)
  assert sorted(p.name for p in search_dir.iterdir()) == ["fingerprint.json"]


def test_a_directory_that_is_not_a_search_is_never_overwritten(tmp_path):
  config = tune_fashion_mnist.get_config()
  (tmp_path / "precious.txt").write_text("data")
  plan = plan_for(config, tmp_path)
  with pytest.raises(UsageError, match="not a search directory"):
    fingerprint.check_search_dir(plan.search_dir, fingerprint.fingerprint(config, plan), overwrite=True)
  assert (tmp_path / "precious.txt").exists()


def test_a_key_added_to_the_schema_later_resumes_at_its_default_only(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  config, search_dir = tune_fashion_mnist.get_config(), tmp_path / "search"
  plan = plan_for(config, search_dir)
  parts = fingerprint.fingerprint(config, plan)
  fingerprint.check_search_dir(plan.search_dir, parts, overwrite=False)
  # A search made by an older version, before optim.lookahead_every existed.
  saved = json.loads((search_dir / "fingerprint.json").read_text())
  del saved["recipe"]["optim.lookahead_every"]
  (search_dir / "fingerprint.json").write_text(json.dumps(saved))
  fingerprint.check_search_dir(plan.search_dir, parts, overwrite=False)  # default 0: resumes
  (search_dir / "fingerprint.json").write_text(json.dumps(saved))
  config.optim.lookahead_every = 5
  with pytest.raises(UsageError, match=r"changed: optim.lookahead_every"):
    fingerprint.check_search_dir(plan.search_dir, fingerprint.fingerprint(config, plan), overwrite=False)


@pytest.mark.parametrize("text", ['{"recipe": {"seed": 0', "", "[]"])
def test_a_damaged_fingerprint_is_one_line_and_overwrite_still_starts_over(tmp_path, text):
  """Issue 19 (13): a fingerprint.json cut short by a kill was a JSONDecodeError traceback."""
  config, search_dir = tune_fashion_mnist.get_config(), tmp_path / "search"
  plan = plan_for(config, search_dir)
  parts = fingerprint.fingerprint(config, plan)
  fingerprint.check_search_dir(plan.search_dir, parts, overwrite=False)
  (search_dir / "fingerprint.json").write_text(text)
  with pytest.raises(UsageError, match="search fingerprint .*fingerprint.json (is damaged|does "
                                       "not hold).*; pass --overwrite to start the search over"):
    fingerprint.check_search_dir(plan.search_dir, parts, overwrite=False)
  fingerprint.check_search_dir(plan.search_dir, parts, overwrite=True)
