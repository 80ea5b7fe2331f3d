"""What the data-aware recipe chooses from (app/train/data_aware.py): how many images a run
trains on, how many classes, and how large the images are as stored, read from the source's
listing and a sample of file headers (no pixels decoded: app.data.images.stored_sizes), so a
survey of a folder of thousands of photos takes a fraction of a second."""

import dataclasses
import os
import re

import numpy as np

from app.data import images as images_lib
from app.data import sources

SIZE_SAMPLE = 256  # headers read, spread over the training files


@dataclasses.dataclass
class Survey:
  name: str  # the data's own name (a folder's, a TFDS set's), for the run and the export
  num_train: int  # images the run trains on, after its validation and test parts are held out
  num_classes: int
  shorter_sides: list  # a spread sample of the training images' shorter sides as stored
  median_shape: tuple  # (height, width) of the median image by pixel count
  channels: int  # as the run reads them
  description: str

  @property
  def median_shorter_side(self):
    return int(np.median(self.shorter_sides))

  def as_dict(self):
    shorter = np.asarray(self.shorter_sides)
    return {"name": self.name, "num_train": self.num_train, "num_classes": self.num_classes,
            "median_shape": list(self.median_shape), "channels": self.channels,
            "shorter_side_percentiles": {str(p): int(np.percentile(shorter, p))
                                         for p in (5, 25, 50, 75, 95)},
            "sampled": len(self.shorter_sides), "description": self.description}


def data_name(data):
  """The data's own name, fit to name folders: a folder's (or a TFRecord/IDX folder's) base
  name, a TFDS set's name; "" when there is none to take (Fashion-MNIST's default location)."""
  if data.name.startswith(sources.tfds.TFDS_PREFIX):
    raw = data.name[len(sources.tfds.TFDS_PREFIX):].split("/")[0].split(":")[0]
  elif data.data_dir:
    raw = os.path.basename(os.path.normpath(os.path.expanduser(data.data_dir)))
  else:
    raw = data.name
  name = re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._-")
  return name or data.name


def _shapes(source):
  """(height, width) of a spread sample of the training images as stored."""
  train = source.train
  if train.images is not None:
    return [train.images.shape[1:3]]
  if train.paths is not None and len(train.paths):
    spread = np.linspace(0, len(train.paths) - 1, min(len(train.paths), SIZE_SAMPLE)).astype(int)
    found = [size for size in images_lib.stored_sizes([train.paths[i] for i in spread]) if size]
    if found:
      return found
  return [tuple(source.image_shape[:2])]


def survey(data):
  """The Survey of the source `data` (a data config) names, held-out parts counted as the
  pipeline holds them out (app.data.pipeline: a test part when the source has none, then the
  validation part, each data.validation_split of train)."""
  source = sources.load(data)
  count = len(source.train.limited(data.limit, 0))
  held_out = data.validation_split or 0.0
  if source.validation is None:
    count *= 1 - held_out
  if source.test is None:
    count *= 1 - held_out
  shapes = _shapes(source)
  by_pixels = sorted(shapes, key=lambda shape: (shape[0] * shape[1], tuple(shape)))
  return Survey(name=data_name(data), num_train=max(int(count), 1),
                num_classes=len(source.class_names),
                shorter_sides=[int(min(shape)) for shape in shapes],
                median_shape=tuple(int(v) for v in by_pixels[len(by_pixels) // 2]),
                channels=int(source.image_shape[-1]), description=source.description)
