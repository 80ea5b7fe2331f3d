r"""Learning-rate range test: sweep the rate exponentially, plot the loss, suggest a rate.

  python -m app.lr_find                                   # the default recipe's model and data
  python -m app.lr_find --config=configs/fashion_mnist.py --min_lr=1e-4 --max_lr=10 --steps=200
  python -m app.train --config.optim.learning_rate_from=runs/lr_find/lr_find.json

Writes lr_find.csv (step, rate, loss, smoothed loss), lr_find.png and lr_find.json (the
suggestion, which app.train takes through --config.optim.learning_rate_from) to --output_dir, and
the curve and the suggestion for TensorBoard to <output_dir>/tensorboard/lr_find
(tensorboard --logdir <output_dir>).
"""

from app import cli  # sets up logging before TensorFlow loads  # pylint: disable=g-bad-import-order

import os

from absl import app, flags

import configs

cli.define_config_flag(os.path.join(os.path.dirname(configs.__file__), "fashion_mnist.py"))
flags.DEFINE_float("min_lr", 1e-5, "Rate of the first step.")
flags.DEFINE_float("max_lr", 10.0, "Rate of the last step (the sweep stops early on divergence).")
flags.DEFINE_integer("steps", 150, "Steps (batches) in the sweep, one rate each.")
flags.DEFINE_string("output_dir", "runs/lr_find", "Where lr_find.csv/.png/.json and "
                    "tensorboard/lr_find go.")


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {' '.join(argv[1:])}; every setting is a --flag")
  from app import config as config_lib, distribute  # pylint: disable=g-import-not-at-top
  from app.train.lr_find import run_lr_find  # pylint: disable=g-import-not-at-top
  # The GPUs' memory growth or --config.runtime.gpu_memory_limit, before TensorFlow starts.
  distribute.configure_gpu_memory(*distribute.gpu_memory(flags.FLAGS.config.runtime))
  config = config_lib.resolve(flags.FLAGS.config, recipe=cli.recipe_as_written())
  summary = run_lr_find(config, flags.FLAGS.output_dir, flags.FLAGS.min_lr, flags.FLAGS.max_lr,
                        flags.FLAGS.steps)
  print(f"suggested learning rate {summary['suggested_learning_rate']:.3g} (lowest loss at "
        f"{summary['min_loss_learning_rate']:.3g}, steepest descent at "
        f"{summary['steepest_learning_rate']:.3g}); see {flags.FLAGS.output_dir}/lr_find.png")


def run():
  """Console-script entry point (convtrain-lr-find)."""
  cli.adopt_as_main(__name__)
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  run()
