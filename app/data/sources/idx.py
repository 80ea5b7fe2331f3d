"""The IDX file format (LeCun's MNIST format, also used by Fashion-MNIST), gzip or plain, and the
sources that read it: "idx" (any four IDX files) and "fashion_mnist"."""

import gzip
import os
import struct
import zlib

import numpy as np

from app.core.errors import UsageError
from app.data import images as images_lib
from app.data.sources import DATASETS, Examples, Source, require_dir

# IDX type codes -> numpy dtypes (big-endian on disk).
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
  """Returns the array stored in an IDX file (`.gz` is decompressed)."""
  opener = gzip.open if str(path).endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise UsageError(f"cannot read IDX file {path}: {e}; replace it with an intact copy") from None
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
    raise UsageError(f"{path} is not an IDX file (bad magic number); pass the original IDX files")
  dtype, ndim = np.dtype(_DTYPES[data[2]]), data[3]
  if len(data) < 4 + 4 * ndim:
    raise UsageError(f"{path} is truncated inside its header; replace it with an intact copy")
  shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
  body = data[4 + 4 * ndim:]
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(body) != expected:
    raise UsageError(
        f"{path} is truncated or padded ({len(body)} bytes of data, header says {expected}); "
        "replace it with an intact copy")
  return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


# === The "idx" and "fashion_mnist" sources ===

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


def _idx_source(data_dir, class_names, description, data):
  """The two splits, resized to data.image_size and converted to data.channels (by data.resize)
  when those are set, as every other source is."""
  train, test = _read_idx_split(data_dir, "train"), _read_idx_split(data_dir, "test")
  if class_names is None:
    class_names = [str(i) for i in range(int(max(train.labels.max(), test.labels.max())) + 1)]
  height, width, channels = train.images.shape[1:]
  shape = (data.image_size or height, data.image_size or width, data.channels or channels)
  for split in (train, test):
    split.images = images_lib.fit_arrays(split.images, shape, data.resize)
  return Source(train, test, class_names, shape, description)


@DATASETS.register("idx")
def load_idx(data):
  """IDX files (train-images-idx3-ubyte[.gz], ... t10k-labels-idx1-ubyte[.gz]) in data_dir."""
  if not data.data_dir:
    raise UsageError("dataset 'idx' needs --data_dir=DIR holding the four IDX files")
  require_dir(data.data_dir)
  if not _has_idx(data.data_dir):
    raise UsageError(
        f"{data.data_dir} lacks the IDX files train-images-idx3-ubyte[.gz], "
        "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]")
  return _idx_source(data.data_dir, None, f"IDX files in {data.data_dir}", data)


@DATASETS.register("fashion_mnist")
def load_fashion_mnist(data):
  """Zalando's Fashion-MNIST: 60,000 train + 10,000 test 28x28 grayscale images, 10 classes.

  Read from --data_dir, else Debian's package (apt-get install dataset-fashion-mnist), else the
  keras.datasets cache; with --config.data.download=True a missing copy is downloaded once.
  """
  candidates = (data.data_dir,) if data.data_dir else FASHION_MNIST_DIRS
  if data.data_dir:
    require_dir(data.data_dir)
  for data_dir in candidates:
    if _has_idx(data_dir):
      return _idx_source(data_dir, FASHION_MNIST_CLASSES, f"Fashion-MNIST IDX files in {data_dir}",
                         data)
  if data.download and not data.data_dir:
    import keras  # pylint: disable=g-import-not-at-top
    keras.datasets.fashion_mnist.load_data()  # downloads into ~/.keras/datasets/fashion-mnist
    return _idx_source(FASHION_MNIST_DIRS[1], FASHION_MNIST_CLASSES, "Fashion-MNIST (downloaded)",
                       data)
  raise UsageError(
      f"Fashion-MNIST IDX files not found in {', '.join(candidates)}; run "
      "'apt-get install dataset-fashion-mnist', pass --data_dir=DIR holding the four IDX files, "
      "or allow a download with --config.data.download=True")
