"""The combination matrix's shared pieces: tiny real data in every source format, and one
in-process run of the whole path (resolve -> data -> model -> fit -> evaluate -> export) per case.

Every case is a real run of app.train.train_and_evaluate on a few dozen images for one or two
epochs, so a combination that breaks anywhere on the path (config check, pipeline, model, fit,
export, parity) fails its case. Where the full product of the options is too large, the cases come
from allpairspy (every pair of values appears in some case); allpairspy's construction is
deterministic, so the case list is the same on every run and its ids name the values.
"""

import gzip
import os
import struct

import numpy as np
import pytest
from allpairspy import AllPairs

from tests.conftest import FASHION_MNIST_DIR

CLASSES = ("circle", "square", "stripes")
# Non-square sizes (height, width): the resize policies differ only on these.
SIZES = ((20, 30), (36, 18), (24, 24), (18, 40), (30, 22))


def pairwise(**values):
  """Pairwise cases of the keyword lists: [dict(name=value, ...), ...], every pair of values of
  any two names in some case. Deterministic (allpairspy has no randomness), so the ids are stable."""
  names = list(values)
  return [dict(zip(names, case)) for case in AllPairs([list(values[n]) for n in names])]


def case_id(case):
  return "-".join(f"{value}" for value in case.values()).replace(" ", "")


def _image(kind, height, width, rng):
  """A uint8 RGB image whose class shows in its shape and colour."""
  rows, columns = np.mgrid[0:height, 0:width]
  image = rng.integers(0, 60, (height, width, 3)).astype(np.float64)
  if kind == "circle":
    mask = (rows - height / 2) ** 2 + (columns - width / 2) ** 2 < (min(height, width) / 3) ** 2
    image[mask] += (180, 40, 40)
  elif kind == "square":
    image[height // 4:3 * height // 4, width // 4:3 * width // 4] += (40, 180, 40)
  else:
    image[(columns // 3) % 2 == 0] += (40, 40, 180)
  return np.clip(image, 0, 255).astype(np.uint8)


def write_photo_folder(root, train_per_class=8, test_per_class=4, seed=0):
  """train/<class>/ and test/<class>/ of non-square JPEG, PNG, BMP and GIF files of several sizes."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  formats = ("png", "jpg", "bmp", "gif")
  for split, count in (("train", train_per_class), ("test", test_per_class)):
    for kind in CLASSES:
      os.makedirs(os.path.join(root, split, kind))
      for i in range(count):
        height, width = SIZES[i % len(SIZES)]
        extension = formats[i % len(formats)]
        picture = Image.fromarray(_image(kind, height, width, rng))
        picture.save(os.path.join(root, split, kind, f"{i:03d}.{extension}"))
  return str(root)


def _write_idx(path, array):
  header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                       *array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def write_idx_dir(root, source):
  """The four IDX files of a grayscale in-memory source (28x28 Fashion-MNIST images)."""
  for split, (images_name, labels_name) in (("train", ("train-images-idx3-ubyte",
                                                       "train-labels-idx1-ubyte")),
                                            ("test", ("t10k-images-idx3-ubyte",
                                                      "t10k-labels-idx1-ubyte"))):
    examples = getattr(source, split)
    _write_idx(os.path.join(root, images_name + ".gz"), examples.images[..., 0])
    _write_idx(os.path.join(root, labels_name + ".gz"), examples.labels)
  return str(root)


@pytest.fixture(scope="session")
def matrix_data(tmp_path_factory):
  """{source name: (data.name, data_dir)} for every source kind, a few dozen images each."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from app.data import sources  # pylint: disable=g-import-not-at-top
  from app.data.sources import tfrecord  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("matrix_data")
  folder = write_photo_folder(root / "photos")
  data = default.get_config().data
  data.name, data.data_dir = "folder", folder
  tfrecord.write_source(sources.load(data), str(root / "records"), 2)
  data.name, data.data_dir = "fashion_mnist", FASHION_MNIST_DIR
  fashion = sources.load(data)
  small = type(fashion)(fashion.train.subset(np.arange(48)), fashion.test.subset(np.arange(24)),
                        fashion.class_names, fashion.image_shape, fashion.description)
  os.makedirs(root / "idx")
  write_idx_dir(root / "idx", small)
  split = lambda ex: tf.data.Dataset.from_tensor_slices({"image": ex.images, "label": ex.labels})
  tfds.dataset_builders.store_as_tfds_dataset(
      name="matrix_fashion", version="1.0.0", data_dir=str(root / "tfds"), disable_shuffling=True,
      features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(28, 28, 1)),
          "label": tfds.features.ClassLabel(names=sources.FASHION_MNIST_CLASSES)}),
      split_datasets={"train": split(small.train), "test": split(small.test)})
  return {"folder": ("folder", folder), "tfrecord": ("tfrecord", str(root / "records")),
          "idx": ("idx", str(root / "idx")), "tfds": ("tfds:matrix_fashion", str(root / "tfds")),
          "fashion_mnist": ("fashion_mnist", FASHION_MNIST_DIR)}


@pytest.fixture
def restore_precision():
  """Runs set the global Keras dtype policy; the next test in this process starts at float32."""
  yield
  import keras  # pylint: disable=g-import-not-at-top
  keras.mixed_precision.set_global_policy("float32")


def tiny_config(tmp_path, source=("fashion_mnist", FASHION_MNIST_DIR), recipe=None, **keys):
  """A run config on a handful of images: `recipe` (a configs/ module, default: the schema) with
  a small simple_cnn, 1 epoch of batch 8, data.limit 24, output under tmp_path, then `keys`
  ("train.epochs": 2, ...) on top."""
  from configs import default  # pylint: disable=g-import-not-at-top
  config = (recipe or default).get_config()
  config.data.name, config.data.data_dir = source
  config.output_dir, config.export.dir = str(tmp_path / "run"), str(tmp_path / "exports")
  config.export.parity_images = 8
  if recipe is None:
    config.model.name, config.model.width = "simple_cnn", 4
    config.data.limit, config.data.image_size = 24, 16
    config.train.epochs, config.train.batch_size = 1, 8
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  for key, value in keys.items():
    config_lib.set_key(config, key, value)
  return config


def run(config):
  """resolve + train_and_evaluate in this process -> metrics (metrics.json's dict)."""
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.train.train_and_evaluate import train_and_evaluate  # pylint: disable=g-import-not-at-top
  return train_and_evaluate(config_lib.resolve(config))
