"""Data sources: where examples come from. Each returns a `Source` of in-memory arrays or files.

A source only lists examples (and for small data sets, loads them); decoding, caching, shuffling,
batching and augmentation are the pipeline's job (app/data/pipeline.py).
"""

import dataclasses
import os
from typing import Optional

import numpy as np

from app.data.idx import read_idx
from app.errors import UsageError
from app.registry import Registry

DATASETS = Registry("dataset")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass
class Examples:
  """One split: labels and one of decoded `images` (uint8, N x H x W x C), image file `paths`,
  or positions `records` in the TFRecord `shards` (read in order, streamed, never all in memory)."""
  labels: np.ndarray  # int32 (N,)
  images: Optional[np.ndarray] = None
  paths: Optional[np.ndarray] = None  # str (N,)
  records: Optional[np.ndarray] = None  # int64 (N,): positions in the shards' record stream
  shards: tuple = ()

  def __len__(self):
    return len(self.labels)

  def subset(self, indices):
    pick = lambda a: None if a is None else a[indices]
    return Examples(labels=self.labels[indices], images=pick(self.images), paths=pick(self.paths),
                    records=pick(self.records), shards=self.shards)


@dataclasses.dataclass
class Source:
  train: Examples
  test: Optional[Examples]  # None when the data has no test split
  class_names: list
  image_shape: tuple  # (height, width, channels) of what the pipeline yields
  description: str  # where the data came from, for the log and the run report


# === Fashion-MNIST and IDX ===

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
# Debian's dataset-fashion-mnist package, then the keras.datasets download cache.
FASHION_MNIST_DIRS = (
    "/usr/share/datasets/fashion-mnist",
    os.path.expanduser("~/.keras/datasets/fashion-mnist"),
)
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx(data_dir, stem):
  for name in (stem + ".gz", stem):
    path = os.path.join(data_dir, name)
    if os.path.isfile(path):
      return path
  return None


def _has_idx(data_dir):
  return all(_find_idx(data_dir, stem) for stems in _IDX_FILES.values() for stem in stems)


def _read_idx_split(data_dir, split):
  image_stem, label_stem = _IDX_FILES[split]
  images = read_idx(_find_idx(data_dir, image_stem))
  labels = read_idx(_find_idx(data_dir, label_stem)).astype(np.int32)
  if images.ndim == 3:
    images = images[..., None]  # (N, H, W) -> (N, H, W, 1)
  if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(labels):
    raise UsageError(
        f"IDX files in {data_dir} ({split}) hold {images.shape} {images.dtype} images and "
        f"{len(labels)} labels; expected uint8 images and one label per image")
  return Examples(labels=labels, images=images)


def _idx_source(data_dir, class_names, description):
  train, test = _read_idx_split(data_dir, "train"), _read_idx_split(data_dir, "test")
  if class_names is None:
    class_names = [str(i) for i in range(int(max(train.labels.max(), test.labels.max())) + 1)]
  return Source(train, test, class_names, train.images.shape[1:], description)


def _missing_dir(data_dir):
  if not os.path.isdir(data_dir):
    raise UsageError(f"data dir {data_dir} does not exist; pass --data_dir=PATH to your data")


@DATASETS.register("idx")
def load_idx(data):
  """IDX files (train-images-idx3-ubyte[.gz], ... t10k-labels-idx1-ubyte[.gz]) in data_dir."""
  if not data.data_dir:
    raise UsageError("dataset 'idx' needs --data_dir=DIR holding the four IDX files")
  _missing_dir(data.data_dir)
  if not _has_idx(data.data_dir):
    raise UsageError(
        f"{data.data_dir} lacks the IDX files train-images-idx3-ubyte[.gz], "
        "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]")
  return _idx_source(data.data_dir, None, f"IDX files in {data.data_dir}")


@DATASETS.register("fashion_mnist")
def load_fashion_mnist(data):
  """Zalando's Fashion-MNIST: 60,000 train + 10,000 test 28x28 grayscale images, 10 classes.

  Read from --data_dir, else Debian's package (apt-get install dataset-fashion-mnist), else the
  keras.datasets cache; with --config.data.download=True a missing copy is downloaded once.
  """
  candidates = (data.data_dir,) if data.data_dir else FASHION_MNIST_DIRS
  if data.data_dir:
    _missing_dir(data.data_dir)
  for data_dir in candidates:
    if _has_idx(data_dir):
      return _idx_source(data_dir, FASHION_MNIST_CLASSES, f"Fashion-MNIST IDX files in {data_dir}")
  if data.download and not data.data_dir:
    import keras  # pylint: disable=g-import-not-at-top
    keras.datasets.fashion_mnist.load_data()  # downloads into ~/.keras/datasets/fashion-mnist
    return _idx_source(FASHION_MNIST_DIRS[1], FASHION_MNIST_CLASSES, "Fashion-MNIST (downloaded)")
  raise UsageError(
      f"Fashion-MNIST IDX files not found in {', '.join(candidates)}; run "
      "'apt-get install dataset-fashion-mnist', pass --data_dir=DIR holding the four IDX files, "
      "or allow a download with --config.data.download=True")


