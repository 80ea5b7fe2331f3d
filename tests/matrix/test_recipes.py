"""Matrix: every recipe in configs/ at --epochs=1 and --epochs=2, each a real run on a slice of its
own kind of data (Fashion-MNIST, or the CIFAR-10 mini JPEG folder), at the recipe's model,
precision, augmentation, optimizer, schedule and export, with a batch small enough for the slice.
The lengths the recipe sets in epochs scale to the run's (app.config.resolve), as on the command
line."""

import glob
import importlib
import os

import numpy as np
import pytest

from tests.matrix.conftest import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# data_aware.py chooses its model from the data: tests/train/test_data_aware.py and
# tests/cli/test_train_data_aware.py run it.
RECIPES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                 if not p.endswith(("__init__.py", "data_aware.py")))


CASES = [pytest.param(name, epochs, id=f"{name}-{epochs}",
                      marks=[pytest.mark.slow] * (name == "cifar_mini_transfer"))  # mobilenet_v2
         for name in RECIPES for epochs in (1, 2)]


@pytest.mark.parametrize("recipe_name, epochs", CASES)
def test_recipe_runs_at_one_and_two_epochs(recipe_name, epochs, tmp_path, cifar_mini_dir,
                                           restore_precision):
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.train.train_and_evaluate import train_and_evaluate  # pylint: disable=g-import-not-at-top
  recipe = importlib.import_module(f"configs.{recipe_name}")
  as_written = recipe.get_config()
  source = (("folder", cifar_mini_dir) if as_written.data.name == "folder"
            else (as_written.data.name, as_written.data.data_dir))
  # The export runs at 1 epoch (the 2-epoch runs check the scaled schedule and the fit: an export
  # of each recipe's model twice would add ~60 s to the suite).
  config = tiny_config(tmp_path, source, recipe, **{
      "train.epochs": epochs, "train.batch_size": 16, "data.limit": 64 if epochs == 1 else 32})
  config.export.enabled = config.export.enabled and epochs == 1
  metrics = train_and_evaluate(config_lib.resolve(config, recipe=as_written))
  assert metrics["epochs_completed"] == epochs and np.isfinite(metrics["test_loss"])
  assert (metrics["export_path"] is not None and os.path.isdir(metrics["export_path"])) == (
      config.export.enabled)
