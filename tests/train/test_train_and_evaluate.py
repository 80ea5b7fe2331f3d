"""app/train/train_and_evaluate.py: which weights metrics.json's figures measure and which split
each comes from (issue 19, items 4 and 5). By default validation is a part held out of train and
the figures are those of the weights fit left (early stopping's restored ones); with
data.validation_split=0 (the speedrun convention) validation is the test split and nothing
selects on it: best.keras is the last epoch's weights."""

import csv
import json
import os
import types

import keras
import numpy as np
import pytest

from app import config as config_lib
from app.models import load_model
from app.train import callbacks
from app.train.train_and_evaluate import train_and_evaluate
from configs import default

EPOCHS = 2


class _SpoilLastValidation(keras.callbacks.Callback):
  """Zeroes the classifier (logits kernel and bias) as the last epoch's validation begins, once:
  that epoch's weights predict one class for every image, so its val_accuracy falls below the
  epochs' before it and a selection on validation picks an earlier epoch."""

  def __init__(self):
    super().__init__()
    self.epoch, self.done = None, False

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_test_begin(self, logs=None):
    if self.epoch == EPOCHS - 1 and not self.done:
      self.done = True
      for variable in self.model.trainable_variables:
        if variable.path.startswith("logits/"):
          variable.assign(np.zeros(variable.shape, variable.dtype))


def _run(root, spoil=True, **changes):
  """A tiny Fashion-MNIST run (256 images, 2 epochs, float32, no export) whose last epoch's
  validation is spoilt (unless not `spoil`) -> (config, metrics, history rows)."""
  config = default.get_config()
  config.data.limit = 256
  config.model.name, config.model.width = "simple_cnn", 8
  config.train.epochs, config.train.batch_size = EPOCHS, 64
  config.optim.name, config.optim.learning_rate, config.optim.schedule = "adam", 3e-3, "constant"
  config.optim.warmup_epochs, config.optim.weight_decay = 0.0, 0.0
  config.runtime.mixed_precision = "float32"
  config.export.enabled, config.output_dir = False, str(root / "run")
  for key, value in changes.items():
    config_lib.set_key(config, key, value)
  config = config_lib.resolve(config)
  build = callbacks.build

  def build_and_spoil(*args):
    timing, guard, run_callbacks = build(*args)
    return timing, guard, run_callbacks + ([_SpoilLastValidation()] if spoil else [])

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(callbacks, "build", build_and_spoil)
    metrics = train_and_evaluate(config)
  with open(os.path.join(config.output_dir, "history.csv")) as f:
    history = list(csv.DictReader(f))
  return config, metrics, history


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fashion_mnist_dir):
  """Two runs, each with its last epoch's validation spoilt: `held_out` (the default
  validation_split, early stopping with patience 2) and `on_test` (validation_split=0)."""
  del fashion_mnist_dir  # the default location; the fixture fails clearly when it is missing
  held_out = _run(tmp_path_factory.mktemp("held_out"), **{"train.early_stopping_patience": 2})
  on_test = _run(tmp_path_factory.mktemp("on_test"), **{"data.validation_split": 0.0})
  return types.SimpleNamespace(held_out=held_out, on_test=on_test)


def _accuracies(history):
  return [float(row["val_accuracy"]) for row in history]


def test_metrics_after_early_stopping_measure_the_restored_weights(runs):
  """Item 5: validation_accuracy was the last epoch's (history's last row), not that of the
  weights early stopping restored, which the test figures and the export measure."""
  config, metrics, history = runs.held_out
  accuracies = _accuracies(history)
  best = int(np.argmax(accuracies))  # the first best, as EarlyStopping keeps it
  assert len(history) == EPOCHS and accuracies[-1] < accuracies[best], accuracies
  assert metrics["validation_accuracy"] == pytest.approx(accuracies[best], abs=1e-6)
  assert metrics["validation_loss"] == pytest.approx(float(history[best]["val_loss"]), rel=1e-5)
  assert metrics["weights"].startswith("the best validation epoch's")


def test_by_default_validation_is_held_out_of_train_and_each_figure_names_its_split(runs):
  """Item 4: validation was the test split by default, and metrics.json did not say so."""
  config, metrics, _ = runs.held_out
  assert config.data.validation_split == 0.1 and not config.derived.validation_is_test
  assert (metrics["num_train"], metrics["num_validation"], metrics["num_test"]) == (230, 26, 256)
  held_out = "held_out (0.1 of train, seed 0)"
  assert metrics["test_split"] == "test" and metrics["validation_split"] == held_out
  assert metrics["splits"] == {"test_accuracy": "test", "test_loss": "test",
                               "validation_accuracy": held_out, "validation_loss": held_out}
  assert metrics["selected_on"] == "validation"
  best = json.load(open(os.path.join(config.output_dir, "checkpoints", "best.json")))
  assert best["val_accuracy"] == pytest.approx(max(_accuracies(runs.held_out[2])))


