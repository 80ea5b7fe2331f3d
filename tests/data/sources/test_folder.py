"""app/data/sources/folder.py: class folders of image files, and the inputs it refuses."""

import os
import shutil

import numpy as np
import pytest

from app.core.errors import UsageError
from app.data.sources import DATASETS


def copy_classes(cifar_mini_dir, root, classes, per_class=3):
  """A plain class-folder tree (no train/test) of a few real mini-set JPEGs per class."""
  for name in classes:
    os.makedirs(root / name)
    for filename in sorted(os.listdir(os.path.join(cifar_mini_dir, "train", name)))[:per_class]:
      shutil.copy(os.path.join(cifar_mini_dir, "train", name, filename), root / name / filename)
  return str(root)


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
