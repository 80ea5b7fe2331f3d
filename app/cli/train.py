r"""Train, evaluate and export an image classifier.

  python -m app.train                                  # the default recipe: Fashion-MNIST
  python -m app.train --dataset=folder --data_dir=~/photos   # the data-aware recipe, 5 minutes
  python -m app.train --dataset=folder --data_dir=~/photos --time_budget=2m
  python -m app.train --config=configs/cifar10.py --epochs=3
  python -m app.train --dataset=folder --data_dir=~/photos --config.data.validation_split=0.1
  python -m app.train --dataset=tfds:cifar10 --data_dir=~/tensorflow_datasets
  python -m app.train --accel=auto                     # measure the speed switches, pick the best
  python -m app.train --progress=epoch                 # a line per epoch, not a bar (auto: a bar
                                                       # only when stdout is a terminal)
  python tools/launch_workers.py --workers=2 -- python -m app.train --output_dir=runs/x
  python -m app.train --config=runs/x/config.yaml     # run x again, in a new run directory
  python -m app.train --resume=latest                  # continue the newest unfinished runs/*

Running the same command again on an unfinished run directory resumes it from its backup, as
--resume=RUN_DIR does without the flags.
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
                        "Precision policy: float32, mixed_bfloat16, mixed_float16, or auto: "
                        "mixed_float16 on GPUs with Tensor Cores (compute capability >= 7.0), "
                        "mixed_bfloat16 on TPUs and on CPUs with native bfloat16 (AVX512_BF16, "
                        "AMX), float32 otherwise (the choice and why: the log, config.yaml's "
                        "derived.mixed_precision_reason, metrics.json). The shipped recipes "
                        "that trained bfloat16 ask for auto; mixed_bfloat16 asked for where it "
                        "is emulated (a CPU without those instructions: several times slower "
                        "than float32) trains with a warning."),
    "gpu_memory_limit": ("runtime.gpu_memory_limit", flags.DEFINE_string,
                         "At most this much memory on each GPU, e.g. 8GiB or 8192 (MiB), "
                         "reserved whole when TensorFlow first allocates; unset, each GPU's "
                         "memory is taken as needed (growth; "
                         "--config.runtime.gpu_memory_growth=false: TensorFlow's default, all "
                         "of it at start). docs/GPU.md."),
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
    "progress": ("train.progress", flags.DEFINE_string,
                 "How training shows its progress on stdout: bar (Keras's progress bar, redrawn "
                 "within each epoch), epoch (one line per epoch, for logs) or auto (bar when "
                 "stdout is a terminal, epoch otherwise: a pipe, a file, CI, app.tune's trials)."),
}
cli.define_shortcuts(SHORTCUTS)
flags.DEFINE_string(
    "resume", None,
    "Continue the unfinished run in this run directory (one killed, preempted or stopped) with "
    "the settings it started with, read from its config.yaml; 'latest': the newest unfinished "
    "runs/<name>-<UTC time> here (of --config's name, if given). Flags that would change the "
    "run are refused; those of how this machine runs it (--progress, --gpu_memory_limit) are "
    "not. To train a run again in a new directory: --config=RUN_DIR/config.yaml.")


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
  started = None
  if flags.FLAGS.resume is not None:
    config, started, overridden = _run_to_resume(config_lib)
    recipe = config
  else:
    config, recipe, overridden = _config_and_recipe(config_lib)
  with preemption.outside_fit("before training started (waiting for the cluster, or setting up); "
                              "nothing was written"):
    strategy = distribute.initialize(config.runtime)  # before any TensorFlow op, validation's too
  resolved = config_lib.resolve(config, strategy=strategy, recipe=recipe, overridden=overridden)
  if started is not None:  # --resume: the run's choices from its data and measurements, as made
    from app.core import rerun  # pylint: disable=g-import-not-at-top
    rerun.restore_choices(resolved, started)
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


def _run_to_resume(config_lib):
  """--resume: (the run's config to resolve, its config.yaml as saved, the keys set here): the
  flags may set only how this machine runs it (app.core.run_dir.MACHINE_KEYS); any other setting
  is refused in one line, as --config is except with --resume=latest (whose name it gives)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from app.core import rerun, run_dir  # pylint: disable=g-import-not-at-top
  latest = flags.FLAGS.resume == rerun.LATEST
  overrides = config_flags.get_override_values(flags.FLAGS["config"])
  machine = {name: spec for name, spec in SHORTCUTS.items() if spec[0] in run_dir.MACHINE_KEYS}
  changing = ([] if latest or not flags.FLAGS["config"].present else ["--config"]) + [
      f"--{name}" for name, (key, _, _) in SHORTCUTS.items()
      if flags.FLAGS[name].present and name not in machine] + [
          f"--config.{key}" for key in overrides if key not in run_dir.MACHINE_KEYS]
  if changing:
    run = "RUN_DIR" if latest else flags.FLAGS.resume
    cli.fail(f"--resume continues a run with the settings it started with (its config.yaml), so "
             f"{', '.join(changing)} cannot change it; drop {'it' if len(changing) == 1 else 'them'}"
             f", or train the run again with changes in a new run directory: "
             f"--config={os.path.join(run, 'config.yaml')} and the flags")
  name = flags.FLAGS.config.name if latest and flags.FLAGS["config"].present else None
  config, started = rerun.run_to_resume(flags.FLAGS.resume, name)
  for key in overrides:
    config_lib.set_key(config, key, overrides[key])
  overridden = sorted(set(overrides) | set(cli.apply_shortcuts(config, machine)))
  logging.info("--resume=%s: the run in %s, with the settings it started with", flags.FLAGS.resume,
               config.output_dir)
  return config, started, overridden


def run():
  """Console-script entry point (convtrain-train)."""
  cli.adopt_as_main(__name__)
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  run()