# === Image folders ===


def _list_class_folder(root):
  """Class subfolders of root -> (class names, paths, labels); files with image extensions only."""
  class_names = sorted(
      d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
  paths, labels = [], []
  for label, name in enumerate(class_names):
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, name)):
      dirnames.sort()
      for filename in sorted(filenames):
        if filename.lower().endswith(IMAGE_EXTENSIONS):
          paths.append(os.path.join(dirpath, filename))
          labels.append(label)
  return class_names, paths, labels


def _folder_examples(root, class_names):
  found, paths, labels = _list_class_folder(root)
  if found != class_names:
    raise UsageError(
        f"class folders of {root} ({', '.join(found)}) differ from the training classes "
        f"({', '.join(class_names)}); give both splits the same class subfolders")
  return Examples(labels=np.asarray(labels, np.int32), paths=np.asarray(paths))


def _image_shape_of(path, data):
  """The shape images are resized to: --config.data.image_size, else the first image's size."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  channels = data.channels or 3
  if data.image_size:
    return (data.image_size, data.image_size, channels)
  height, width = tf.io.decode_image(tf.io.read_file(path), expand_animations=False).shape[:2]
  return (int(height), int(width), channels)


@DATASETS.register("folder")
def load_folder(data):
  """A folder of class subfolders of images; `train/` and `test/` subfolders are used if present."""
  if not data.data_dir:
    raise UsageError("dataset 'folder' needs --data_dir=DIR with one subfolder of images per class")
  _missing_dir(data.data_dir)
  split_dirs = {s: os.path.join(data.data_dir, s) for s in ("train", "test")}
  has_splits = os.path.isdir(split_dirs["train"])
  train_root = split_dirs["train"] if has_splits else data.data_dir
  class_names, paths, labels = _list_class_folder(train_root)
  if not paths:
    raise UsageError(
        f"no images ({', '.join(IMAGE_EXTENSIONS)}) in class subfolders of {train_root}; "
        "put each class's images in a subfolder named after the class")
  if len(class_names) < 2:
    raise UsageError(f"{train_root} has {len(class_names)} class folder; a classifier needs 2 or more")
  train = Examples(labels=np.asarray(labels, np.int32), paths=np.asarray(paths))
  test = None
  if has_splits and os.path.isdir(split_dirs["test"]):
    test = _folder_examples(split_dirs["test"], class_names)
  shape = _image_shape_of(paths[0], data)
  return Source(train, test, class_names, shape, f"image folder {data.data_dir}")


# === TFRecord shards (tools/folder_to_tfrecord.py writes them) ===


@DATASETS.register("tfrecord")
def load_tfrecord(data):
  """TFRecord shards plus manifest.json, as written by tools/folder_to_tfrecord.py."""
  from app.data import tfrecord  # pylint: disable=g-import-not-at-top
  if not data.data_dir:
    raise UsageError("dataset 'tfrecord' needs --data_dir=DIR holding manifest.json and the shards "
                     "(python tools/folder_to_tfrecord.py writes them)")
  _missing_dir(data.data_dir)
  manifest = tfrecord.read_manifest(data.data_dir)
  splits = {}
  for split, info in manifest["splits"].items():
    labels = np.asarray(info["labels"], np.int32)
    splits[split] = Examples(labels=labels, records=np.arange(len(labels), dtype=np.int64),
                             shards=tuple(os.path.join(data.data_dir, s) for s in info["shards"]))
  if "train" not in splits:
    raise UsageError(f"{data.data_dir}/manifest.json has no train split; convert a folder again")
  height, width = manifest["image_size"] if not data.image_size else (data.image_size,) * 2
  shape = (height, width, data.channels or manifest["channels"])
  return Source(splits["train"], splits.get("test"), manifest["class_names"], shape,
                f"TFRecord shards in {data.data_dir}")
