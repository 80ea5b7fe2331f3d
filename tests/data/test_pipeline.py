"""app/data/pipeline.py: a Source and the data config -> batched, seeded train/validation/test."""

import numpy as np
import pytest
import tensorflow as tf

from app.data import images as images_lib
from app.data import pipeline, sources
from app.data.sources import DATASETS, Examples, Source, tfrecord
from app.core.errors import UsageError
from configs import default

from tests.data.sources.test_tfds import store_tiny_fashion


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
  assert data.steps_per_epoch == 8  # ceil(900 / 128): the last, short batch counts
  # By default 10% of the training images are held out for validation, never the test split.
  assert data.num_train == 900 and data.num_validation == 100 and data.num_test == 1000
  assert count(data.train) == 900 and count(data.validation) == 100
  assert data.image_shape == (28, 28, 1) and data.test_split == "test"
  assert data.class_names == fashion_mnist.class_names
  assert data.mean.shape == (1,) and data.variance.shape == (1,)
  assert 0 < data.mean[0] < 255 and data.variance[0] > 1


def test_train_batches_hold_the_source_images(fashion_mnist, limited):
  """One epoch is a permutation of the `limit` images kept, each with its own label."""
  limited.validation_split = 0.0  # every image kept trains (the default holds 10% out)
  data = pipeline.build(fashion_mnist, limited, 1000, seed=0)
  images, labels = first_batch(data.train)
  kept = fashion_mnist.train.limited(1000, seed=0)
  pairs = lambda x, y: sorted(zip((i.tobytes() for i in x.astype(np.uint8)), y.tolist()))
  assert pairs(images, labels.argmax(axis=1)) == pairs(kept.images, kept.labels)
  assert not np.array_equal(images, kept.images)  # shuffled


def test_drop_remainder_steps(fashion_mnist, limited):
  limited.validation_split = 0.0  # all 1000 images train; validation is the test split
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
  with pytest.raises(UsageError, match="leaves an empty validation split"):
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
  # The test split, and the validation part held out of train (in the order of train).
  held_out = pipeline.split_validation(fashion_mnist.train.limited(1000, seed=7), 0.1, seed=7)[1]
  for split, kept in ((data.test, fashion_mnist.test.limited(1000, seed=7)),
                      (data.validation, held_out)):
    images, labels = first_batch(split)
    np.testing.assert_array_equal(images, kept.images[:64].astype(np.float32))
    np.testing.assert_array_equal(labels.argmax(axis=1), kept.labels[:64])


def small_source(test):
  rng = np.random.default_rng(0)
  train = Examples(labels=rng.integers(0, 3, 40).astype(np.int32),
                   images=rng.integers(0, 256, (40, 5, 5, 1), dtype=np.uint8))
  return Source(train, train if test else None, ["a", "b", "c"], (5, 5, 1), "made in the test")


def test_source_without_test_needs_validation_split(data_config):
  data_config.validation_split = 0.0
  with pytest.raises(UsageError, match="validation_split"):
    pipeline.build(small_source(test=False), data_config, 8, seed=0)


def test_source_without_test_holds_out_a_test_part_apart_from_validation(data_config):
  """What selects (best.keras, early stopping) sees the validation part; the test figures come
  from another held-out part, never seen in training or selection."""
  data_config.validation_split = 0.25
  data = pipeline.build(small_source(test=False), data_config, 8, seed=0)
  assert data.num_test == 10 and data.num_validation == 8 and data.num_train == 22  # 40 images
  assert data.test_split == "held_out_test"
  pixels = lambda ds: {i.tobytes() for x, _ in ds for i in x.numpy().astype(np.uint8)}
  train, validation, test = pixels(data.train), pixels(data.validation), pixels(data.test)
  assert not train & test and not validation & test and not train & validation


def test_batch_larger_than_train_with_drop_remainder(data_config):
  with pytest.raises(UsageError, match="batch_size"):
    pipeline.build(small_source(test=True), data_config, 64, seed=0, drop_remainder=True)


def test_augment_applies_to_train_only(data_config):
  data_config.augment = "crop(pad=5)"  # pad = side: most windows hold padding zeros
  data_config.validation_split = 0.0  # validation is the (whole) test split, in one batch
  source = small_source(test=True)
  data = pipeline.build(source, data_config, 40, seed=0)
  train_images, _ = first_batch(data.train)
  validation_images, _ = first_batch(data.validation)
  assert (train_images == 0).mean() > 0.2
  np.testing.assert_array_equal(validation_images, source.train.images.astype(np.float32))


def test_folder_source_decodes_batches(cifar_mini_dir, data_config):
  data_config.data_dir = cifar_mini_dir
  data_config.validation_split = 0.0  # all 1000 training images train
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


