"""Data sources: where examples come from. Each returns a `Source` of in-memory arrays or files.

A source only lists examples (and for small data sets, loads them); decoding, caching, shuffling,
batching and augmentation are the pipeline's job (app/data/pipeline.py). One module per kind,
each registering its loader in DATASETS: idx.py (IDX files, Fashion-MNIST), folder.py (class
folders of image files), tfrecord.py (shards of tools/folder_to_tfrecord.py), tfds.py
(TensorFlow Datasets by name).
"""

import dataclasses
import os
from typing import Optional

import numpy as np

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

  def limited(self, count, seed):
    """data.limit: a seeded stratified subset of `count` examples, in their order. Each class
    keeps its share (rounded by largest remainder, ties drawn with `seed`) and, where `count`
    allows, at least one example, taken from the class that keeps most; all of them when
    `count` is 0 or not below their number."""
    if not count or count >= len(self):
      return self
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(self.labels, return_counts=True)
    shares = count * sizes / len(self)
    kept = np.floor(shares).astype(int)
    largest_remainders = np.lexsort((rng.random(len(classes)), kept - shares))
    kept[largest_remainders[:count - kept.sum()]] += 1
    if count >= len(classes):
      for missing in np.flatnonzero(kept == 0):
        kept[np.argmax(kept)] -= 1
        kept[missing] = 1
    picks = [rng.permutation(np.flatnonzero(self.labels == label))[:n]
             for label, n in zip(classes, kept)]
    return self.subset(np.sort(np.concatenate(picks)))


@dataclasses.dataclass
class Source:
  train: Examples
  test: Optional[Examples]  # None when the data has no test split
  class_names: list
  image_shape: tuple  # (height, width, channels) of what the pipeline yields
  description: str  # where the data came from, for the log and the run report
  # The data's own validation split (a folder's val/), used instead of holding
  # data.validation_split out of train; None when it has none.
  validation: Optional[Examples] = None
  validation_description: str = ""  # where `validation` came from: "val folder DIR/val"


def require_dir(data_dir):
  """A UsageError unless `data_dir` (a --data_dir) is a folder."""
  if not os.path.isdir(data_dir):
    raise UsageError(f"data dir {data_dir} does not exist; pass --data_dir=PATH to your data")


# The loaders register themselves in DATASETS on import, so they come after the names they use.
# pylint: disable=g-import-not-at-top,wrong-import-position
from app.data.sources import folder, idx, tfds, tfrecord  # noqa: E402
from app.data.sources.idx import FASHION_MNIST_CLASSES  # noqa: E402
# pylint: enable=g-import-not-at-top,wrong-import-position

__all__ = ["DATASETS", "IMAGE_EXTENSIONS", "Examples", "Source", "require_dir", "dataset_kind",
           "has_validation_split", "load", "FASHION_MNIST_CLASSES", "folder", "idx", "tfds",
           "tfrecord"]


def dataset_kind(name):
  """The registry name of a data.name: "tfds:cifar10" -> "tfds"."""
  return "tfds" if name.startswith(tfds.TFDS_PREFIX) else name


def has_validation_split(data):
  """Whether the source of data.name brings a validation split of its own (a folder's val/), told
  without reading it: app.config needs it before any data is loaded (validates_on_test)."""
  return dataset_kind(data.name) == "folder" and folder.validation_dir(data.data_dir) is not None


def load(data):
  """The Source that data.name names, read as data (a data config) says."""
  return DATASETS.get(dataset_kind(data.name))(data)
