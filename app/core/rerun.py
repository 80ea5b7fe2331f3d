"""Running a run again: its config.yaml as a recipe, and the unfinished run --resume continues.

A run directory's config.yaml holds the config the run trained with: the recipe and the command
line's overrides, resolved (app.config.resolve), then with what the run chose as it started
(app/train/train_and_evaluate.py). `python -m app.train --config=RUN_DIR/config.yaml` reproduces
the run in a new directory: as a recipe (recipe_from_file) the file is that config in the
schema's keys (configs/default.py), what resolve() adds (derived, optim.peak_learning_rate) left
for it to compute again, and the choices the run made from its data or its measurements fixed at
what they chose (FIXED_WHEN_RELOADED): on other data, or another machine, the data-aware survey,
the speed probe, the range test or the budget plan could choose otherwise.

`python -m app.train --resume=RUN_DIR` (or `latest`) continues the unfinished run there
(run_to_resume): the same config, every choice as the run made it (restore_choices), so the
resume machinery (app/core/run_dir.py, app/train/backup.py) finds it the same run.
"""

import os
import re

from app.core import readers
from app.core.errors import UsageError
from app.core.run_dir import config_from_dict, flatten

DEFAULT_ROOT = "runs"  # a run without --output_dir goes to runs/<name>-<UTC time> (app.config.resolve)
STAMP_FORMAT = "%Y%m%d-%H%M%S"  # that UTC time
_STAMPED = re.compile(r"^(?P<name>.+)-(?P<stamp>\d{8}-\d{6})$")
LATEST = "latest"  # --resume=latest

# The keys whose value made the run choose others from its data or its measurements, with the
# value each takes in a run's config.yaml loaded as a recipe. The choices are in those others
# (data_aware.json, accel_probe.md, lr_find.json and time_budget.json in the run dir say why).
FIXED_WHEN_RELOADED = {
    "data_aware": False,  # the data-aware recipe's size, augmentations, family, batch and rate
    "runtime.accel": "off",  # --accel=auto's probed precision, XLA, steps per call, batch
    "optim.learning_rate_from": "",  # the rate read from an lr_find.json or found by `auto`
    "train.time_budget": "",  # --time_budget's planned epochs, lengths and validation interval
    "optim.warmup_fraction": 0.0,  # resolve() turned it into optim.warmup_epochs
}
# What a resumed run takes back from config.yaml's derived section with the keys above: the
# data-aware choice (data_aware.json is written again from it) and the budget's plan.
_RESTORED_DERIVED = ("data_aware", "time_budget_seconds", "budget_scaled_keys",
                     "budget_plans_validation")


def _is_default_backup(config):
  return config["train"]["backup_dir"] == os.path.join(config["output_dir"], "backup")


def recipe(saved, source, output_dir=""):
  """A run's saved config (config.yaml, as a dict) -> a recipe (an unlocked ConfigDict of the
  schema's keys): the run's values (lists back to the schema's tuples), FIXED_WHEN_RELOADED's
  fixed, and its directory `output_dir` ("" = a new one, runs/<name>-<UTC time>), the backup
  folder with it when the run's was its own (<output_dir>/backup). UsageError names a value the
  schema's key cannot hold (an edited file)."""
  from configs import default  # pylint: disable=g-import-not-at-top
  loaded = config_from_dict(saved, source).to_dict()
  values = flatten(loaded)
  config = default.get_config()
  for key, schema_value in flatten(config.to_dict()).items():
    value = FIXED_WHEN_RELOADED.get(key, values.get(key, schema_value))
    if isinstance(schema_value, tuple) and isinstance(value, list):
      value = tuple(value)
    *parents, leaf = key.split(".")
    section = config
    for parent in parents:
      section = section[parent]
    try:
      section[leaf] = value
    except TypeError:
      raise UsageError(f"{source}: {key} holds {value!r}, not a {type(schema_value).__name__} as "
                       "the schema's; restore the file app.train wrote") from None
  config.output_dir = output_dir
  config.train.backup_dir = (os.path.join(output_dir, "backup") if output_dir else "") \
      if _is_default_backup(loaded) else loaded["train"]["backup_dir"]
  return config


def _read(path):
  return readers.read_yaml(path, "run config",
                           "pass the config.yaml that app.train wrote in a run directory")


def recipe_from_file(path, where):
  """--config=RUN_DIR/config.yaml: that run's config as a recipe for a new run (recipe()).
  `where` starts the UsageError of a YAML file that is no run's config.yaml (no derived section:
  a recipe is Python, configs/*.py)."""
  saved = _read(path)
  if "derived" not in saved:
    raise UsageError(f"{where}: not a Python file (.py) nor a run's config.yaml (it has no "
                     "derived section); pass a recipe file such as configs/fashion_mnist.py, or "
                     "the config.yaml that app.train wrote in a run directory")
  return recipe(saved, f"run config {path}")


def latest(root=DEFAULT_ROOT, name=None):
  """The newest unfinished run of `root` (by the UTC time in runs/<name>-<UTC time>; of config
  `name` if given): a directory with config.yaml and no metrics.json. UsageError when none."""
  found = []
  for entry in os.listdir(root) if os.path.isdir(root) else []:
    match = _STAMPED.match(entry)
    path = os.path.join(root, entry)
    if (match and (name is None or match["name"] == name)
        and os.path.isfile(os.path.join(path, "config.yaml"))
        and not os.path.exists(os.path.join(path, "metrics.json"))):
      found.append((match["stamp"], path))
  if not found:
    of = f" of {name!r}" if name else ""
    raise UsageError(f"--resume={LATEST}: no unfinished run{of} in {os.path.abspath(root)} (a "
                     f"{root}/<name>-<UTC time> directory with config.yaml and no metrics.json); "
                     "pass --resume=RUN_DIR")
  return max(found)[1]


def run_to_resume(spec, name=None):
  """--resume=`spec` (a run directory, or `latest`: latest(name=name)) -> (the recipe to resolve:
  the run's config with its directory, FIXED_WHEN_RELOADED fixed; the run's saved config, for
  restore_choices). UsageError for a directory that holds no run or a finished one."""
  if not spec:
    raise UsageError(f"--resume is empty; pass --resume=RUN_DIR (an unfinished run's directory) "
                     f"or --resume={LATEST}")
  path = latest(name=name) if spec == LATEST else spec
  config_path = os.path.join(path, "config.yaml")
  if not os.path.isfile(config_path):
    raise UsageError(f"--resume={spec}: {path} holds no run (no config.yaml); pass the directory "
                     "of an unfinished python -m app.train run, or --resume=latest")
  if os.path.exists(os.path.join(path, "metrics.json")):
    raise UsageError(f"--resume={spec}: the run in {path} is finished (metrics.json), nothing to "
                     f"resume; to train it again in a new directory, pass --config={config_path}")
  saved = _read(config_path)
  return recipe(saved, f"run config {config_path}", output_dir=path), saved


def restore_choices(resolved, saved):
  """The resolved recipe of run_to_resume, in place, with FIXED_WHEN_RELOADED's keys and their
  derived values back as the run saved them: train_and_evaluate then takes the probed switches,
  the found rate and the plan from config.yaml (RunDir.started_config), as for any resumed run."""
  flat = flatten(saved)
  for key in FIXED_WHEN_RELOADED:
    if key in flat:
      section, _, leaf = key.rpartition(".")
      (resolved[section] if section else resolved)[leaf] = flat[key]
  for key in _RESTORED_DERIVED:
    if key in saved.get("derived", {}):
      resolved.derived[key] = saved["derived"][key]
  return resolved
