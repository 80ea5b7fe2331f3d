"""The "tfds" source: a TensorFlow Datasets image classification set by name,
--dataset=tfds:NAME, read from a local copy (nothing is downloaded unless data.download)."""

import os

import numpy as np
import tensorflow as tf

from app.core.errors import UsageError
from app.data import images as images_lib
from app.data.sources import DATASETS, Examples, Source, require_dir

TFDS_PREFIX = "tfds:"


def _tfds_builder(name, data):
  """The TFDS builder of `name` in data.data_dir (or TFDS's default ~/tensorflow_datasets),
  prepared from its local copy; nothing is downloaded unless data.download."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  where = data.data_dir or "~/tensorflow_datasets (TFDS's default; pass --data_dir=DIR)"
  if data.data_dir:
    require_dir(data.data_dir)
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
  count = builder.info.splits[split].num_examples
  size_gb = count * int(np.prod(image_shape)) / 2**30
  if size_gb > max(data.in_memory_max_gb, 1e-9):
    raise UsageError(
        f"TFDS data set {name!r} ({split}: {size_gb:.1f} GB decoded) exceeds "
        f"data.in_memory_max_gb={data.in_memory_max_gb}; raise it, lower --config.data.image_size, "
        "or export it as an image folder")
  image_key, label_key = keys
  ds = builder.as_dataset(split=split, shuffle_files=False, read_config=None)
  ds = ds.map(lambda ex: (images_lib.fit(ex[image_key], image_shape, data.resize),
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
