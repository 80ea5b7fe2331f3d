"""The run directory: one object owns it, and training, export and evaluation are handed it.

A run directory (app/train/train_and_evaluate.py) holds config.yaml, data_report.json,
history.csv, metrics.json, checkpoints/{best,last}.keras, tensorboard/ and, while the run is
unfinished, its backup (<run dir>/backup unless train.backup_dir names another folder). RunDir
says whether a path may become a new run or resumes an unfinished one, writes its files
atomically, and reads a finished run back, turning a missing or foreign file into a UsageError
that says what to pass instead. Loading checkpoints and data is app/serving/runs.py's.
"""

import json
import os
import shutil

import ml_collections
import yaml

from app.core import files
from app.core.errors import UsageError

CHECKPOINTS = ("best", "last")  # checkpoints/<name>.keras, written by app/train/callbacks.py
BACKUP_STATE = "state.json"  # the backup's last state (app/train/backup.py)

# What --accel=auto may change between the start of a run and its resumption.
_PROBED_KEYS = ("runtime.mixed_precision", "runtime.jit_compile", "runtime.steps_per_execution",
                "runtime.channels_last", "train.batch_size", "optim.peak_learning_rate")


def flatten(tree, prefix=""):
  """{"a": {"b": 1}} -> {"a.b": 1}: a config's keys as dotted paths."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _with_schema_defaults(loaded, schema):
  """A run's config with keys added to the schema since the run filled from the schema."""
  merged = dict(loaded)
  for key, value in schema.items():
    if key not in merged:
      merged[key] = value
    elif isinstance(value, dict) and isinstance(merged[key], dict):
      merged[key] = _with_schema_defaults(merged[key], value)
  return merged


def config_from_dict(loaded):
  """A saved resolved config (config.yaml, or an export's metadata) as a ConfigDict."""
  from configs import default  # pylint: disable=g-import-not-at-top
  return ml_collections.ConfigDict(_with_schema_defaults(loaded, default.get_config().to_dict()))


class RunDir:
  """The run directory at `path`, with its backup folder (`backup_dir`, default <path>/backup)."""

  def __init__(self, path, backup_dir=""):
    self.path = path
    self.backup_dir = backup_dir or os.path.join(path, "backup")

  def file(self, name):
    return os.path.join(self.path, name)

  def checkpoint(self, checkpoint):
    """'best' / 'last' -> checkpoints/<name>.keras; anything else is a path as given."""
    if checkpoint in CHECKPOINTS:
      return os.path.join(self.path, "checkpoints", f"{checkpoint}.keras")
    return checkpoint

  # --- Before training: new, or an unfinished run to resume ---

  def has_backup(self):
    return os.path.exists(os.path.join(self.backup_dir, BACKUP_STATE))

  def check_new_or_resumable(self):
    """The directory must be new or empty, or hold the backup of an unfinished run (which is then
    resumed): a finished run is never overwritten."""
    if not os.path.exists(self.path) or (os.path.isdir(self.path) and not os.listdir(self.path)):
      return
    if not (self.has_backup() and not os.path.exists(self.file("metrics.json"))):
      raise UsageError(f"output dir {self.path} already exists and is not empty; pass a new "
                       "--output_dir")

  def started_config(self, config):
    """For a run resumed from its backup: the config it was started with (config.yaml), after
    checking that `config` is the same run; None for a new run. UsageError names the keys that
    differ. With --accel=auto the probed switches are the started run's, so they are not
    compared; a key the schema gained since the run started counts as unchanged while it holds
    its default."""
    path = self.file("config.yaml")
    if not (self.has_backup() and os.path.exists(path)):
      return None
    with open(path) as f:
      saved = yaml.safe_load(f)
    now = yaml.safe_load(yaml.safe_dump(config.to_dict(), sort_keys=False))  # tuples -> lists
    skip = _PROBED_KEYS if config.runtime.accel == "auto" else ()
    before, after = flatten(saved), flatten(now)
    defaults = flatten(config_from_dict({}).to_dict())
    changed = sorted(
        k for k in set(before) | set(after)
        if k not in skip and not k.startswith("derived.")  # computed from the other keys
        and before.get(k, defaults.get(k)) != after.get(k))  # a key added since holds its default
    if changed:
      raise UsageError(
          f"{self.path} holds an unfinished run started with other settings ("
          + ", ".join(f"{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in changed[:4])
          + (", ..." if len(changed) > 4 else "")
          + "); pass the same flags to resume it, or a new --output_dir")
    return ml_collections.ConfigDict(saved)

  # --- Writing ---

  def create(self):
    os.makedirs(self.path, exist_ok=True)

  def save_config(self, config):
    files.write_text(self.file("config.yaml"), yaml.safe_dump(config.to_dict(), sort_keys=False))

  def write_json(self, name, value):
    files.write_json(self.file(name), value)

  def remove_backup(self):
    shutil.rmtree(self.backup_dir, ignore_errors=True)

  def remove(self):
    """A non-chief worker's scratch directory, when its run ends."""
    shutil.rmtree(self.path, ignore_errors=True)

  # --- Reading a finished run back ---

  def load_config(self):
    """The resolved config the run saved in config.yaml."""
    path = self.file("config.yaml")
    if not os.path.isfile(path):
      raise UsageError(f"{self.path} is not a run directory (no config.yaml); pass the "
                       "--output_dir of a finished python -m app.train run")
    with open(path) as f:
      loaded = yaml.safe_load(f)
    if not isinstance(loaded, dict):
      raise UsageError(f"{path} does not hold a config; pass the run directory app.train wrote")
    return config_from_dict(loaded)

  def load_metrics(self):
    """metrics.json of the run ({} if the run did not get that far)."""
    path = self.file("metrics.json")
    if not os.path.isfile(path):
      return {}
    with open(path) as f:
      return json.load(f)

