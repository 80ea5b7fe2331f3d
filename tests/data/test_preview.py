"""app/data/preview.py: the augmentation preview shows what the model sees."""

import numpy as np
import pytest
import tensorflow as tf

from app import config as config_lib
from app.data import preview
from configs import default

CLASSES = ("ant", "bee", "cat")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
  """train/<class>/ and test/<class>/: 8 PNGs per class, each 10 high and 20 wide, one flat
  colour (no channel 0), so a letterbox shows as rows of zeros."""
  root = tmp_path_factory.mktemp("photos")
  rng = np.random.default_rng(0)
  for split in ("train", "test"):
    for name in CLASSES:
      (root / split / name).mkdir(parents=True)
      for index in range(8):
        image = np.full((10, 20, 3), rng.integers(40, 256, 3), np.uint8)
        (root / split / name / f"{index}.png").write_bytes(tf.io.encode_png(image).numpy())
  return str(root)


def resolved(photo_folder, **data):
  config = default.get_config()
  config.data.name, config.data.data_dir, config.data.image_size = "folder", photo_folder, 8
  for key, value in data.items():
    config.data[key] = value
  return config_lib.resolve(config)


def test_preview_resizes_by_data_resize(photo_folder):
  """data.resize=pad letterboxes the 10x20 photos into 8x8: 4 rows of picture between rows of
  zeros, as the training pipeline gives them (issue 20: the preview stretched them)."""
  images, _ = preview.augmented_sample(resolved(photo_folder, resize="pad"), count=6)
  assert images.shape == (6, 8, 8, 3) and images.dtype == np.uint8
  assert (images[:, [0, 1, 6, 7]] == 0).all() and (images[:, 2:6] > 0).all()


def test_preview_samples_every_class_seeded(photo_folder):
  """A seeded sample taking the classes in turn (issue 20: the first images of a folder, all of
  its first class)."""
  config = resolved(photo_folder)
  images, titles = preview.augmented_sample(config, count=6)
  assert sorted(titles) == sorted(CLASSES * 2)
  again, _ = preview.augmented_sample(config, count=6)
  np.testing.assert_array_equal(images, again)
  config.seed = 1
  other, _ = preview.augmented_sample(config, count=6)
  assert not np.array_equal(images, other)


def test_preview_titles_show_mixed_labels(photo_folder):
  """mixup blends images of different classes, and the titles say by how much: 'ant 0.62 +
  cat 0.38', the two largest label weights."""
  _, titles = preview.augmented_sample(resolved(photo_folder, augment="mixup(alpha=1.0)"), count=8)
  mixed = [t for t in titles if " + " in t]
  assert mixed, titles
  for title in mixed:
    (first, weight_1), (second, weight_2) = (part.split() for part in title.split(" + "))
    assert {first, second} <= set(CLASSES) and first != second
    assert 1 >= float(weight_1) >= float(weight_2) > 0
