r"""Write a PNG grid of augmented training images: look at what the model sees.

  python -m app.augment_preview --config.data.augment="flip|crop(pad=2)|erase(factor=1.0)"
  python -m app.augment_preview --config=configs/fashion_mnist.py --count=16 --repeats=2 \
      --config.data.augment="mixup(alpha=0.4)" --output=mixup.png
"""

from app import cli  # sets up logging before TensorFlow loads  # pylint: disable=g-bad-import-order

import os

from absl import app, flags

import configs

cli.define_config_flag(os.path.join(os.path.dirname(configs.__file__), "fashion_mnist.py"))
flags.DEFINE_string("output", "augmentations.png", "PNG file to write.")
flags.DEFINE_integer("count", 32, "Training images to show.")
flags.DEFINE_integer("repeats", 1, "Augmented copies of each image (shows the randomness).")
flags.DEFINE_string("dataset", None, "Overrides config.data.name.")
flags.DEFINE_string("data_dir", None, "Overrides config.data.data_dir.")


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {' '.join(argv[1:])}; every setting is a --flag")
  if flags.FLAGS.count < 1 or flags.FLAGS.repeats < 1:
    cli.fail("--count and --repeats must be at least 1")
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.data.preview import augmentation_preview  # pylint: disable=g-import-not-at-top
  config = flags.FLAGS.config
  if flags.FLAGS.dataset:
    config.data.name = flags.FLAGS.dataset
  if flags.FLAGS.data_dir:
    config.data.data_dir = flags.FLAGS.data_dir
  config = config_lib.resolve(config)
  print(augmentation_preview(config, flags.FLAGS.output, flags.FLAGS.count, flags.FLAGS.repeats))


def run():
  """Console-script entry point (convtrain-augment-preview)."""
  cli.adopt_as_main(__name__)
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  run()
