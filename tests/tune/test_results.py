"""best_recipe.py: the best trial's values as plain Python a recipe file can hold."""

import importlib.util
import types

import numpy as np

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
