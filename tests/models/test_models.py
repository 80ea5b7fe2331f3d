"""app/models: build_model normalises in the graph; the CIFAR ResNet family's depth rule.

Every registered model's build / train-step / save-reload harness is tests/models/test_zoo.py."""

import numpy as np
import pytest

from app import models
from app.errors import UsageError
from configs import default

def model_config(name, width=8):
  config = default.get_config()
  config.model.name = name
  config.model.width = width
  return config.model


def raw_images(count, shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (count, *shape)).astype(np.float32)


def test_families():
  assert {"simple_cnn", "vgg", "resnet"} <= set(models.MODELS.names())


def test_normalization_uses_given_statistics():
  mean, variance = [10.0, 20.0, 30.0], [4.0, 9.0, 16.0]
  model = models.build_model(model_config("simple_cnn"), (32, 32, 3), 10, mean, variance)
  x = raw_images(2, (32, 32, 3))
  normalized = model.get_layer("normalize")(x)
  np.testing.assert_allclose(normalized, (x - np.array(mean)) / np.sqrt(variance), rtol=1e-4,
                             atol=1e-4)


def test_resnet20_has_about_0_27m_parameters():
  resnet = models.MODELS.get("resnet")((32, 32, 3), 10, width=16, depth=20)
  assert abs(resnet.count_params() - 0.27e6) / 0.27e6 < 0.02


def test_resnet_default_is_resnet20():
  assert models.MODELS.get("resnet")((32, 32, 3), 10).name == "resnet20"


@pytest.mark.parametrize("depth", [9, 2, 21])
def test_resnet_depth_must_be_6n_plus_2(depth):
  with pytest.raises(UsageError, match="6n \\+ 2"):
    models.MODELS.get("resnet")((32, 32, 3), 10, width=8, depth=depth)
