"""app/data/pipeline.py: a Source and the data config -> batched, seeded train/validation/test."""

import numpy as np
import pytest
import tensorflow as tf

from app.data import pipeline
from app.data.sources import DATASETS, Examples, Source
from app.core.errors import UsageError
from configs import default


@pytest.fixture(scope="module")
def fashion_mnist(fashion_mnist_dir):
  del fashion_mnist_dir  # the default location; the fixture fails clearly when it is missing
  return DATASETS.get("fashion_mnist")(default.get_config().data)


@pytest.fixture
def limited(data_config):
  data_config.limit = 1000
  return data_config


def first_batch(dataset):
  images, labels = next(iter(dataset))
  return images.numpy(), labels.numpy()


def count(dataset):
  return sum(int(labels.shape[0]) for _, labels in dataset)


def test_batches_are_float_pixels_and_one_hot_labels(fashion_mnist, limited):
  data = pipeline.build(fashion_mnist, limited, 128, seed=0)
  images, labels = first_batch(data.train)
  assert images.shape == (128, 28, 28, 1) and images.dtype == np.float32
  assert 0 <= images.min() and images.max() <= 255 and images.max() > 1  # pixels, not 0..1
  np.testing.assert_array_equal(images, np.round(images))
  assert labels.shape == (128, 10) and labels.dtype == np.float32
  np.testing.assert_array_equal(labels.sum(axis=1), np.ones(128))
  assert set(np.unique(labels)) == {0.0, 1.0}
  assert data.steps_per_epoch == 8  # ceil(1000 / 128): the last, short batch counts
  assert data.num_train == 1000 and data.num_validation == 1000 and data.num_test == 1000
  assert count(data.train) == 1000 and count(data.validation) == 1000
  assert data.image_shape == (28, 28, 1) and data.test_split == "test"
  assert data.class_names == fashion_mnist.class_names
  assert data.mean.shape == (1,) and data.variance.shape == (1,)
  assert 0 < data.mean[0] < 255 and data.variance[0] > 1


def test_train_batches_hold_the_source_images(fashion_mnist, limited):
  """One epoch is a permutation of the first `limit` images, each with its own label."""
  data = pipeline.build(fashion_mnist, limited, 1000, seed=0)
  images, labels = first_batch(data.train)
  pairs = lambda x, y: sorted(zip((i.tobytes() for i in x.astype(np.uint8)), y.tolist()))
  assert pairs(images, labels.argmax(axis=1)) == pairs(fashion_mnist.train.images[:1000],
                                                       fashion_mnist.train.labels[:1000])
  assert not np.array_equal(images, fashion_mnist.train.images[:1000])  # shuffled


def test_drop_remainder_steps(fashion_mnist, limited):
  data = pipeline.build(fashion_mnist, limited, 128, seed=0, drop_remainder=True)
  assert data.steps_per_epoch == 7
  assert count(data.train) == 7 * 128
  assert count(data.validation) == 1000  # evaluation keeps every image


def test_validation_split(fashion_mnist, limited):
  limited.validation_split = 0.2
  data = pipeline.build(fashion_mnist, limited, 100, seed=0)
  assert data.num_train == 800 and data.num_validation == 200 and data.num_test == 1000
  assert data.steps_per_epoch == 8
  assert count(data.train) == 800 and count(data.validation) == 200
  assert count(data.test) == 1000 and data.test_split == "test"


def test_split_validation_is_disjoint_covering_and_seeded():
  examples = Examples(labels=np.arange(50, dtype=np.int32), images=np.zeros((50, 2, 2, 1), np.uint8))
  train, validation = pipeline.split_validation(examples, 0.2, seed=3)
  assert len(train) == 40 and len(validation) == 10
  assert not set(train.labels) & set(validation.labels)
  assert sorted(set(train.labels) | set(validation.labels)) == list(range(50))
  assert train.images.shape == (40, 2, 2, 1)
  again = pipeline.split_validation(examples, 0.2, seed=3)[1]
  np.testing.assert_array_equal(again.labels, validation.labels)
  other = pipeline.split_validation(examples, 0.2, seed=4)[1]
  assert set(other.labels) != set(validation.labels)


