"""app/models: every family builds for gray and RGB images, trains a step, saves and reloads."""

import keras
import numpy as np
import pytest

from app import models
from app.errors import UsageError
from configs import default

SHAPES = [(28, 28, 1), (32, 32, 3)]


def model_config(name, width=8):
  config = default.get_config()
  config.model.name = name
  config.model.width = width
  return config.model


def build(name, shape, num_classes=10):
  mean, variance = [120.0] * shape[-1], [4000.0] * shape[-1]
  return models.build_model(model_config(name), shape, num_classes, mean, variance)


def raw_images(count, shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (count, *shape)).astype(np.float32)


def test_families():
  assert {"simple_cnn", "vgg", "resnet"} <= set(models.MODELS.names())


@pytest.mark.parametrize("shape", SHAPES, ids=["gray28", "rgb32"])
@pytest.mark.parametrize("name", models.MODELS.names())
def test_build_train_save_reload(tmp_path, name, shape):
  keras.utils.set_random_seed(0)
  model = build(name, shape)
  assert model.input_shape == (None, *shape)
  x = raw_images(2, shape)
  probabilities = model.predict(x, verbose=0)
  assert probabilities.shape == (2, 10) and probabilities.dtype == np.float32
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
  assert np.all(probabilities >= 0)

  model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy",
                jit_compile=False)
  before = [w.copy() for w in model.get_weights()]
  labels = keras.utils.to_categorical([0, 1, 2, 3], 10)
  history = model.fit(raw_images(4, shape, seed=1), labels, batch_size=4, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

  path = str(tmp_path / f"{name}.keras")
  model.save(path)
  reloaded = keras.saving.load_model(path)
  np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0),
                             atol=1e-5)


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
