r"""Train, evaluate and export an image classifier.

  python -m app.train                                  # the default recipe: Fashion-MNIST
  python -m app.train --dataset=folder --data_dir=~/photos   # the data-aware recipe, 5 minutes
  python -m app.train --dataset=folder --data_dir=~/photos --time_budget=2m
  python -m app.train --config=configs/cifar10.py --epochs=3
  python -m app.train --dataset=folder --data_dir=~/photos --config.data.validation_split=0.1
  python -m app.train --dataset=tfds:cifar10 --data_dir=~/tensorflow_datasets
  python -m app.train --accel=auto                     # measure the speed switches, pick the best
  python tools/launch_workers.py --workers=2 -- python -m app.train --output_dir=runs/x

Running the same command again on an unfinished run directory resumes it from its backup.
SIGTERM or SIGINT (a preemption, Ctrl-C) saves a backup at the next batch end and exits with
status 143 or 130; running the same command again resumes from it.
Every recipe key can be overridden as --config.<section>.<key>=VALUE; the shortcut flags below
override the same keys. The run directory receives config.yaml, history.csv,
training_curves.png, tensorboard/, checkpoints/ and metrics.json; the model is exported to
<export_dir>/<name>/<version>/. A model that ends at chance, or whose validation accuracy
collapsed late, is warned of on stderr ("warning: ...") and in metrics.json's "warnings".
"""

import os
import sys

from app import cli  # sets up logging before TensorFlow loads  # pylint: disable=g-bad-import-order

from absl import app, flags

import configs
from app.optim.optimizers import OPTIMIZERS

__doc__ += "\n" + cli.config_keys_help()  # --help lists every --config.<key> override
DEFAULT_RECIPE = os.path.join(os.path.dirname(configs.__file__), "fashion_mnist.py")
# With no --config, data other than Fashion-MNIST gets the recipe that chooses from the data.
DATA_AWARE_RECIPE = os.path.join(os.path.dirname(configs.__file__), "data_aware.py")

cli.define_config_flag(DEFAULT_RECIPE)

# Shortcut flag -> the config key it overrides. None (unset) leaves the recipe's value.
SHORTCUTS = {
    "dataset": ("data.name", flags.DEFINE_string,
                "Data source: fashion_mnist, folder, idx, tfrecord, or tfds:NAME (a TFDS data set)."),
    "data_dir": ("data.data_dir", flags.DEFINE_string, "Where the data source reads."),
    "model": ("model.name", flags.DEFINE_string, "Model family (python -m app.models lists them)."),
    "weights": ("model.weights", flags.DEFINE_string,
                "Backbone weights for the ImageNet families: 'imagenet' (keras.applications' "
                "no-top ImageNet file, downloaded once into the Keras cache, $KERAS_HOME/models) "
                "or a local file (a run's backbone.weights.h5 or a keras.applications .h5)."),
    "time_budget": ("train.time_budget", flags.DEFINE_string,
                    "Budgeted training: the whole run (start-up, training, evaluations, export) "
                    "fits this, e.g. 5m, 90s, 1h30m: the step time is measured first and the "
                    "schedule planned to end within it (metrics.json: time_budget). The "
                    "data-aware recipe's default is 5m."),
    "epochs": ("train.epochs", flags.DEFINE_integer,
               "Training epochs; the recipe's lengths in epochs (warmup, step and decay epochs, "
               "frozen epochs) scale alike, unless also given."),
    "batch_size": ("train.batch_size", flags.DEFINE_integer, "Global batch size."),
    "learning_rate": ("optim.learning_rate", flags.DEFINE_float,
                      "Peak learning rate (at optim.reference_batch_size, if set)."),
    "optimizer": ("optim.name", flags.DEFINE_string,
                  f"Optimizer: {', '.join(OPTIMIZERS.names())}."),
    "seed": ("seed", flags.DEFINE_integer, "Random seed for data order and initialisation."),
    "output_dir": ("output_dir", flags.DEFINE_string,
                   "Run directory (new or empty); default runs/<name>-<UTC time>."),
    "export_dir": ("export.dir", flags.DEFINE_string,
                   "Export root; the model goes to <export_dir>/<name>/<next version>/."),
    "strategy": ("runtime.strategy", flags.DEFINE_string,
                 "Distribution strategy: auto, default, one_device, mirrored, multi_worker "
                 "(TF_CONFIG or --worker_hosts), tpu (--tpu)."),
    "worker_hosts": ("runtime.worker_hosts", flags.DEFINE_string,
                     "multi_worker without TF_CONFIG: every worker's host:port, comma-separated, "
                     "the same list on each host."),
    "task_index": ("runtime.task_index", flags.DEFINE_integer,
                   "multi_worker with --worker_hosts: this host's index in that list (0 = chief)."),
    "cluster_timeout": ("runtime.cluster_timeout_seconds", flags.DEFINE_float,
                        "multi_worker: seconds to wait for every other worker to come up "
                        "(logged meanwhile), then exit with status 2 naming the missing ones; "
                        "0 = no limit."),
    "tpu": ("runtime.tpu", flags.DEFINE_string,
            "--strategy=tpu: the TPU's name or grpc:// address; empty = the attached TPU."),
    "mixed_precision": ("runtime.mixed_precision", flags.DEFINE_string,
                        "Precision policy: float32, mixed_bfloat16, mixed_float16."),
    "jit_compile": ("runtime.jit_compile", flags.DEFINE_boolean, "Compile with XLA."),
    "steps_per_execution": ("runtime.steps_per_execution", flags.DEFINE_integer,
                            "Training steps per compiled call (1 = Keras's default)."),
    "channels_last": ("runtime.channels_last", flags.DEFINE_boolean,
                      "Run every op NHWC (our models' layout), turning off TensorFlow's layout "
                      "optimizer, which may rewrite convolutions to NCHW (float32 on GPUs)."),
    "accel": ("runtime.accel", flags.DEFINE_string,
              "off, or auto: measure precision, XLA, steps_per_execution, channels_last and the "
              "batch size on this model and device, train with the fastest whose loss stays "
              "with float32's (table in <run dir>/accel_probe.md)."),
    "validation_split": ("data.validation_split", flags.DEFINE_float,
                         "Fraction of the training split held out for validation (seeded)."),
    "on_bad_file": ("data.on_bad_file", flags.DEFINE_string,
                    "Undecodable image files: fail (naming them) or skip (listed in the run dir)."),
    "cv_folds": ("train.cv_folds", flags.DEFINE_integer,
                 "k-fold cross-validation on the training split (>= 2); reports mean and std."),
}
cli.define_shortcuts(SHORTCUTS)


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {' '.join(argv[1:])}; every setting is a --flag")
  from app.train import preemption  # pylint: disable=g-import-not-at-top
  preemption.install()  # SIGTERM/SIGINT: a backup at the next batch end, then exit 128 + signal
  try:
    _train(preemption)
  except preemption.Preempted as stopped:
    print(stopped, file=sys.stderr)
    sys.exit(stopped.exit_status)


