"""app/models: build_model normalises in the graph; the CIFAR ResNet family's depth rule.

Every registered model's build / train-step / save-reload harness is tests/models/test_zoo.py."""

import keras
import numpy as np
import pytest

from app import models
from app.core.errors import UsageError
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


def test_flip_tta_averages_each_image_with_its_mirror_at_inference_only(tmp_path):
  config = model_config("simple_cnn")
  plain = models.build_model(config, (12, 12, 1), 3, [0.0], [1.0])
  config.tta = "flip"
  tta = models.build_model(config, (12, 12, 1), 3, [0.0], [1.0])
  tta.set_weights(plain.get_weights())  # the TTA layers hold no weights
  x = raw_images(4, (12, 12, 1))
  expected = (plain.predict(x, verbose=0) + plain.predict(x[:, :, ::-1], verbose=0)) / 2
  np.testing.assert_allclose(tta.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(tta(x, training=True), plain(x, training=True), rtol=1e-5, atol=1e-6)
  path = str(tmp_path / "tta.keras")  # saved and reloaded (safe mode), it still averages
  tta.save(path)
  np.testing.assert_allclose(models.load_model(path).predict(x, verbose=0), expected,
                             rtol=1e-5, atol=1e-6)


def test_flip_translate_tta_averages_six_views_as_airbench_does(tmp_path):
  config = model_config("simple_cnn")
  plain = models.build_model(config, (12, 12, 1), 3, [0.0], [1.0])
  config.tta = "flip_translate"
  tta = models.build_model(config, (12, 12, 1), 3, [0.0], [1.0])
  tta.set_weights(plain.get_weights())
  x = raw_images(4, (12, 12, 1))
  padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
  predict = lambda images: plain.predict(images, verbose=0)
  mirrored = lambda images: (predict(images) + predict(images[:, :, ::-1])) / 2
  # half the image and its mirror, half the two one-pixel translations and their mirrors
  expected = (mirrored(x) / 2
              + (mirrored(padded[:, :-2, :-2]) + mirrored(padded[:, 2:, 2:])) / 4)
  np.testing.assert_allclose(tta.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(tta(x, training=True), plain(x, training=True), rtol=1e-5, atol=1e-6)
  path = str(tmp_path / "tta.keras")
  tta.save(path)
  np.testing.assert_allclose(models.load_model(path).predict(x, verbose=0), expected,
                             rtol=1e-5, atol=1e-6)


def test_kernel_size_and_batch_norm_are_model_options():
  config = model_config("vgg")
  config.width, config.kernel_size, config.batch_norm = 4, 5, False
  model = models.build_model(config, (16, 16, 1), 3, [0.0], [1.0])
  network = model.get_layer("vgg")
  conv = network.get_layer("stage0_0_conv")
  assert conv.kernel.shape[:2] == (5, 5) and conv.use_bias
  assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in network.layers)
  config = model_config("simple_cnn")
  config.kernel_size = 5
  assert models.build_model(config, (16, 16, 1), 3, [0.0], [1.0]).get_layer("simple_cnn") \
      .get_layer("conv1").kernel.shape[:2] == (5, 5)
  with pytest.raises(UsageError, match="at least 16x16"):
    models.build_model(config, (15, 15, 1), 3, [0.0], [1.0])