def test_validating_on_test_selects_nothing_best_is_the_last_epoch(runs):
  """Item 4: with validation_split=0, best.keras was the epoch of the best test accuracy."""
  config, metrics, history = runs.on_test
  accuracies = _accuracies(history)
  assert accuracies[-1] < max(accuracies), accuracies  # a selection would pick an earlier epoch
  checkpoints = os.path.join(config.output_dir, "checkpoints")
  best, last = (load_model(os.path.join(checkpoints, f"{name}.keras")).get_weights()
                for name in ("best", "last"))
  for a, b in zip(best, last, strict=True):
    np.testing.assert_array_equal(a, b)
  assert json.load(open(os.path.join(checkpoints, "best.json"))) == {
      "selected_on": None, "epoch": EPOCHS}
  assert metrics["selected_on"] is None and metrics["validation_split"] == "test"
  assert set(metrics["splits"].values()) == {"test"}
  assert (metrics["num_train"], metrics["num_validation"]) == (256, 256)
  assert metrics["validation_accuracy"] == metrics["test_accuracy"] == pytest.approx(
      accuracies[-1], abs=1e-6)


def test_a_model_at_chance_is_warned_of_and_a_run_that_learnt_is_not(runs):
  """Issue 18 (4): a run whose model ended at chance exited 0 without a word. The on_test run's
  last weights predict one class for every image (its classifier zeroed): at the test split's
  majority-class rate, its validation (the test split) fallen from the first epoch's."""
  config, metrics, history = runs.on_test
  written = json.load(open(os.path.join(config.output_dir, "metrics.json")))
  assert written["warnings"] == metrics["warnings"]
  by_code = {w["code"]: w["figures"] for w in metrics["warnings"]}
  assert by_code["chance_level"]["split"] == "test"  # checked once: validation is the test split
  assert metrics["test_accuracy"] <= by_code["chance_level"]["majority_rate"] + 0.02
  assert by_code["validation_collapse"]["best_epoch"] == 1, _accuracies(history)
  assert runs.held_out[1]["warnings"] == []  # early stopping restored its best epoch's weights


def test_metrics_and_config_yaml_say_which_precision_and_why(runs):
  """The precision a run trained in, and why (--mixed_precision=auto's choice: tests/test_accel.py),
  beside the strategy in metrics.json and in config.yaml's derived section."""
  import yaml  # pylint: disable=g-import-not-at-top
  config, metrics, _ = runs.on_test
  assert metrics["mixed_precision"] == "float32 (--mixed_precision=float32)"
  with open(os.path.join(config.output_dir, "config.yaml")) as f:
    saved = yaml.safe_load(f)
  assert saved["derived"]["mixed_precision_reason"] == "--mixed_precision=float32"


@pytest.mark.parametrize("changes", [{"optim.lookahead_every": 2}, {"optim.ema": True}])
def test_validating_on_test_the_last_validation_gives_the_final_weights_test_figures(
    tmp_path, monkeypatch, changes):
  """Issue 22: on the test split the last epoch's validation already measured the weights fit
  left (Lookahead's last sync and the EMA swap come before it), so the test figures are read
  from history instead of a second evaluation (84 s of cifar10_93's 1,700). Checked here against
  that evaluation, on the weights the run ended with."""
  from app.train import train_and_evaluate as module  # pylint: disable=g-import-not-at-top
  original, seen = module._test_figures, {}

  def test_figures_and_an_evaluation(model, data, config, history):
    seen["evaluated"] = model.evaluate(data.test, verbose=0)
    seen["read"] = original(None, data, config, history)  # None: no model to evaluate
    return seen["read"]

  monkeypatch.setattr(module, "_test_figures", test_figures_and_an_evaluation)
  _, metrics, history = _run(tmp_path, spoil=False, **{"data.validation_split": 0.0, **changes})
  assert seen["read"][1] == pytest.approx(float(history[-1]["val_accuracy"]), abs=1e-6)
  np.testing.assert_allclose(seen["read"], seen["evaluated"], rtol=1e-5)
  assert metrics["test_accuracy"] == pytest.approx(seen["evaluated"][1], abs=1e-6)


@pytest.mark.parametrize("changes", [{"optim.lookahead_every": 2}, {"optim.ema": True}])
def test_on_a_validation_split_the_last_validation_gives_the_final_weights_figures(
    tmp_path, monkeypatch, changes):
  """The same rule for a held-out validation split: its figures come from the last epoch's
  validation, equal to an evaluation of the weights the run ended with (Lookahead, EMA)."""
  from app.train import train_and_evaluate as module  # pylint: disable=g-import-not-at-top
  original, seen = module._validation_figures, {}

  def validation_figures_and_an_evaluation(model, data, config, history, test_figures):
    seen["evaluated"] = model.evaluate(data.validation, verbose=0)
    seen["read"] = original(None, data, config, history, test_figures)  # None: no evaluation
    return seen["read"]

  monkeypatch.setattr(module, "_validation_figures", validation_figures_and_an_evaluation)
  _, metrics, history = _run(tmp_path, spoil=False, **{"data.validation_split": 0.2, **changes})
  assert seen["read"][1] == pytest.approx(float(history[-1]["val_accuracy"]), abs=1e-6)
  np.testing.assert_allclose(seen["read"], seen["evaluated"], rtol=1e-5)
  assert metrics["validation_accuracy"] == pytest.approx(seen["evaluated"][1], abs=1e-6)
