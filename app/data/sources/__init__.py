"""Data sources: where examples come from. Each returns a `Source` of in-memory arrays or files.

A source only lists examples (and for small data sets, loads them); decoding, caching, shuffling,
batching and augmentation are the pipeline's job (app/data/pipeline.py).
"""

import dataclasses
import os
from typing import Optional

import numpy as np

from app.data.sources.idx import read_idx
from app.core.errors import UsageError
from app.core.registry import Registry

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
  from app.data.sources import tfrecord  # pylint: disable=g-import-not-at-top
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


# === TensorFlow Datasets by name: --dataset=tfds:NAME ===

TFDS_PREFIX = "tfds:"


def _tfds_builder(name, data):
  """The TFDS builder of `name` in data.data_dir (or TFDS's default ~/tensorflow_datasets),
  prepared from its local copy; nothing is downloaded unless data.download."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  where = data.data_dir or "~/tensorflow_datasets (TFDS's default; pass --data_dir=DIR)"
  if data.data_dir:
    _missing_dir(data.data_dir)
  try:
    builder = tfds.builder(name, data_dir=data.data_dir or None)
  except (tfds.core.registered.DatasetNotFoundError, ValueError) as e:
    raise UsageError(f"TFDS has no data set {name!r} in {where} ({str(e).splitlines()[0]}); check "
                     "the name (tfds.list_builders()) and --data_dir") from None
  if builder.is_prepared():
    return builder
  downloads = os.path.join(os.path.expanduser(str(builder.data_dir_root)), "downloads")
  if not (data.download or _all_downloaded(builder, downloads)):
    raise UsageError(
        f"TFDS data set {name!r} is not prepared in {where} and its source files are not all in "
        f"{downloads}; prepare it there once (tfds build {name} --data_dir=DIR), or allow a "
        "download with --config.data.download=True")
  # From the download cache DIR/downloads (files already there are not fetched again).
  try:
    builder.download_and_prepare(download_dir=downloads)
  except Exception as e:  # pylint: disable=broad-except
    raise UsageError(f"could not prepare TFDS data set {name!r} in {where}: "
                     f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
  return builder


def _all_downloaded(builder, downloads):
  """Whether every file the builder would download is in the download cache `downloads`, under
  the name TFDS gives it, so preparing needs no network."""
  from tensorflow_datasets.core.download import resource  # pylint: disable=g-import-not-at-top
  url_infos = builder.url_infos or {}
  return bool(url_infos) and all(
      os.path.exists(os.path.join(downloads, resource.get_dl_fname(url, info.checksum)))
      for url, info in url_infos.items())


def _tfds_keys(builder, name):
  """(image key, label key) of a builder's supervised pair, checked to be an image and a class."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  features = dict(builder.info.features.items())
  keys = builder.info.supervised_keys
  if not keys or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
    keys = (next((k for k, f in features.items() if isinstance(f, tfds.features.Image)), None),
            next((k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None))
  image_key, label_key = keys
  if not (isinstance(features.get(image_key), tfds.features.Image) and
          isinstance(features.get(label_key), tfds.features.ClassLabel)):
    raise UsageError(f"TFDS data set {name!r} has no (image, class label) pair of features; "
                     "only image classification data sets can be trained on")
  return image_key, label_key


def _tfds_examples(builder, split, keys, image_shape, data, name):
  """One split decoded into uint8 arrays of image_shape (converted and resized as folders are)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from app.data.pipeline import fit_image  # pylint: disable=g-import-not-at-top
  count = builder.info.splits[split].num_examples
  size_gb = count * int(np.prod(image_shape)) / 2**30
  if size_gb > max(data.in_memory_max_gb, 1e-9):
    raise UsageError(
        f"TFDS data set {name!r} ({split}: {size_gb:.1f} GB decoded) exceeds "
        f"data.in_memory_max_gb={data.in_memory_max_gb}; raise it, lower --config.data.image_size, "
        "or export it as an image folder")
  image_key, label_key = keys
  ds = builder.as_dataset(split=split, shuffle_files=False, read_config=None)
  ds = ds.map(lambda ex: (fit_image(ex[image_key], image_shape, data.resize),
                          tf.cast(ex[label_key], tf.int32)), num_parallel_calls=tf.data.AUTOTUNE)
  images, labels, position = np.empty((count, *image_shape), np.uint8), np.empty(count, np.int32), 0
  for batch, label in ds.batch(1024).as_numpy_iterator():
    images[position:position + len(batch)], labels[position:position + len(batch)] = batch, label
    position += len(batch)
  return Examples(labels=labels[:position], images=images[:position])


@DATASETS.register("tfds")
def load_tfds(data):
  """A TensorFlow Datasets image classification set by name (--dataset=tfds:cifar10), from a
  prepared copy in --data_dir (or ~/tensorflow_datasets), or prepared from the download cache
  DIR/downloads; images are decoded into memory. Splits: train, and test (else validation)."""
  name = data.name[len(TFDS_PREFIX):]
  if not name:
    raise UsageError("--dataset=tfds:NAME needs a TFDS name, e.g. --dataset=tfds:cifar10")
  builder = _tfds_builder(name, data)
  keys = _tfds_keys(builder, name)
  splits = builder.info.splits
  if "train" not in splits:
    raise UsageError(f"TFDS data set {name!r} has no train split (it has {', '.join(splits)})")
  height, width, channels = builder.info.features[keys[0]].shape
  if data.image_size:
    height = width = data.image_size
  if not (height and width):
    raise UsageError(f"TFDS data set {name!r} has images of varying size; choose one with "
                     "--config.data.image_size=SIDE")
  shape = (height, width, data.channels or channels or 3)
  test_split = next((s for s in ("test", "validation") if s in splits), None)
  train = _tfds_examples(builder, "train", keys, shape, data, name)
  test = test_split and _tfds_examples(builder, test_split, keys, shape, data, name)
  return Source(train, test, list(builder.info.features[keys[1]].names), shape,
                f"TFDS {name} ({builder.info.version}) in {builder.data_dir}")


def dataset_kind(name):
  """The registry name of a data.name: "tfds:cifar10" -> "tfds"."""
  return "tfds" if name.startswith(TFDS_PREFIX) else name


def load(data):
  """The Source that data.name names, read as data (a data config) says."""
  return DATASETS.get(dataset_kind(data.name))(data)
