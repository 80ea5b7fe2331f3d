"""best_recipe.py: the best trial's values as plain Python a recipe file can hold."""

import importlib.util
import types

import numpy as np
import pytest

from app.tune import results, search
from configs import tune_fashion_mnist_94


def test_best_recipe_holds_bayesian_numpy_values_as_python_numbers(tmp_path):
  config = tune_fashion_mnist_94.get_config()
  plan = search.make_plan(config, "configs/tune_fashion_mnist_94.py", {}, str(tmp_path))
  # Bayesian optimisation proposes NumPy scalars for float keys.
  trial = types.SimpleNamespace(trial_id="05", score=0.9395, hyperparameters=types.SimpleNamespace(
      values={"train.label_smoothing": np.float64(0.09), "model.width": np.int64(24)}))
  text = results.best_recipe_text(plan, trial)
  assert "config.train.label_smoothing = 0.09\n" in text and "np." not in text
  path = tmp_path / "best_recipe.py"
  path.write_text(text)
  spec = importlib.util.spec_from_file_location("best_recipe", path)
  recipe = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(recipe)
  best = recipe.get_config()
  assert best.train.label_smoothing == 0.09 and best.model.width == 24 and best.train.epochs == 8


def _load(path):
  spec = importlib.util.spec_from_file_location("best_recipe", path)
  recipe = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(recipe)
  return recipe.get_config()


@pytest.mark.parametrize("values", [{"train.epochs": 2, "model.width": 24},
                                    {"tuner/epochs": 2, "tuner/bracket": 1, "model.width": 24}])
def test_a_shorter_trials_best_recipe_trains_what_the_trial_trained(tmp_path, values):
  """A Hyperband round (or a searched train.epochs) runs the recipe at fewer epochs, and its
  app.train scales the recipe's lengths in epochs to them (app.config.scale_lengths). best_recipe.py
  must hold those scaled values: written with the epochs alone, its own warmup was the recipe's
  unscaled one (issue 20, the length scaling's search path)."""
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  config = tune_fashion_mnist_94.get_config()
  plan = search.make_plan(config, "configs/tune_fashion_mnist_94.py", {}, str(tmp_path))
  trial = types.SimpleNamespace(trial_id="03", score=0.91, hyperparameters=types.SimpleNamespace(
      values=values))
  path = tmp_path / "best_recipe.py"
  path.write_text(results.best_recipe_text(plan, trial))
  best = _load(path)
  # What the trial's app.train ran: the recipe, its values, lengths scaled against the recipe.
  as_written = config_lib.load_recipe("configs/tune_fashion_mnist_94.py")
  ran = config_lib.load_recipe("configs/tune_fashion_mnist_94.py")
  ran.train.epochs, ran.model.width = 2, 24
  config_lib.scale_lengths(ran, as_written)
  assert best.train.epochs == 2 and as_written.optim.warmup_epochs > 0
  assert best.optim.warmup_epochs == ran.optim.warmup_epochs == (
      as_written.optim.warmup_epochs * 2 / as_written.train.epochs)
  assert best.to_dict() == ran.to_dict()


def test_best_recipe_holds_every_value_and_loads_after_the_search_dir_moved(tmp_path):
  """best_recipe.py loaded its base recipe by absolute path: moving or sending the search
  directory (or the base recipe) broke it. It now reads no other file."""
  import shutil  # pylint: disable=g-import-not-at-top
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.core.run_dir import flatten  # pylint: disable=g-import-not-at-top
  search_dir = tmp_path / "search"
  search_dir.mkdir()
  base = search_dir / "my_recipe.py"  # a base recipe that moves with it
  shutil.copy("configs/tune_fashion_mnist_94.py", base)
  plan = search.make_plan(tune_fashion_mnist_94.get_config(), str(base), {"seed": 3},
                          str(search_dir))
  trial = types.SimpleNamespace(trial_id="03", score=0.91, hyperparameters=types.SimpleNamespace(
      values={"model.width": 24, "train.epochs": 2}))
  (search_dir / "best_recipe.py").write_text(results.best_recipe_text(plan, trial))
  ran = config_lib.load_recipe(str(base))  # what the trial's app.train ran, before resolving
  as_written = config_lib.load_recipe(str(base))
  ran.seed, ran.model.width, ran.train.epochs = 3, 24, 2
  config_lib.scale_lengths(ran, as_written)
  moved = tmp_path / "elsewhere" / "shared"
  shutil.move(str(search_dir), str(moved))
  text = (moved / "best_recipe.py").read_text()
  assert "import importlib" not in text and "my_recipe" not in text.split('"""')[2]
  best = config_lib.load_recipe(str(moved / "best_recipe.py"), lock=True)  # as app.train loads it
  assert flatten(best.to_dict()) == flatten(ran.to_dict())
  assert "  config.optim.warmup_epochs = 0.25\n" in text.split("# The lengths in epochs")[1]
