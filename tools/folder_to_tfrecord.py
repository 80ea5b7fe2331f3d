r"""Convert an image folder (class subfolders, optional train/ and test/) into TFRecord shards.

  .venv/bin/python tools/folder_to_tfrecord.py --input=/data/cifar10-jpg --output=/data/cifar10-tfr
  .venv/bin/python -m app.train --dataset=tfrecord --data_dir=/data/cifar10-tfr

Writes <split>-NNNNN-of-NNNNN.tfrecord shards holding each file's original bytes (no
re-encoding) and manifest.json (class names, image size, shard list, per-class counts and every
record's label). The folder is checked first, like app.train does (undecodable files: --on_bad_file).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import cli  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_string("input", None, "Image folder: class subfolders, or train/ and test/ of them.")
flags.DEFINE_string("output", None, "New or empty folder for the shards and manifest.json.")
flags.DEFINE_integer("shards", 8, "Shards per split (files read in parallel, one per worker).")
flags.DEFINE_integer("image_size", 0, "Side images are resized to at training; 0 = first image's.")
flags.DEFINE_enum("on_bad_file", "fail", ["fail", "skip"], "Undecodable files: fail or skip.")


def main(argv):
  del argv
  from app.core.run_dir import RunDir  # pylint: disable=g-import-not-at-top
  from app.data import checks
  from app.data.sources import tfrecord  # pylint: disable=g-import-not-at-top
  from app.data.sources import DATASETS  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  if not FLAGS.input or not FLAGS.output:
    cli.fail("pass --input=IMAGE_FOLDER and --output=NEW_FOLDER")
  if not os.path.isdir(FLAGS.input):
    cli.fail(f"--input={FLAGS.input} is not a folder; pass the image folder to convert")
  if FLAGS.shards < 1:
    cli.fail("--shards must be at least 1")
  RunDir(FLAGS.output).check_new_or_resumable()  # new or empty (no backup there)
  data = default.get_config().data
  data.name, data.data_dir, data.image_size = "folder", FLAGS.input, FLAGS.image_size
  data.on_bad_file = FLAGS.on_bad_file
  source, report = checks.check_source(DATASETS.get("folder")(data), data, seed=0)  # no limit
  manifest = tfrecord.write_source(source, FLAGS.output, FLAGS.shards)
  for split, info in manifest["splits"].items():
    print(f"{split}: {info['count']} images in {len(info['shards'])} shards; per class "
          f"{info['per_class']}")
  if report["skipped_undecodable_files"]:
    print(f"skipped {len(report['skipped_undecodable_files'])} undecodable files: "
          f"{', '.join(report['skipped_undecodable_files'])}")
  print(f"wrote {FLAGS.output}/{tfrecord.MANIFEST}")


if __name__ == "__main__":
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)
