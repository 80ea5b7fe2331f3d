r"""Search architecture and learning rate with KerasTuner, each trial a fresh app.train process.

  python -m app.tune --config=configs/tune_fashion_mnist.py --search_dir=runs/search
  python -m app.tune --config=configs/tune_fashion_mnist.py --search_dir=runs/search \
      --tuner=bayesian --max_trials=30 --retrain            # then retrain the best and export it
  python -m app.tune --config=configs/tune_fashion_mnist.py --search_dir=runs/fast \
      --objective=time_to_target --target_accuracy=0.9 --trial_time_budget_seconds=120
  python tools/launch_tuning.py --workers=2 -- --config=configs/tune_fashion_mnist.py \
      --search_dir=runs/search                              # a chief and 2 workers on this host

The space is the recipe's config.search.space ("model.width=int(16, 40, 8);
optim.learning_rate=log(0.05, 0.8); ..."; configs/default.py documents the syntax). Trials
validate on config.search.validation_split of the training split, never on the test split.
It prints each trial's values, its epochs as they end and its score, then the leaderboard's top
and the time the search may still take (from its pace so far, --max_trials and
--search_time_budget_seconds). Running the same command again resumes an interrupted search; a search directory made for another
space, recipe or data set is refused unless --overwrite. <search_dir> receives leaderboard.csv,
leaderboard.md, best_recipe.py (python -m app.train --config=<search_dir>/best_recipe.py),
fingerprint.json, trials/<id>/ (run/, train.log, result.json) and kerastuner/ (the oracle's state),
and TensorBoard's HParams dashboard (each finished trial's values and metrics): tensorboard
--logdir <search_dir>.
On a cluster, set KERASTUNER_TUNER_ID (chief on one host; tuner0, tuner1, ... on the others),
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT (the chief's address) per host and run the same
command on each. Every --config.<key> override and the shortcut flags are passed on to the trials.
"""

import os

from app import cli  # sets up logging before TensorFlow loads  # pylint: disable=g-bad-import-order

from absl import app, flags
from ml_collections import config_flags

import configs

__doc__ += "\n" + cli.config_keys_help()
cli.define_config_flag(os.path.join(os.path.dirname(configs.__file__), "tune_fashion_mnist.py"))

SHORTCUTS = {
    "tuner": ("search.tuner", flags.DEFINE_string,
              "KerasTuner oracle: random, bayesian (Gaussian-process Bayesian optimisation) or "
              "hyperband (trials of growing epochs, the recipe's train.epochs at most)."),
    "objective": ("search.objective", flags.DEFINE_string,
                  "val_accuracy (max), accuracy_within_budget (max; best validation accuracy "
                  "within --trial_time_budget_seconds) or time_to_target (min; seconds to "
                  "--target_accuracy)."),
    "max_trials": ("search.max_trials", flags.DEFINE_integer, "Trials in all."),
    "trial_time_budget_seconds": ("search.trial_time_budget_seconds", flags.DEFINE_float,
                                  "Each trial stops training after this many wall seconds."),
    "search_time_budget_seconds": ("search.time_budget_seconds", flags.DEFINE_float,
                                   "The whole search's wall seconds: no trial starts after them "
                                   "and a running trial stops training then (0 = no limit)."),
    "target_accuracy": ("search.target_accuracy", flags.DEFINE_float,
                        "time_to_target: the validation accuracy to reach."),
    "strategy": ("runtime.strategy", flags.DEFINE_string,
                 "Distribution strategy each trial trains under (see app.train --help)."),
    "gpu_memory_limit": ("runtime.gpu_memory_limit", flags.DEFINE_string,
                         "Each trial's memory on each GPU, e.g. 4GiB (see app.train --help); "
                         "unset, trials take memory as they need it."),
}
cli.define_shortcuts(SHORTCUTS)
flags.DEFINE_string("search_dir", "runs/search", "The search's directory (new, or one to resume).")
flags.DEFINE_boolean("overwrite", False, "Delete an earlier search in --search_dir and start over.")
flags.DEFINE_boolean("retrain", False, "After the search, train the best configuration on the "
                     "whole training split and export it (<search_dir>/retrain/).")
flags.DEFINE_integer("retrain_epochs", 0, "--retrain: epochs (0 = the best recipe's; its "
                     "lengths in epochs, such as the warmup, scale alike).")


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {' '.join(argv[1:])}; every setting is a --flag")
  from app import distribute  # pylint: disable=g-import-not-at-top
  from app.tune import search  # pylint: disable=g-import-not-at-top
  # This process trains nothing (each trial is an app.train of its own): should anything in it
  # touch a GPU, it takes only what that needs, never the memory its trials need.
  distribute.configure_gpu_memory(growth=True)
  config = flags.FLAGS.config
  overrides = dict(config_flags.get_override_values(flags.FLAGS["config"]))
  overrides.update(cli.apply_shortcuts(config, SHORTCUTS))
  overrides = {k: v for k, v in overrides.items() if not k.startswith("search.")}
  if flags.FLAGS.retrain_epochs < 0:
    cli.fail(f"--retrain_epochs must be >= 0; received {flags.FLAGS.retrain_epochs}")
  plan = search.make_plan(config, config_flags.get_config_filename(flags.FLAGS["config"]),
                          overrides, flags.FLAGS.search_dir)
  trials = search.run_search(config, plan, flags.FLAGS.overwrite)
  if trials is None:
    print("worker done: the chief writes the results")
    return
  completed = sum(t.status == "COMPLETED" for t in trials)
  print(f"{len(trials)} trials ({completed} completed); leaderboard {plan.search_dir}/"
        f"leaderboard.md" + (f"; best recipe {plan.search_dir}/best_recipe.py" if completed else ""))
  if flags.FLAGS.retrain:
    run_dir = search.retrain(plan, flags.FLAGS.retrain_epochs)
    print(f"retrained the best configuration: run dir {run_dir}")


def run():
  """Console-script entry point (convtrain-tune)."""
  cli.adopt_as_main(__name__)
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  run()
