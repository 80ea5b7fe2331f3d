"""Every registered augmentation op: shapes, dtypes, value ranges, labels; host and device."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from app.data import augment
from app.core.errors import UsageError

SPECS = {
    "flip": "flip", "crop": "crop(pad=2)", "rotate": "rotate(factor=0.1)",
    "zoom": "zoom(factor=0.2)", "translate": "translate(factor=0.2)",
    "color_jitter": "color_jitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1)",
    "erase": "erase(factor=1.0)", "randaugment": "randaugment(num_ops=2, factor=0.5)",
    "mixup": "mixup(alpha=0.4)", "cutmix": "cutmix(factor=1.0)",
}


def test_every_registered_op_is_covered():
  assert sorted(SPECS) == augment.AUGMENTATIONS.names()


@pytest.fixture(scope="module")
def batch():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (16, 12, 12, 3)).astype("float32")
  labels = tf.one_hot(np.arange(16) % 4, 4).numpy()
  return images, labels


def eagerly(augmenter, images, labels):
  out_images, out_labels = augmenter(tf.constant(images), tf.constant(labels))
  return out_images.numpy(), out_labels.numpy()


def in_dataset(augmenter, images, labels):
  ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(len(images)).map(augmenter)
  out_images, out_labels = next(iter(ds))
  return out_images.numpy(), out_labels.numpy()


@pytest.mark.parametrize("run", [eagerly, in_dataset], ids=["eager", "dataset"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_op_keeps_shape_dtype_range_and_valid_labels(name, run, batch):
  images, labels = batch
  out_images, out_labels = run(augment.parse(SPECS[name]), images, labels)
  assert out_images.shape == images.shape and out_images.dtype == np.float32
  assert out_images.min() >= -1e-3 and out_images.max() <= 255 + 1e-3
  assert out_labels.shape == labels.shape
  np.testing.assert_allclose(out_labels.sum(axis=1), 1.0, atol=1e-5)
  assert (out_labels >= -1e-6).all()
  if name not in ("mixup", "cutmix"):
    np.testing.assert_array_equal(out_labels, labels)  # image ops leave labels alone
  if name != "flip":  # flip may leave a batch unchanged only with chance 2**-16
    assert not np.array_equal(out_images, images) or name in ("zoom",)


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_mixed_labels_follow_the_images(name, batch):
  images, labels = batch
  tf.random.set_seed(1)
  out_images, out_labels = eagerly(augment.parse(SPECS[name]), images, labels)
  mixed = (out_labels > 1e-4).sum(axis=1)
  assert mixed.max() <= 2 and (mixed == 2).any()


def test_device_layers_augment_in_training_and_are_identity_at_inference(batch):
  images, _ = batch
  layers = augment.parse("flip|rotate(factor=0.1)|translate(factor=0.1)", on_device=True).layers()
  model = keras.Sequential([keras.Input((12, 12, 3))] + layers)
  np.testing.assert_array_equal(model(images, training=False), images)
  assert not np.allclose(model(images, training=True), images)


@pytest.mark.parametrize("spec", ["crop(pad=2)", "mixup", "cutmix"])
def test_host_only_ops_are_refused_on_device(spec):
  with pytest.raises(UsageError, match="runs in the host pipeline"):
    augment.parse(spec, on_device=True)


@pytest.mark.parametrize("spec", ["rotate(angle=3)", "mixup(alpha='x', beta=2)", "nope(factor=1)"])
def test_bad_op_arguments_are_usage_errors(spec):
  with pytest.raises(UsageError):
    augment.parse(spec)
