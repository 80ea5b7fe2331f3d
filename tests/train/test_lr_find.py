"""app/train/lr_find.py: the range test's run writes its files, and its suggestion trains well."""

import json
import os

import keras
import numpy as np
import pytest

from app import config as config_lib
from app.data import pipeline
from app.data.sources import DATASETS
from app.core.errors import UsageError
from app.models import build_model
from app.train import lr_find
from configs import default
from tests import tensorboard_events


def _config(tmp_path, rate=0.01):
  config = default.get_config()
  config.data.limit = 4000
  config.model.name = "simple_cnn"
  config.model.width = 8
  config.model.dropout = 0.0
  config.train.batch_size = 64
  config.optim.name = "sgd"
  config.optim.momentum = 0.9
  config.optim.learning_rate = rate
  config.output_dir = str(tmp_path / "run")
  return config_lib.resolve(config)


def _short_training_accuracy(config, rate):
  keras.utils.set_random_seed(0)
  data = pipeline.build(DATASETS.get("fashion_mnist")(config.data), config.data, 64, 0)
  model = build_model(config.model, data.image_shape, 10, data.mean, data.variance)
  model.compile(keras.optimizers.SGD(rate, momentum=0.9), "categorical_crossentropy",
                metrics=["accuracy"])
  model.fit(data.train, epochs=2, verbose=0, shuffle=False)
  accuracy = model.evaluate(data.test, verbose=0)[1]
  return accuracy if np.isfinite(accuracy) else 0.0


def test_suggested_rate_beats_rates_100x_larger_and_100x_smaller(tmp_path):
  config = _config(tmp_path)
  summary = lr_find.run_lr_find(config, str(tmp_path / "lr"), 1e-5, 100.0, 120)
  for name in ("lr_find.csv", "lr_find.png", "lr_find.json"):
    assert os.path.getsize(tmp_path / "lr" / name) > 0
  assert json.load(open(tmp_path / "lr" / "lr_find.json")) == summary
  rate = summary["suggested_learning_rate"]
  board = tensorboard_events.runs(tmp_path / "lr")["tensorboard/lr_find"]  # issue 21
  assert board["lr_find/suggested_learning_rate"] == ("scalars", [(0, pytest.approx(rate))])
  assert [step for step, _ in board["lr_find/loss"][1]] == list(range(summary["steps_run"]))
  suggested = _short_training_accuracy(config, rate)
  assert suggested > _short_training_accuracy(config, rate * 100)
  assert suggested > _short_training_accuracy(config, rate / 100)

  # A recipe takes its rate from the file.
  config = default.get_config()
  config.optim.learning_rate_from = str(tmp_path / "lr" / "lr_find.json")
  assert config_lib.resolve(config).optim.learning_rate == pytest.approx(rate)


def test_bad_sweep_bounds_and_files_are_usage_errors(tmp_path):
  config = _config(tmp_path)
  with pytest.raises(UsageError, match="min_lr < max_lr"):
    lr_find.run_lr_find(config, str(tmp_path), 1.0, 0.1, 100)
  with pytest.raises(UsageError, match="too few"):
    lr_find.run_lr_find(config, str(tmp_path), 1e-4, 1.0, 3)
  bad = default.get_config()
  bad.optim.learning_rate_from = str(tmp_path / "missing.json")
  with pytest.raises(UsageError, match="not an lr_find.json"):
    config_lib.resolve(bad)


def test_the_sweep_is_a_tensorboard_run_too(tmp_path):
  """Issue 21: each step's rate, loss and smoothed loss as scalars, the summary's rates, and the
  figure, in <output_dir>/tensorboard/lr_find, read back by TensorBoard's event reader."""
  rows = [(0, 1e-4, 2.3, 2.3), (1, 1e-3, 2.0, 2.2), (2, 1e-2, 1.5, 2.0), (3, 1e-1, float("nan"),
                                                                          float("nan"))]
  summary = {"suggested_learning_rate": 1e-3, "min_loss_learning_rate": 1e-2,
             "steepest_learning_rate": 1e-2, "steps_run": 4}
  lr_find.write(summary, rows, str(tmp_path))
  board = tensorboard_events.runs(tmp_path)["tensorboard/lr_find"]
  assert board["lr_find/learning_rate"] == ("scalars", [(i, pytest.approx(row[1]))
                                                        for i, row in enumerate(rows)])
  assert board["lr_find/loss"][1][:3] == [(0, pytest.approx(2.3)), (1, 2.0), (2, 1.5)]
  assert np.isnan(board["lr_find/smoothed_loss"][1][3][1])  # a diverged step stays visible
  assert board["lr_find/min_loss_learning_rate"] == ("scalars", [(0, pytest.approx(1e-2))])
  plugin, [(_, png)] = board["lr_find/curve"]
  assert plugin == "images" and png[:4] == b"\x89PNG"