@pytest.fixture(scope="module")
def source_dirs(fashion_mnist, fashion_mnist_dir, cifar_mini_dir, tmp_path_factory):
  """data.name -> data_dir of every kind of source; the TFRecord and TFDS copies made here."""
  folder = default.get_config().data
  folder.name, folder.data_dir = "folder", cifar_mini_dir
  records, tfds_root = (str(tmp_path_factory.mktemp(name)) for name in ("records", "tfds"))
  tfrecord.write_source(DATASETS.get("folder")(folder), records, 2)
  store_tiny_fashion(tfds_root, fashion_mnist)
  return {"fashion_mnist": fashion_mnist_dir, "idx": fashion_mnist_dir, "folder": cifar_mini_dir,
          "tfrecord": records, "tfds:tiny_fashion": tfds_root}


@pytest.mark.parametrize("name", ["fashion_mnist", "idx", "folder", "tfrecord", "tfds:tiny_fashion"])
def test_a_limit_keeps_every_class_share_of_every_source_seeded(name, source_dirs, data_config):
  """data.limit kept the first N examples: of a folder (listed class by class), the first classes."""
  data_config.name, data_config.data_dir, data_config.limit = name, source_dirs[name], 150
  data_config.validation_split = 0.0  # class_counts: the whole limited training split
  source = sources.load(data_config)
  data = pipeline.build(source, data_config, 50, seed=5)
  test_labels = np.concatenate([labels.numpy().argmax(axis=1) for _, labels in data.test])
  for examples, kept in ((source.train, data.class_counts), (source.test, np.bincount(test_labels))):
    share = min(150, len(examples)) * np.bincount(examples.labels) / len(examples)
    assert kept.sum() == min(150, len(examples)) and np.all(np.abs(kept - share) < 1), (kept, share)
    assert kept.min() >= 1
  again = pipeline.build(sources.load(data_config), data_config, 50, seed=5).train_examples
  other = pipeline.build(sources.load(data_config), data_config, 50, seed=6).train_examples
  np.testing.assert_array_equal(again.images, data.train_examples.images)
  assert not np.array_equal(other.images, data.train_examples.images)


# === Issue 18 (6): a folder's own validation split (train/ + val/ [+ test/]) ===


@pytest.mark.parametrize("in_memory_max_gb", [0.0, 1.0])
def test_validation_and_test_keep_eval_crop_s_share_and_training_the_whole_centre(
    cifar_mini_dir, data_config, in_memory_max_gb):
  """data.eval_crop (issue 18): validation and test images are the stored images' centre share
  scaled to the side (decoded from the files, in memory or not); training keeps the whole
  centre, which its augmentations crop."""
  data_config.data_dir, data_config.limit, data_config.image_size = cifar_mini_dir, 20, 24
  data_config.resize, data_config.eval_crop = "crop", 0.75
  data_config.in_memory_max_gb = in_memory_max_gb
  source = DATASETS.get("folder")(data_config)
  data = pipeline.build(source, data_config, 100, seed=0)
  stored = lambda path: tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
  # 32 x 32 files: the shorter side to 24 / 0.75 = 32 (as stored), its centre 24 x 24.
  test_images, _ = first_batch(data.test)
  first_test = source.test.limited(20, 0).paths[0]  # the pipeline's subset (seed 0)
  np.testing.assert_array_equal(test_images[0], stored(first_test).numpy()[4:28, 4:28])
  paths = source.train.limited(20, 0).paths  # the pipeline's subset (seed 0), test part included
  whole = {images_lib.fit(stored(p), (24, 24, 3), "crop").numpy().tobytes() for p in paths}
  centre = {images_lib.fit(stored(p), (24, 24, 3), "crop(0.75)").numpy().tobytes() for p in paths}
  train = {image.astype(np.uint8).tobytes() for x, _ in data.train for image in x.numpy()}
  assert train <= whole and not train & centre and len(train) == data.num_train


def test_eval_crop_crops_the_arrays_a_source_holds_at_the_training_size(fashion_mnist, limited):
  limited.resize, limited.eval_crop = "crop", 0.5
  data = pipeline.build(fashion_mnist, limited, 50, seed=0)
  test_images, _ = first_batch(data.test)
  first_test = fashion_mnist.test.limited(1000, 0).images[0]  # the pipeline's subset (seed 0)
  expected = images_lib.fit(tf.constant(first_test), (28, 28, 1), "crop(0.5)")
  np.testing.assert_array_equal(test_images[0], expected.numpy().astype(np.float32))
  train_images, _ = first_batch(data.train)  # not augmented here: training's pixels as stored
  stored = {image.tobytes() for image in fashion_mnist.train.limited(1000, 0).images}
  assert train_images[0].astype(np.uint8).tobytes() in stored


