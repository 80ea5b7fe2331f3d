"""The search plan: a space app.train would refuse, or one contradicting the command line, is
refused before any trial."""

import dataclasses
import os
import shutil
import time

import pytest

from app.core.errors import UsageError
from app.tune import search, trials
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


def test_trials_train_no_longer_than_the_search_budget_left(tmp_path):
  config = tune_fashion_mnist.get_config()
  config.search.trial_time_budget_seconds = 600.0
  config.search.time_budget_seconds = 3600.0
  plan = plan_for(config, tmp_path / "search")
  assert 3590 < plan.seconds_left() <= 3600

  def cap(plan):
    [arg] = [a for a in trials.command(plan, {}, "run") if "train.time_budget_seconds" in a]
    return float(arg.split("=")[1])

  assert cap(plan) == 600.0  # the trial's own cap is the smaller
  nearly_spent = dataclasses.replace(plan, deadline=time.time() + 90)
  assert 85 < cap(nearly_spent) <= 90
  config.search.time_budget_seconds = 0.0
  assert plan_for(config, tmp_path / "search").seconds_left() == float("inf")


def test_the_oracle_stops_once_the_search_budget_is_spent(tmp_path):
  config = tune_fashion_mnist.get_config()
  config.search.time_budget_seconds = 3600.0
  plan = plan_for(config, tmp_path / "search")
  oracle = search.build_oracle(plan)
  oracle._set_project_dir(str(tmp_path / "search"), "kerastuner")
  assert oracle.create_trial("tuner0").status == "RUNNING"
  spent = dataclasses.replace(plan, deadline=time.time() - 1)
  oracle = search.build_oracle(spent)
  oracle._set_project_dir(str(tmp_path / "other"), "kerastuner")
  assert oracle.create_trial("tuner0").status == "STOPPED"


def test_every_kind_of_key_the_issue_names_can_be_searched(tmp_path):
  config = tune_fashion_mnist.get_config()
  config.search.space = (
      "model.name=choice('vgg', 'resnet9'); model.depth=int(1, 3); model.width=int(16, 48, 16);"
      "model.kernel_size=choice(3, 5); model.dropout=float(0, 0.3);"
      "model.batch_norm=choice(True, False); optim.name=choice('sgd', 'adamw');"
      "optim.learning_rate=log(1e-3, 0.5); optim.schedule=choice('onecycle', 'cosine');"
      "optim.weight_decay=log(1e-5, 1e-3);"
      "data.augment=choice('flip', 'flip|crop(pad=2)', 'flip|crop(pad=4)');"
      "train.batch_size=choice(128, 256)")
  plan = plan_for(config, tmp_path / "search")
  assert len(plan.params) == 12
  space = search.build_oracle(plan).hyperparameters
  assert space.get("model.batch_norm") in (True, False) and space.get("model.kernel_size") == 3


@pytest.fixture(scope="module")
def saved_search(tmp_path_factory):
  """A search's KerasTuner state as a search leaves it after starting its first trial:
  kerastuner/oracle.json, tuner0.json and trial_00/trial.json."""
  config = tune_fashion_mnist.get_config()
  search_dir = tmp_path_factory.mktemp("saved_search") / "search"
  plan = plan_for(config, search_dir)
  oracle = search.build_oracle(plan)
  tuner = search.load_tuner(oracle, plan, plan.search_dir)
  oracle.create_trial("tuner0")
  tuner.save()
  return config, search_dir


@pytest.mark.parametrize("name,text,expected", [
    ("oracle.json", '{"ongoing_trials": {', "oracle.json is damaged or not ours"),
    ("tuner0.json", "", "tuner0.json is damaged or not ours"),
    (os.path.join("trial_00", "trial.json"), '{"trial_id": "00", "hyperpar',
     "trial_00/trial.json is damaged or not ours"),
    ("oracle.json", "[]", "oracle.json does not hold a dict"),
    ("oracle.json", "{}", r"cannot resume the search from its KerasTuner state in .*kerastuner "
                          r"\(RuntimeError: Error reloading"),
    (os.path.join("trial_00", "trial.json"), "{}", r"\(KeyError: 'trial_id'\)"),
])
def test_damaged_kerastuner_state_is_one_line_naming_the_file(saved_search, tmp_path, name, text,
                                                               expected):
  """Issue 19 (13): a KerasTuner state file cut short by a kill (or edited) was KerasTuner's
  traceback; the line names the file and the fix."""
  config, search_dir = saved_search
  copy = shutil.copytree(search_dir, tmp_path / "search")
  (copy / "kerastuner" / name).write_text(text)
  plan = plan_for(config, copy)
  with pytest.raises(UsageError, match=expected + ".*; pass --overwrite to start the search "
                                                  "over"):
    search.load_tuner(search.build_oracle(plan), plan, plan.search_dir)