def _train(preemption):
  from app import config as config_lib, distribute  # pylint: disable=g-import-not-at-top
  from app.train.train_and_evaluate import train_and_evaluate  # pylint: disable=g-import-not-at-top
  config, recipe, overridden = _config_and_recipe(config_lib)
  with preemption.outside_fit("before training started (waiting for the cluster, or setting up); "
                              "nothing was written"):
    strategy = distribute.initialize(config.runtime)  # before any TensorFlow op, validation's too
  resolved = config_lib.resolve(config, strategy=strategy, recipe=recipe, overridden=overridden)
  if resolved.train.cv_folds:
    from app.train import cross_validation  # pylint: disable=g-import-not-at-top
    summary = cross_validation.cross_validate(resolved)
    print(f"{summary['cv_folds']}-fold cross-validation: validation accuracy "
          f"{summary['validation_accuracy_mean']:.4f} ± {summary['validation_accuracy_std']:.4f}; "
          f"run dir {resolved.output_dir}")
    return
  metrics = train_and_evaluate(resolved)
  worker = metrics["worker"]
  where = (f"run dir {resolved.output_dir}; export {metrics['export_path']}" if worker["chief"]
           else f"worker {worker['index']} of {worker['count']}: the chief writes the run dir")
  print(f"test accuracy {metrics['test_accuracy']:.4f} ({metrics['test_split']} split) after "
        f"{metrics['train_seconds']:.0f} s of training; {where}")


def _config_and_recipe(config_lib):
  """(the run's config, its recipe as written, the keys the command line set or None): --config's
  with the overrides and shortcuts; with no --config and data other than Fashion-MNIST, the
  data-aware recipe's (DATA_AWARE_RECIPE) with the same overrides, since the default recipe is
  Fashion-MNIST's, and the keys they set (what the data-aware choice leaves alone, even where a
  value equals the recipe's)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config = flags.FLAGS.config
  overrides = config_flags.get_override_values(flags.FLAGS["config"])
  overridden = sorted(set(overrides) | set(cli.apply_shortcuts(config, SHORTCUTS)))
  if flags.FLAGS["config"].present or config.data.name == "fashion_mnist":
    return config, cli.recipe_as_written(), overridden
  recipe = config_lib.load_recipe(DATA_AWARE_RECIPE)
  config = config_lib.load_recipe(DATA_AWARE_RECIPE, lock=True)
  for key, value in overrides.items():
    config_lib.set_key(config, key, value)
  cli.apply_shortcuts(config, SHORTCUTS)
  logging.info("no --config for %s data: the data-aware recipe %s", config.data.name,
               os.path.relpath(DATA_AWARE_RECIPE))
  return config, recipe, overridden


def run():
  """Console-script entry point (convtrain-train)."""
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  run()
