"""app/core/rerun.py: a run's config.yaml passed back to --config resolves to the config the run
trained with (in a new run directory, choosing nothing again), and --resume finds the unfinished
run (latest: the newest) and gives it back its own config, which the resume checks accept."""

import datetime
import os

import pytest

from app import config as config_lib
from app.core import rerun
from app.core.errors import UsageError
from app.core.run_dir import RunDir, changed_keys, flatten
from configs import data_aware as data_aware_recipe
from tests.train.test_data_aware import _folder

STRATEGY = ("default", "one process")
LATER = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
# Where a reloaded run differs from the run by design: its new run directory, the recipe's
# epochs, which are now config.yaml's own (the lengths in it are already the run's), and why the
# precision is what it is: the recipes' `auto` was resolved into config.yaml's policy, which the
# reloaded run is given (the policy itself must not differ).
NEW_RUN_KEYS = {"output_dir", "train.backup_dir", "derived.recipe_epochs",
                "derived.mixed_precision_reason"}


def _saved_run(tmp_path, recipe_file, overrides=()):
  """A run dir holding the config.yaml app.train writes for `recipe_file` with `overrides`
  (RunDir.save_config, as train_and_evaluate calls it): (its path, the resolved config)."""
  config, recipe = config_lib.load_recipe(recipe_file), config_lib.load_recipe(recipe_file)
  for key, value in overrides:
    config_lib.set_key(config, key, value)
  resolved = config_lib.resolve(config, strategy=STRATEGY, recipe=recipe,
                                overridden=[key for key, _ in overrides])
  return _save(tmp_path / "run", resolved), resolved


def _save(path, resolved):
  os.makedirs(path, exist_ok=True)
  RunDir(str(path)).save_config(resolved)
  return str(path / "config.yaml")


def _reloaded(config_yaml, overrides=()):
  """What `app.train --config=<config_yaml> <overrides>` resolves."""
  config = config_lib.load_recipe(config_yaml, lock=True)
  for key, value in overrides:
    config_lib.set_key(config, key, value)
  return config_lib.resolve(config, now=LATER, strategy=STRATEGY,
                            recipe=config_lib.load_recipe(config_yaml),
                            overridden=[key for key, _ in overrides])


def _differences(a, b):
  a, b = flatten(a.to_dict()), flatten(b.to_dict())
  return {key: (a.get(key), b.get(key)) for key in set(a) | set(b)
          if a.get(key) != b.get(key) and key not in NEW_RUN_KEYS}


@pytest.mark.parametrize("recipe_file, overrides", [
    ("configs/fashion_mnist.py", ()),
    # warmup_fraction (resolve() sets warmup_epochs from it) and lengths scaled to --epochs
    ("configs/cifar10_airbench.py", (("train.epochs", 3),)),
    ("configs/fashion_mnist_94.py", (("seed", 7), ("model.width", 24))),
])
def test_a_run_config_yaml_as_the_recipe_resolves_to_the_run_config(tmp_path, recipe_file,
                                                                    overrides):
  config_yaml, ran = _saved_run(tmp_path, recipe_file, overrides)
  again = _reloaded(config_yaml)
  assert _differences(ran, again) == {}
  assert again.output_dir == os.path.join("runs", f"{ran.name}-20300102-030405")  # a new run dir
  assert again.train.backup_dir == os.path.join(again.output_dir, "backup")
  # Overrides on top of it work as on any recipe, a mistyped key is refused (the recipe locked).
  longer = _reloaded(config_yaml, [("train.epochs", 2 * ran.train.epochs)])
  assert longer.optim.warmup_epochs == pytest.approx(2 * ran.optim.warmup_epochs)
  with pytest.raises(AttributeError):
    config_lib.load_recipe(config_yaml, lock=True).train.epocs = 3


def _data_aware_run(tmp_path):
  """The resolved config of a data-aware run on a small folder of photos of two sizes."""
  recipe = data_aware_recipe.get_config()
  config = data_aware_recipe.get_config()
  config.data.data_dir = str(_folder(tmp_path / "photos", [(60, 80), (90, 120)]))
  return config_lib.resolve(config, strategy=STRATEGY, recipe=recipe)


def test_a_reloaded_data_aware_run_keeps_its_choices_without_surveying_again(tmp_path,
                                                                             monkeypatch):
  ran = _data_aware_run(tmp_path)
  assert ran.derived.data_aware.chosen and ran.train.time_budget == "5m"
  config_yaml = _save(tmp_path / "run", ran)

  def no_survey(data):
    raise AssertionError("the data-aware recipe surveyed the data again")

  monkeypatch.setattr("app.data.survey.survey", no_survey)
  again = _reloaded(config_yaml)
  # Only the switches that chose differ (and derived: nothing chosen, no plan to make).
  assert {key for key in _differences(ran, again) if not key.startswith("derived.")} == {
      "data_aware", "train.time_budget", "optim.warmup_fraction"}  # at their FIXED_WHEN_RELOADED
  assert again.derived.data_aware is None and again.derived.time_budget_seconds == 0.0
  for chosen in ran.derived.data_aware.chosen:  # every choice is the run's
    section, leaf = chosen["key"].split(".") if "." in chosen["key"] else ("", chosen["key"])
    assert (again[section][leaf] if section else again[leaf]) == flatten(ran.to_dict())[
        chosen["key"]], chosen


