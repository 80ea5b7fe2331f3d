"""The "folder" source: a folder of class subfolders of image files (JPEG, PNG, BMP, GIF)."""

import os

import numpy as np
from absl import logging

from app.core.errors import UsageError
from app.data import images as images_lib
from app.data.sources import DATASETS, IMAGE_EXTENSIONS, Examples, Source, require_dir

_SIZE_SAMPLE = 256  # image headers read, spread over the training files, to choose the size
# A validation folder beside train/: the PyTorch tutorial's val/, TFDS's split name, Roboflow's.
VALIDATION_DIRS = ("val", "validation", "valid")


def _utf8(path):
  """`path`, when it is valid UTF-8. TensorFlow reads file names as UTF-8 strings: a name in
  another encoding (Python holds its undecodable bytes as surrogates) failed as a tensor with a
  traceback, so it is refused here."""
  try:
    path.encode("utf-8")
  except UnicodeEncodeError:
    raise UsageError(
        f"the name {os.fsencode(path)!r} is not valid UTF-8, which TensorFlow needs to read it; "
        "rename it (e.g. convmv -f latin1 -t utf-8 -r --notest DIR) or move it out") from None
  return path


def _list_class_folder(root):
  """Class subfolders of root -> (class names, paths, labels); files with image extensions only."""
  class_names = sorted(
      _utf8(d) for d in os.listdir(root)
      if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
  paths, labels = [], []
  for label, name in enumerate(class_names):
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, name)):
      dirnames.sort()
      for filename in sorted(filenames):
        if filename.lower().endswith(IMAGE_EXTENSIONS):
          paths.append(_utf8(os.path.join(dirpath, filename)))
          labels.append(label)
  return class_names, paths, labels


def _folder_examples(root, class_names):
  found, paths, labels = _list_class_folder(root)
  if found != class_names:
    differences = [f"{what}: {', '.join(names)}" for what, names in (
        ("missing", sorted(set(class_names) - set(found))),
        ("not in train", sorted(set(found) - set(class_names)))) if names]
    raise UsageError(
        f"class folders of {root} differ from the training classes ({'; '.join(differences)}); "
        "give both splits the same class subfolders")
  return Examples(labels=np.asarray(labels, np.int32), paths=np.asarray(paths, str))


def _image_shape_of(paths, data, root):
  """The shape images are resized to: --config.data.image_size, else the images' size as stored,
  that of the median one by pixel count among up to _SIZE_SAMPLE headers spread over the files
  (read without decoding: app.data.images.stored_sizes), so neither an undecodable file nor one
  odd-sized image (a 16000 x 16000 photo among small ones) sets it for all."""
  channels = data.channels or 3
  if data.image_size:
    return (data.image_size, data.image_size, channels)
  spread = np.linspace(0, len(paths) - 1, min(len(paths), _SIZE_SAMPLE)).astype(int)
  sample = [paths[i] for i in spread]
  sizes = sorted((size for size in images_lib.stored_sizes(sample) if size),
                 key=lambda size: (size[0] * size[1], size))
  if not sizes:
    raise UsageError(f"none of the {len(sample)} files read in {root} (e.g. {sample[0]}) opens as "
                     "an image; fix or remove them")
  height, width = sizes[len(sizes) // 2]
  return (height, width, channels)


def validation_dir(data_dir):
  """DIR/val/ (or validation/, valid/) when DIR has a train/ folder beside it: the folder's own
  validation split; None otherwise. Two of them are refused: which one validates is the user's
  call."""
  if not data_dir or not os.path.isdir(os.path.join(data_dir, "train")):
    return None
  found = [name for name in VALIDATION_DIRS if os.path.isdir(os.path.join(data_dir, name))]
  if len(found) > 1:
    raise UsageError(f"{data_dir} has {' and '.join(name + '/' for name in found)} beside train/; "
                     "keep one validation folder (merge or rename the others)")
  return os.path.join(data_dir, found[0]) if found else None


def _log_validation(data, val_dir, count, has_test):
  """Says once, as the folder is read, that val/ validates and what data.validation_split does."""
  if has_test:
    use = "is not used"
  elif data.validation_split:
    use = f"holds the test split out of train (there is no {os.path.join(data.data_dir, 'test')})"
  else:
    use = "holds nothing out, and there is no test/ folder"  # the pipeline refuses it
  logging.info("validation: %s (%d images), not data.validation_split of train; "
               "data.validation_split=%g %s", val_dir, count, data.validation_split, use)


@DATASETS.register("folder")
def load_folder(data):
  """A folder of class subfolders of images; `train/`, `val/` (or `validation/`, `valid/`) and
  `test/` subfolders are used as splits if present."""
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
  train = Examples(labels=np.asarray(labels, np.int32), paths=np.asarray(paths, str))
  test = None
  if has_splits and os.path.isdir(split_dirs["test"]):
    test = _folder_examples(split_dirs["test"], class_names)
  val_dir, validation = validation_dir(data.data_dir), None
  if val_dir:
    validation = _folder_examples(val_dir, class_names)
    _log_validation(data, val_dir, len(validation), test is not None)
  shape = _image_shape_of(paths, data, train_root)
  return Source(train, test, class_names, shape, f"image folder {data.data_dir}",
                validation=validation,
                validation_description=f"val folder {val_dir}" if val_dir else "")
