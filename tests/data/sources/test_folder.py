"""app/data/sources/folder.py: class folders of image files, and the inputs it refuses."""

import os
import shutil

import numpy as np
import pytest

from app import config as config_lib
from app.core.errors import UsageError
from app.data import sources
from app.data.sources import DATASETS
from configs import default


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


# === Issue 19 (14): the folder's size, and names TensorFlow cannot read ===


def _pngs(root, sides, classes=("a", "b")):
  """root/<class>/NNN.png, one black RGB PNG of each side in `sides` per class."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for name in classes:
    os.makedirs(root / name, exist_ok=True)
    for i, side in enumerate(sides):
      Image.new("RGB", (side, side)).save(root / name / f"{i:03d}.png")
  return str(root)


def test_the_size_as_stored_is_the_median_images_not_the_first_files(tmp_path, data_config):
  """The first file in sort order set the size for all: an undecodable one was a traceback in
  both on_bad_file modes, a huge one (2000 x 2000 here, 16000 x 16000 in the issue) made every
  image that size."""
  data_config.name, data_config.data_dir = "folder", _pngs(tmp_path, [2000, 16, 16, 16])
  assert tuple(DATASETS.get("folder")(data_config).image_shape) == (16, 16, 3)
  (tmp_path / "a" / "000.png").write_bytes(b"not an image")  # first, and undecodable
  assert tuple(DATASETS.get("folder")(data_config).image_shape) == (16, 16, 3)
  for name in ("a", "b"):
    for path in (tmp_path / name).iterdir():
      path.write_bytes(b"junk")
  with pytest.raises(UsageError, match=r"none of the 8 files read in .* opens as an image"):
    DATASETS.get("folder")(data_config)


def test_a_file_name_that_is_not_utf8_is_refused(tmp_path, data_config):
  """TensorFlow failed on it with a traceback ("Unable to convert element to UTF-8")."""
  data_config.name, data_config.data_dir = "folder", _pngs(tmp_path, [8])
  os.rename(tmp_path / "a" / "000.png", os.path.join(os.fsencode(tmp_path), b"a", b"\xff.png"))
  with pytest.raises(UsageError, match=r"the name b'.*/a/\\xff.png' is not valid UTF-8.*rename"):
    DATASETS.get("folder")(data_config)


# === Issue 18 (6): the layouts people have: train/ + val/ (+ test/) ===


def layout(root, splits, per_class=3, side=8):
  """root/<split>/<class>/NN.png for each split: classes in `splits` ({"train": ("ants", "bees"),
  ...}); small PNGs, each of its own colour, so no two files are alike across the splits."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for s, (split, classes) in enumerate(splits.items()):
    for c, name in enumerate(classes):
      folder = root / split / name
      folder.mkdir(parents=True)
      for i in range(per_class):
        Image.new("RGB", (side, side), (40 * s, 60 * c, 20 * i)).save(folder / f"{i:02d}.png")
  return str(root)


TWO = ("ants", "bees")


def test_train_and_val_folders_give_the_validation_split(tmp_path, data_config):
  """The PyTorch tutorial's layout: val/ validates (it was ignored); no test/, so the pipeline
  holds the test split out of train (test_pipeline.py)."""
  data_config.name, data_config.data_dir = "folder", layout(tmp_path, {"train": TWO, "val": TWO},
                                                            per_class=4)
  source = DATASETS.get("folder")(data_config)
  assert (len(source.train), len(source.validation), source.test) == (8, 8, None)
  assert source.validation_description == f"val folder {tmp_path / 'val'}"
  assert all("/val/" in path for path in source.validation.paths)
  np.testing.assert_array_equal(source.validation.labels, [0] * 4 + [1] * 4)
  assert sources.has_validation_split(data_config)
  # validation_split=0 no longer means "validate on test" with a val/ folder: val/ validates.
  config = default.get_config()
  config.data.update(name="folder", data_dir=str(tmp_path), validation_split=0.0)
  assert not config_lib.validates_on_test(config)


def test_train_validation_and_test_folders_are_the_three_splits(tmp_path, data_config):
  data_config.data_dir = layout(tmp_path, {"train": TWO, "validation": TWO, "test": TWO})
  source = DATASETS.get("folder")(data_config)
  assert (len(source.train), len(source.validation), len(source.test)) == (6, 6, 6)
  assert source.validation_description == f"val folder {tmp_path / 'validation'}"
  assert [os.path.basename(os.path.dirname(os.path.dirname(p))) for p in source.test.paths] == \
      ["test"] * 6


@pytest.mark.parametrize("splits, message", [
    ({"train": TWO, "val": ("ants", "wasps")},
     r"^class folders of .*/val differ from the training classes \(missing: bees; not in train: "
     r"wasps\); give both splits the same class subfolders$"),
    ({"train": TWO, "val": TWO, "valid": TWO},
     r"^.* has val/ and valid/ beside train/; keep one validation folder"),
])
def test_validation_folders_that_do_not_fit_are_refused(tmp_path, data_config, splits, message):
  data_config.data_dir = layout(tmp_path, splits, per_class=1)
  with pytest.raises(UsageError, match=message):
    DATASETS.get("folder")(data_config)
