"""TFRecord shards of encoded images: writing (from any file-based Source), reading, and the
"tfrecord" source.

Each record holds the image file's original bytes (no re-encoding, so pixels match the folder
exactly) and its label. manifest.json beside the shards lists the class names, the image size,
and per split the shard files and every record's label in order (which makes counts, class
balance and seeded validation splits available without reading the shards).
"""

import json
import os

import numpy as np
import tensorflow as tf

from app.core.errors import UsageError
from app.data.sources import DATASETS, Examples, Source, require_dir

MANIFEST = "manifest.json"
FORMAT = "convtrain-tfrecord-v1"
FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/label": tf.io.FixedLenFeature([], tf.int64),
}


def read_manifest(directory):
  path = os.path.join(directory, MANIFEST)
  try:
    with open(path) as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise UsageError(f"cannot read {path} ({e}); convert an image folder with "
                     "python tools/folder_to_tfrecord.py --input=DIR --output=DIR") from None
  if manifest.get("format") != FORMAT:
    raise UsageError(f"{path} is not a {FORMAT} manifest; convert the folder again")
  return manifest


def _example(encoded, label):
  return tf.train.Example(features=tf.train.Features(feature={
      "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
      "image/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
  })).SerializeToString()


def write_split(examples, directory, split, num_shards):
  """Writes `examples` (file-based), in order, into `num_shards` contiguous shards;
  returns (shard file names, labels in record order)."""
  num_shards = max(1, min(num_shards, len(examples)))
  bounds = np.linspace(0, len(examples), num_shards + 1).astype(int)
  names = []
  for shard in range(num_shards):
    name = f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord"
    temporary = os.path.join(directory, f".{name}.tmp")
    with tf.io.TFRecordWriter(temporary) as writer:
      for k in range(bounds[shard], bounds[shard + 1]):
        with open(examples.paths[k], "rb") as f:
          writer.write(_example(f.read(), examples.labels[k]))
    os.replace(temporary, os.path.join(directory, name))
    names.append(name)
  return names, [int(label) for label in examples.labels]


def write_source(source, directory, num_shards):
  """Converts a file-based Source (train and test) into shards + manifest.json in `directory`."""
  os.makedirs(directory, exist_ok=True)
  splits = {}
  for split, examples in (("train", source.train), ("test", source.test)):
    if examples is None:
      continue
    shards, labels = write_split(examples, directory, split, num_shards)
    counts = np.bincount(labels, minlength=len(source.class_names))
    splits[split] = {"count": len(labels), "shards": shards, "labels": labels,
                     "per_class": {name: int(c) for name, c in zip(source.class_names, counts)}}
  manifest = {"format": FORMAT, "class_names": list(source.class_names),
              "image_size": list(source.image_shape[:2]), "channels": source.image_shape[2],
              "splits": splits}
  with open(os.path.join(directory, MANIFEST), "w") as f:
    json.dump(manifest, f)
  return manifest


def record_stream(shards):
  """(position, encoded image, label) for every record, in shard order (deterministic)."""
  ds = tf.data.TFRecordDataset(list(shards), num_parallel_reads=None)
  ds = ds.map(lambda r: tf.io.parse_single_example(r, FEATURES), num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.enumerate()
  return ds.map(lambda i, f: (i, f["image/encoded"], tf.cast(f["image/label"], tf.int32)))


@DATASETS.register("tfrecord")
def load_tfrecord(data):
  """TFRecord shards plus manifest.json, as written by tools/folder_to_tfrecord.py."""
  if not data.data_dir:
    raise UsageError("dataset 'tfrecord' needs --data_dir=DIR holding manifest.json and the shards "
                     "(python tools/folder_to_tfrecord.py writes them)")
  require_dir(data.data_dir)
  manifest = read_manifest(data.data_dir)
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
