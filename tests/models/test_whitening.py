"""app/models/whitening.py: patch whitening filters from data, frozen, set by one call."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from app import models
from app.models.whitening import PatchWhitening, patch_covariance
from configs import default


def correlated_images(count=64, size=12, seed=0):
  """Smooth RGB images in 0..255: neighbouring pixels and channels strongly correlated."""
  rng = np.random.default_rng(seed)
  base = rng.normal(size=(count, size // 2, size // 2, 1))
  base = np.repeat(np.repeat(base, 2, axis=1), 2, axis=2)  # 2x2 blocks of equal values
  colour = np.concatenate([base, 0.8 * base, 0.5 * base], axis=-1)
  noise = 0.2 * rng.normal(size=(count, size, size, 3))
  return np.clip(128 + 50 * (colour + noise), 0, 255).astype("float32")


def airbench(shape=(12, 12, 3), whitening=True):
  config = default.get_config().model
  config.name, config.width, config.whitening = "airbench", 4, whitening
  return models.build_model(config, shape, 10, [128.0] * 3, [2500.0] * 3)


def dataset_of(images, batch=16):
  labels = tf.one_hot(np.zeros(len(images), "int32"), 10)
  return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)


def test_patch_covariance_matches_a_direct_count():
  images = np.random.default_rng(0).normal(size=(2, 3, 4, 2))
  total, count = patch_covariance(images, 2)
  patches = np.array([images[n, i:i + 2, j:j + 2, :].reshape(-1)  # (k, k, C) order
                      for n in range(2) for i in range(2) for j in range(3)])
  assert count == len(patches) == 12
  np.testing.assert_allclose(total, patches.T @ patches, rtol=1e-10)


def test_init_from_data_whitens_the_patches_of_the_normalised_images():
  model = airbench()
  images = correlated_images()
  models.init_from_data(model, dataset_of(images))
  whiten = model.layers[-1].get_layer("whiten")
  normalised = (images - 128.0) / 50.0
  responses = keras.ops.convert_to_numpy(whiten(normalised)) - keras.ops.convert_to_numpy(whiten.bias)
  half = responses.reshape(-1, responses.shape[-1])[:, :12]  # one of each +/- filter pair
  covariance = half.T @ half / len(half)
  # Uncorrelated with unit variance (eps shrinks only the near-zero directions).
  np.testing.assert_allclose(np.diag(covariance)[-6:], 1.0, atol=0.02)
  off_diagonal = covariance - np.diag(np.diag(covariance))
  assert np.abs(off_diagonal).max() < 1e-3
  np.testing.assert_allclose(responses[..., 12:], -responses[..., :12], atol=1e-4)


def test_whitening_filters_are_frozen_and_the_bias_trains():
  model = airbench()
  models.init_from_data(model, dataset_of(correlated_images()))
  whiten = model.layers[-1].get_layer("whiten")
  assert [w.name for w in whiten.trainable_weights] == ["bias"]
  kernel = keras.ops.convert_to_numpy(whiten.kernel).copy()
  model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy",
                run_eagerly=True)
  model.train_on_batch(correlated_images(8), keras.utils.to_categorical(np.arange(8), 10))
  np.testing.assert_array_equal(keras.ops.convert_to_numpy(whiten.kernel), kernel)
  assert np.any(keras.ops.convert_to_numpy(whiten.bias) != 0)


def test_init_from_data_reads_nothing_for_models_without_whitening():
  class Unreadable:
    def __iter__(self):
      raise AssertionError("read")

  models.init_from_data(airbench(whitening=False), Unreadable())
  config = default.get_config().model
  config.name, config.width = "vgg", 4
  models.init_from_data(models.build_model(config, (12, 12, 1), 3, [0.0], [1.0]), Unreadable())


@pytest.mark.parametrize("max_images", [5, 64])
def test_init_from_data_reads_at_most_max_images(max_images):
  model = airbench()
  images = correlated_images()
  models.init_from_data(model, dataset_of(images), max_images=max_images)
  expected = PatchWhitening(patch_size=2)
  expected.build((None, 12, 12, 3))
  total, count = patch_covariance((images[:max_images] - 128.0) / 50.0, 2)
  expected.set_filters(total / count)
  np.testing.assert_allclose(model.layers[-1].get_layer("whiten").kernel, expected.kernel,
                             rtol=1e-3, atol=1e-3)