@pytest.mark.parametrize("fraction", [0.001, 0.999])
def test_split_validation_refuses_an_empty_side(fraction):
  examples = Examples(labels=np.arange(50, dtype=np.int32))
  with pytest.raises(UsageError, match="empty split"):
    pipeline.split_validation(examples, fraction, seed=0)


def test_same_seed_same_order_other_seed_other_order(fashion_mnist, limited):
  first = first_batch(pipeline.build(fashion_mnist, limited, 64, seed=7).train)
  again = first_batch(pipeline.build(fashion_mnist, limited, 64, seed=7).train)
  other = first_batch(pipeline.build(fashion_mnist, limited, 64, seed=8).train)
  np.testing.assert_array_equal(first[0], again[0])
  np.testing.assert_array_equal(first[1], again[1])
  assert not np.array_equal(first[0], other[0])


def test_evaluation_splits_keep_source_order(fashion_mnist, limited):
  data = pipeline.build(fashion_mnist, limited, 64, seed=7)
  images, labels = first_batch(data.validation)
  np.testing.assert_array_equal(images, fashion_mnist.test.images[:64].astype(np.float32))
  np.testing.assert_array_equal(labels.argmax(axis=1), fashion_mnist.test.labels[:64])


def small_source(test):
  rng = np.random.default_rng(0)
  train = Examples(labels=rng.integers(0, 3, 40).astype(np.int32),
                   images=rng.integers(0, 256, (40, 5, 5, 1), dtype=np.uint8))
  return Source(train, train if test else None, ["a", "b", "c"], (5, 5, 1), "made in the test")


def test_source_without_test_needs_validation_split(data_config):
  with pytest.raises(UsageError, match="validation_split"):
    pipeline.build(small_source(test=False), data_config, 8, seed=0)


def test_source_without_test_reports_on_validation(data_config):
  data_config.validation_split = 0.25
  data = pipeline.build(small_source(test=False), data_config, 8, seed=0)
  assert data.num_train == 30 and data.num_validation == 10 and data.num_test == 10
  assert data.test_split == "validation"


def test_batch_larger_than_train_with_drop_remainder(data_config):
  with pytest.raises(UsageError, match="batch_size"):
    pipeline.build(small_source(test=True), data_config, 64, seed=0, drop_remainder=True)


def test_augment_applies_to_train_only(data_config):
  data_config.augment = "crop(pad=5)"  # pad = side: most windows hold padding zeros
  source = small_source(test=True)
  data = pipeline.build(source, data_config, 40, seed=0)
  train_images, _ = first_batch(data.train)
  validation_images, _ = first_batch(data.validation)
  assert (train_images == 0).mean() > 0.2
  np.testing.assert_array_equal(validation_images, source.train.images.astype(np.float32))


def test_folder_source_decodes_batches(cifar_mini_dir, data_config):
  data_config.data_dir = cifar_mini_dir
  source = DATASETS.get("folder")(data_config)
  data = pipeline.build(source, data_config, 50, seed=0)
  images, labels = first_batch(data.train)
  assert images.shape == (50, 32, 32, 3) and images.dtype == np.float32
  assert labels.shape == (50, 10)
  assert images.max() > 1 and images.min() >= 0
  assert data.num_train == 1000 and data.num_test == 200 and data.steps_per_epoch == 20
  assert data.mean.shape == (3,) and data.variance.shape == (3,)
  assert np.all((50 < data.mean) & (data.mean < 200)) and np.all(data.variance > 100)
  test_images, test_labels = first_batch(data.test)
  expected = tf.io.decode_jpeg(tf.io.read_file(source.test.paths[0]), channels=3).numpy()
  np.testing.assert_array_equal(test_images[0], expected.astype(np.float32))
  assert test_labels[0].argmax() == source.test.labels[0]


def test_folder_source_resizes_to_image_size(cifar_mini_dir, data_config):
  data_config.data_dir = cifar_mini_dir
  data_config.image_size = 16
  data_config.channels = 1
  data_config.limit = 20
  data = pipeline.build(DATASETS.get("folder")(data_config), data_config, 10, seed=0)
  images, _ = first_batch(data.train)
  assert images.shape == (10, 16, 16, 1)
  assert data.mean.shape == (1,)