def test_what_the_run_measured_is_kept_and_not_measured_again(tmp_path):
  """train_and_evaluate writes config.yaml after --accel=auto's probe, the auto range test and
  --time_budget's plan set their keys: reloaded, those values train, and nothing is measured."""
  _, ran = _saved_run(tmp_path, "configs/fashion_mnist.py")
  ran.runtime.accel, ran.train.batch_size = "auto", 64  # the probe's batch
  ran.optim.learning_rate_from, ran.optim.learning_rate = "auto", 0.0123  # the range test's
  ran.optim.peak_learning_rate = 0.0123
  ran.train.time_budget, ran.train.epochs, ran.train.time_budget_seconds = "2m", 7, 100.0
  again = _reloaded(_save(tmp_path / "measured", ran))
  assert (again.runtime.accel, again.optim.learning_rate_from, again.train.time_budget) == (
      "off", "", "")
  assert (again.train.batch_size, again.optim.learning_rate, again.optim.peak_learning_rate,
          again.train.epochs, again.train.time_budget_seconds) == (64, 0.0123, 0.0123, 7, 100.0)
  assert again.derived.time_budget_seconds == 0.0  # no plan: its epochs are the run's


def test_a_yaml_that_is_no_run_config_is_refused(tmp_path):
  path = tmp_path / "recipe.yaml"
  path.write_text("data:\n  name: folder\n")
  with pytest.raises(UsageError, match=r"nor a run's config.yaml \(it has no derived section\)"):
    config_lib.load_recipe(str(path))
  config_yaml, _ = _saved_run(tmp_path, "configs/fashion_mnist.py")
  with open(config_yaml) as f:
    text = f.read()
  with open(config_yaml, "w") as f:
    f.write(text.replace("  epochs: 12\n", "  epochs: twelve\n"))
  with pytest.raises(UsageError, match=r"train.epochs holds 'twelve', not a int"):
    config_lib.load_recipe(config_yaml)


def _resumed(spec, name=None):
  """What `app.train --resume=<spec>` resolves."""
  recipe, saved = rerun.run_to_resume(spec, name)
  resolved = config_lib.resolve(recipe, strategy=STRATEGY, recipe=recipe, overridden=[])
  return rerun.restore_choices(resolved, saved), saved


def test_resume_gives_the_run_its_own_config_which_the_resume_checks_accept(tmp_path,
                                                                           monkeypatch):
  ran = _data_aware_run(tmp_path)
  monkeypatch.chdir(tmp_path)  # runs/ relative to here, as a run without --output_dir
  _save(tmp_path / ran.output_dir, ran)
  (tmp_path / ran.train.backup_dir).mkdir()
  (tmp_path / ran.train.backup_dir / "state.json").write_text("{}")  # killed after a backup
  monkeypatch.setattr("app.data.survey.survey", None)  # nothing surveys the data again
  for spec in (rerun.LATEST, str(tmp_path / ran.output_dir)):  # relative or absolute
    resumed, saved = _resumed(spec)
    assert resumed.output_dir == (ran.output_dir if spec == rerun.LATEST else spec)
    # config.yaml's own settings; only its directory may be written otherwise (absolute here)
    changed = changed_keys(saved, resumed)
    assert set(changed) <= {"output_dir", "train.backup_dir"} and (spec != rerun.LATEST
                                                                   or not changed), changed
    assert resumed.derived.data_aware.to_dict() == ran.derived.data_aware.to_dict()
    assert resumed.derived.time_budget_seconds == 300.0 and resumed.data_aware
    RunDir(resumed.output_dir, resumed.train.backup_dir).started_config(resumed)  # accepted


def test_latest_is_the_newest_unfinished_run(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(UsageError, match=r"--resume=latest: no unfinished run in .*; pass "
                                       r"--resume=RUN_DIR"):
    rerun.latest()
  for name, finished in (("a-20260101-000000", False), ("b-20260102-000000", True),
                         ("c-20251231-235959", False), ("d-20270101-000000", None)):
    os.makedirs(f"runs/{name}")
    if finished is not None:
      open(f"runs/{name}/config.yaml", "w").close()
    if finished:
      open(f"runs/{name}/metrics.json", "w").close()
  os.makedirs("runs/mine")  # an explicit --output_dir: resumed by its name only
  open("runs/mine/config.yaml", "w").close()
  assert rerun.latest() == os.path.join("runs", "a-20260101-000000")
  assert rerun.latest(name="c") == os.path.join("runs", "c-20251231-235959")
  with pytest.raises(UsageError, match="no unfinished run of 'b'"):
    rerun.latest(name="b")
  with pytest.raises(UsageError, match=r"the run in runs/b-20260102-000000 is finished "
                                       r"\(metrics.json\), nothing to resume; to train it again "
                                       r"in a new directory, pass --config=runs/b-20260102-000000"
                                       r"/config.yaml"):
    rerun.run_to_resume("runs/b-20260102-000000")
  with pytest.raises(UsageError, match="runs/d-20270101-000000 holds no run"):
    rerun.run_to_resume("runs/d-20270101-000000")
