r"""Input-pipeline throughput alone (no model): ours vs keras.utils.image_dataset_from_directory.

  unzip -q ../shared/datasets/cifar10-jpg.zip -d /tmp
  .venv/bin/python tools/bench_input.py --data_dir=/tmp/cifar10-jpg

Times full passes over the training split, all in one run: our decode into memory (what a run
does once when the data fits in data.in_memory_max_gb), an in-memory epoch without and with
augmentation, the streamed pipeline (decode in tf.data, then cache) for data that does not fit,
and image_dataset_from_directory with its defaults (decodes every epoch); prints a Markdown table
for docs/BENCHMARKS.md.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import cli  # pylint: disable=g-import-not-at-top,wrong-import-position,unused-import

from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_string("data_dir", None, "Image folder with train/<class>/ subfolders.")
flags.DEFINE_integer("batch_size", 256, "Batch size.")
flags.DEFINE_string("augment", "flip|crop(pad=4)", "Augmentation for the augmented row.")


def images_per_second(dataset):
  start, count = time.perf_counter(), 0
  for images, _ in dataset:
    count += int(images.shape[0])
  return count / (time.perf_counter() - start), count


def main(argv):
  del argv
  import keras  # pylint: disable=g-import-not-at-top
  from app.data import pipeline  # pylint: disable=g-import-not-at-top
  from app.data.sources import DATASETS  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  if not FLAGS.data_dir:
    cli.fail("pass --data_dir=FOLDER (e.g. the unzipped cifar10-jpg)")
  data = default.get_config().data
  data.name, data.data_dir = "folder", FLAGS.data_dir
  source = DATASETS.get("folder")(data)
  rows = []
  start = time.perf_counter()
  plain = pipeline.build(source, data, FLAGS.batch_size, seed=0)  # decodes into memory
  rows.append(("ours, decode into memory (once per run, in pipeline.build)",
               plain.num_train / (time.perf_counter() - start), plain.num_train))
  rows.append(("ours, in-memory epoch", *images_per_second(plain.train)))
  data.augment = FLAGS.augment
  augmented = pipeline.build(source, data, FLAGS.batch_size, seed=0)
  rows.append((f"ours, in-memory epoch + {FLAGS.augment}", *images_per_second(augmented.train)))
  data.augment, data.in_memory_max_gb = "", 0.0  # streaming: decode in tf.data, then cache
  streamed = pipeline.build(source, data, FLAGS.batch_size, seed=0)
  rows.append(("ours, streamed (in_memory_max_gb=0): first epoch, decode + cache",
               *images_per_second(streamed.train)))
  rows.append(("ours, streamed: cached epoch", *images_per_second(streamed.train)))
  train_dir = os.path.join(FLAGS.data_dir, "train")
  keras_ds = keras.utils.image_dataset_from_directory(
      train_dir if os.path.isdir(train_dir) else FLAGS.data_dir, image_size=source.image_shape[:2],
      batch_size=FLAGS.batch_size, verbose=False)
  rows.append(("keras.utils.image_dataset_from_directory (defaults)", *images_per_second(keras_ds)))
  baseline = rows[-1][1]
  print(f"| pipeline ({len(source.train)} images, batch {FLAGS.batch_size}) | images/s | "
        "vs image_dataset_from_directory |")
  print("|---|---:|---:|")
  for name, rate, count in rows:
    print(f"| {name} | {rate:,.0f} | {rate / baseline:.1f}x |")


if __name__ == "__main__":
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)
