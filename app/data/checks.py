"""The data check before training: bad files, empty or single classes, train/test leakage.

Runs on file-based sources (image folders). Every image is read once (content hash) and decoded
once in a parallel tf.data pass; what cannot be decoded is bad. With on_bad_file="fail" any bad
file stops the run with one line naming them; with "skip" they are dropped and listed in the
run directory (data_report.json). Files without an image extension in class folders are never
read as images and are listed too. Exact duplicates between train and test (same bytes) are
reported, not removed: they inflate test accuracy, and whether that matters is the user's call.
"""

import collections
import hashlib
import os

import numpy as np
import tensorflow as tf
from absl import logging

from app.core.errors import UsageError
from app.data import images as images_lib
from app.data.sources import IMAGE_EXTENSIONS

_SHOWN = 5  # bad files named in a one-line error


def _decodable(paths, channels):
  """Boolean mask: which files images_lib.decode can decode (one parallel pass)."""
  paths_tensor = tf.constant(paths)

  def decode(index):
    image = images_lib.decode(tf.io.read_file(paths_tensor[index]), channels)
    return index, tf.shape(image)[0]

  ds = tf.data.Dataset.range(len(paths)).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.ignore_errors()
  ok = np.zeros(len(paths), bool)
  for index, height in ds.batch(1024).as_numpy_iterator():
    ok[index[height > 0]] = True
  return ok


def _digest(path):
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def _non_image_files(root, class_names):
  found = []
  for name in class_names:
    for dirpath, _, filenames in os.walk(os.path.join(root, name)):
      found += [os.path.join(dirpath, f) for f in sorted(filenames)
                if not f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")]
  return found


def check_source(source, data, seed):
  """Checks a file-based Source; returns (source without skipped files, report dict). With
  data.limit, the source and the report keep the run's images only: the subset of `seed` (the
  run's) that pipeline.build takes."""
  report = {"checked": False}
  if source.train.paths is None:
    return source, report
  splits = {split: examples for split, examples in (
      ("train", source.train), ("validation", source.validation), ("test", source.test))
             if examples is not None}
  bad, kept = [], {}
  for split, examples in splits.items():
    ok = _decodable(examples.paths, source.image_shape[-1])
    bad += [str(p) for p in examples.paths[~ok]]
    kept[split] = examples.subset(np.flatnonzero(ok))
  if bad and data.on_bad_file == "fail":
    shown = ", ".join(bad[:_SHOWN]) + (f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else "")
    raise UsageError(f"{len(bad)} file(s) cannot be decoded as images: {shown}; fix or remove "
                     "them, or pass --config.data.on_bad_file=skip to train without them")
  if "test" in kept and not len(kept["test"]):  # evaluation would fail after training
    raise UsageError(
        f"the test split holds no decodable images ({len(splits['test'])} image file(s) in "
        f"{os.path.join(data.data_dir, 'test')}); add images to its class folders, or remove the "
        "test folder and hold part of train out with --config.data.validation_split=0.1")
  if "validation" in kept and not len(kept["validation"]):
    raise UsageError(
        f"the validation split holds no decodable images ({len(splits['validation'])} image "
        f"file(s) in {source.validation_description}); add images to its class folders, or remove "
        "it and hold part of train out with --config.data.validation_split=0.1")
  decodable = set(kept["train"].labels.tolist())
  empty = [name for k, name in enumerate(source.class_names) if k not in decodable]
  if empty:
    raise UsageError(f"class folder(s) {', '.join(empty)} hold no decodable training images; "
                     "add images or remove the folder(s)")
  kept = {split: examples.limited(data.limit, seed) for split, examples in kept.items()}
  counts = collections.Counter(int(label) for label in kept["train"].labels)
  duplicates = {"test": [], "validation": []}
  if len(kept) > 1:
    train_hashes = {}
    for path in kept["train"].paths:
      train_hashes.setdefault(_digest(path), str(path))
    for split in kept.keys() & duplicates.keys():
      duplicates[split] = [(train_hashes[h], str(p)) for p in kept[split].paths
                           if (h := _digest(p)) in train_hashes]
  root = os.path.join(data.data_dir, "train") if os.path.isdir(
      os.path.join(data.data_dir, "train")) else data.data_dir
  report = {
      "checked": True,
      "images": {split: len(e) for split, e in kept.items()},
      "train_images_per_class": {name: counts[k] for k, name in enumerate(source.class_names)},
      "skipped_undecodable_files": bad,
      "ignored_non_image_files": _non_image_files(root, source.class_names),
      "train_test_duplicates": duplicates["test"],
      # Those of the data's own validation split (a folder's val/): they inflate what selects.
      **({"train_validation_duplicates": duplicates["validation"]} if "validation" in kept else {}),
  }
  logging.info("data check: %s images per split; %d undecodable file(s) skipped, %d non-image "
               "file(s) ignored, %d exact train/test and %d train/validation duplicate(s)",
               report["images"], len(bad), len(report["ignored_non_image_files"]),
               len(duplicates["test"]), len(duplicates["validation"]))
  for name, count in report["train_images_per_class"].items():
    logging.info("  class %-20s %6d training images", name, count)
  if duplicates["test"]:
    logging.warning("%d test image(s) are byte-identical to training images (first: %s = %s); "
                    "test accuracy is inflated", len(duplicates["test"]), *duplicates["test"][0])
  if duplicates["validation"]:
    logging.warning("%d validation image(s) are byte-identical to training images (first: %s = "
                    "%s); validation accuracy, and what selects on it, is inflated",
                    len(duplicates["validation"]), *duplicates["validation"][0])
  source.train, source.test = kept["train"], kept.get("test")
  source.validation = kept.get("validation")
  return source, report
