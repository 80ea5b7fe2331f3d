"""app/data/sources.py: Fashion-MNIST and IDX files, image folders, and the inputs they refuse."""

import os
import shutil

import numpy as np
import pytest

from app.data import sources
from app.data.sources import DATASETS
from app.core.errors import UsageError
from configs import default


@pytest.fixture(scope="module")
def fashion_mnist(fashion_mnist_dir):
  del fashion_mnist_dir  # the default location; the fixture fails clearly when it is missing
  return DATASETS.get("fashion_mnist")(default.get_config().data)


def copy_classes(cifar_mini_dir, root, classes, per_class=3):
  """A plain class-folder tree (no train/test) of a few real mini-set JPEGs per class."""
  for name in classes:
    os.makedirs(root / name)
    for filename in sorted(os.listdir(os.path.join(cifar_mini_dir, "train", name)))[:per_class]:
      shutil.copy(os.path.join(cifar_mini_dir, "train", name, filename), root / name / filename)
  return str(root)


def test_fashion_mnist_from_default_location(fashion_mnist):
  assert len(fashion_mnist.train) == 60000 and len(fashion_mnist.test) == 10000
  assert fashion_mnist.train.images.shape == (60000, 28, 28, 1)
  assert fashion_mnist.train.images.dtype == np.uint8
  assert fashion_mnist.train.labels.dtype == np.int32
  assert fashion_mnist.train.paths is None
  assert tuple(fashion_mnist.image_shape) == (28, 28, 1)
  assert fashion_mnist.class_names == sources.FASHION_MNIST_CLASSES
  assert len(set(fashion_mnist.class_names)) == 10
  assert set(np.unique(fashion_mnist.test.labels)) == set(range(10))


def test_fashion_mnist_data_dir_without_files(tmp_path, data_config):
  data_config.data_dir = str(tmp_path)
  with pytest.raises(UsageError, match="not found"):
    DATASETS.get("fashion_mnist")(data_config)


def test_fashion_mnist_missing_data_dir(tmp_path, data_config):
  data_config.data_dir = str(tmp_path / "nowhere")
  with pytest.raises(UsageError, match="does not exist"):
    DATASETS.get("fashion_mnist")(data_config)


def test_idx_reads_fashion_mnist_dir(fashion_mnist_dir, data_config):
  data_config.name = "idx"
  data_config.data_dir = fashion_mnist_dir
  source = DATASETS.get("idx")(data_config)
  assert len(source.train) == 60000 and len(source.test) == 10000
  assert tuple(source.image_shape) == (28, 28, 1)
  assert source.class_names == [str(i) for i in range(10)]


@pytest.mark.parametrize("make_dir", [False, True])
def test_idx_refuses_missing_or_empty_dir(tmp_path, data_config, make_dir):
  data_config.data_dir = str(tmp_path / "idx")
  if make_dir:
    os.makedirs(data_config.data_dir)
  with pytest.raises(UsageError, match=data_config.data_dir):
    DATASETS.get("idx")(data_config)


def test_idx_needs_data_dir(data_config):
  with pytest.raises(UsageError, match="data_dir"):
    DATASETS.get("idx")(data_config)


def test_folder_with_train_and_test(cifar_mini_dir, data_config):
  data_config.data_dir = cifar_mini_dir
  source = DATASETS.get("folder")(data_config)
  assert len(source.train) == 1000 and len(source.test) == 200
  assert source.train.images is None and len(source.train.paths) == 1000
  assert len(source.test.paths) == 200
  assert source.class_names == sorted(source.class_names) and len(source.class_names) == 10
  assert "airplane" in source.class_names and "truck" in source.class_names
  assert tuple(source.image_shape) == (32, 32, 3)
  np.testing.assert_array_equal(np.bincount(source.train.labels), [100] * 10)
  np.testing.assert_array_equal(np.bincount(source.test.labels), [20] * 10)
  for path, label in zip(source.train.paths[::97], source.train.labels[::97]):
    assert os.path.basename(os.path.dirname(path)) == source.class_names[label]


def test_folder_image_size_and_channels_come_from_config(cifar_mini_dir, data_config):
  data_config.data_dir = cifar_mini_dir
  data_config.image_size = 24
  data_config.channels = 1
  assert tuple(DATASETS.get("folder")(data_config).image_shape) == (24, 24, 1)


def test_folder_without_splits_has_no_test(tmp_path, cifar_mini_dir, data_config):
  data_config.data_dir = copy_classes(cifar_mini_dir, tmp_path, ["cat", "dog", "ship"])
  source = DATASETS.get("folder")(data_config)
  assert source.test is None
  assert source.class_names == ["cat", "dog", "ship"]
  assert len(source.train) == 9
  np.testing.assert_array_equal(source.train.labels, [0, 0, 0, 1, 1, 1, 2, 2, 2])
  assert tuple(source.image_shape) == (32, 32, 3)


def test_folder_ignores_non_images(tmp_path, cifar_mini_dir, data_config):
  data_config.data_dir = copy_classes(cifar_mini_dir, tmp_path, ["cat", "dog"], per_class=2)
  (tmp_path / "cat" / "notes.txt").write_text("not an image")
  assert len(DATASETS.get("folder")(data_config).train) == 4


def test_folder_test_split_with_other_classes(tmp_path, cifar_mini_dir, data_config):
  copy_classes(cifar_mini_dir, tmp_path / "train", ["cat", "dog"])
  copy_classes(cifar_mini_dir, tmp_path / "test", ["cat", "ship"])
  data_config.data_dir = str(tmp_path)
  with pytest.raises(UsageError, match="class folders"):
    DATASETS.get("folder")(data_config)


def test_folder_empty(tmp_path, data_config):
  data_config.data_dir = str(tmp_path)
  with pytest.raises(UsageError, match="no images"):
    DATASETS.get("folder")(data_config)


def test_folder_class_folders_without_images(tmp_path, data_config):
  for name in ("cat", "dog"):
    (tmp_path / name).mkdir()
  data_config.data_dir = str(tmp_path)
  with pytest.raises(UsageError, match="no images"):
    DATASETS.get("folder")(data_config)


def test_folder_one_class(tmp_path, cifar_mini_dir, data_config):
  data_config.data_dir = copy_classes(cifar_mini_dir, tmp_path, ["cat"])
  with pytest.raises(UsageError, match="2 or more"):
    DATASETS.get("folder")(data_config)


def test_folder_missing_dir(tmp_path, data_config):
  data_config.data_dir = str(tmp_path / "nowhere")
  with pytest.raises(UsageError, match="does not exist"):
    DATASETS.get("folder")(data_config)


def test_folder_needs_data_dir(data_config):
  with pytest.raises(UsageError, match="data_dir"):
    DATASETS.get("folder")(data_config)
