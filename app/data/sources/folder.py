"""The "folder" source: a folder of class subfolders of image files (JPEG, PNG, BMP, GIF)."""

import os

import numpy as np
import tensorflow as tf

from app.core.errors import UsageError
from app.data import images as images_lib
from app.data.sources import DATASETS, IMAGE_EXTENSIONS, Examples, Source, require_dir


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
  channels = data.channels or 3
  if data.image_size:
    return (data.image_size, data.image_size, channels)
  height, width = images_lib.decode(tf.io.read_file(path)).shape[:2]
  return (int(height), int(width), channels)


@DATASETS.register("folder")
def load_folder(data):
  """A folder of class subfolders of images; `train/` and `test/` subfolders are used if present."""
  if not data.data_dir:
    raise UsageError("dataset 'folder' needs --data_dir=DIR with one subfolder of images per class")
  require_dir(data.data_dir)
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