def test_a_val_folder_validates_and_the_test_split_is_held_out_of_train(tmp_path, data_config):
  """train/ + val/: validation is val/ (not data.validation_split of train), the test split a
  seeded part of train; the data check and data.limit take val/ as they take test/."""
  from app.data import checks  # pylint: disable=g-import-not-at-top
  from tests.data.sources.test_folder import TWO, layout  # pylint: disable=g-import-not-at-top
  data_config.name, data_config.data_dir = "folder", layout(
      tmp_path, {"train": TWO, "val": TWO}, per_class=10)
  data_config.limit, data_config.validation_split = 16, 0.25
  source, report = checks.check_source(sources.load(data_config), data_config, seed=0)
  assert report["images"] == {"train": 16, "validation": 16}
  assert report["train_validation_duplicates"] == []
  data = pipeline.build(source, data_config, 8, seed=0)
  assert (data.num_train, data.num_validation, data.num_test) == (12, 16, 4)  # 0.25 of 16: test
  assert data.test_split == "held_out_test"
  assert data.validation_from == f"val folder {tmp_path / 'val'}"
  pixels = lambda ds: {i.tobytes() for x, _ in ds for i in x.numpy().astype(np.uint8)}
  validation = pixels(data.validation)
  assert len(validation) == 16 and not validation & (pixels(data.test) | pixels(data.train))
  # validation_split=0: nothing is held out of train, so there is no test split.
  data_config.validation_split = 0.0
  with pytest.raises(UsageError, match=r"has no test split; .*validation_split=0.1 \(that "
                                       r"fraction as the test split\)"):
    pipeline.build(source, data_config, 8, seed=0)


def test_a_source_validation_split_beside_test_and_under_folds(data_config):
  """train/ + validation/ + test/ uses all three, whatever data.validation_split; the folds of
  cross-validation are of train, and leave the source's validation split unused."""
  source = small_source(test=True)
  source.validation = Examples(labels=np.zeros(6, np.int32),
                               images=np.zeros((6, 5, 5, 1), np.uint8))
  source.validation_description = "val folder made in the test"
  for fraction in (0.0, 0.1):
    data_config.validation_split = fraction
    data = pipeline.build(source, data_config, 8, seed=0)
    assert (data.num_train, data.num_validation, data.num_test) == (40, 6, 40)
    assert data.test_split == "test" and data.validation_from == "val folder made in the test"
  data = pipeline.build(source, data_config, 8, seed=0, fold=(0, 4))
  assert (data.num_train, data.num_validation, data.validation_from) == (30, 10, "")


def distinct_source(count, files_dir=None):
  """`count` distinct 6x6 RGB images (no two alike, none its own mirror): in memory, or written
  as PNG files under `files_dir` (the decode-and-cache path)."""
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, (count, 6, 6, 3), dtype=np.uint8)
  labels = (np.arange(count) % 2).astype(np.int32)
  if files_dir is None:
    train = Examples(labels=labels, images=images)
  else:
    paths = []
    for index, image in enumerate(images):
      paths.append(str(files_dir / f"{index}.png"))
      tf.io.write_file(paths[-1], tf.io.encode_png(image))
    train = Examples(labels=labels, paths=np.array(paths))
  return Source(train, train, ["a", "b"], (6, 6, 3), "made in the test"), images


@pytest.mark.parametrize("stored", ["in_memory", "files"])
def test_alternating_flip_shows_each_image_both_ways_in_two_epochs(stored, tmp_path, data_config):
  """flip(alternate=True) through the real pipeline, in-memory (gathered by index) and decoded
  from files (numbered after the cache): across epochs 0 and 1 every image is seen once as it is
  and once mirrored, about half of them mirrored first; epoch 2 repeats epoch 0's choice."""
  source, images = distinct_source(48, None if stored == "in_memory" else tmp_path)
  data_config.augment = "flip(alternate=True)|crop(pad=0)"
  data_config.validation_split = 0.0
  data = pipeline.build(source, data_config, 16, seed=0)
  by_pixels = {image.tobytes(): (index, False) for index, image in enumerate(images)}
  by_pixels.update({image[:, ::-1].tobytes(): (index, True) for index, image in enumerate(images)})
  seen = {epoch: {} for epoch in range(3)}
  for epoch in range(3):
    for batch, _ in pipeline.training_batches(data, epoch, epoch + 1):
      for image in batch.numpy().astype(np.uint8):
        index, mirrored = by_pixels[image.tobytes()]
        seen[epoch][index] = mirrored
  assert all(sorted(seen[epoch]) == list(range(48)) for epoch in seen)
  assert all(seen[0][i] != seen[1][i] for i in range(48))
  assert seen[2] == seen[0]
  assert 12 <= sum(seen[0].values()) <= 36
