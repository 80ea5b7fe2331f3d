"""The run directory: one object owns it, and training, export and evaluation are handed it.

A run directory (app/train/train_and_evaluate.py) holds config.yaml, data_report.json,
history.csv, metrics.json, checkpoints/{best,last}.keras, tensorboard/ and, while the run is
unfinished, its backup (<run dir>/backup unless train.backup_dir names another folder). RunDir
says whether a path may become a new run, resumes an unfinished one or starts over one killed
before its first backup, writes its files atomically, and reads a finished run back, turning a
missing or foreign file into a UsageError that says what to pass instead. Loading checkpoints and
data is app/serving/runs.py's.

Ownership (app/core/ownership.py): the process that trains into a run directory holds its lock,
and the chief's backup folder's, for its whole life; the folder's run.json names the run it
belongs to, so no other run resumes from it (or deletes it when it ends).
"""

import os
import shutil

import ml_collections
import yaml
from absl import logging

from app.core import files
from app.core import ownership
from app.core import readers
from app.core.errors import UsageError

CHECKPOINTS = ("best", "last")  # checkpoints/<name>.keras, written by app/train/callbacks.py
BACKUP_STATE = "state.json"  # the backup's last state (app/train/backup.py)
BACKUP_RUN = "run.json"  # the run a backup folder belongs to: {"output_dir", "config"}
_NEW_DIR = "pass a new --output_dir"
_OTHER_BACKUP_DIR = "pass another --config.train.backup_dir"

# What --accel=auto may change between the start of a run and its resumption.
_PROBED_KEYS = ("runtime.mixed_precision", "runtime.jit_compile", "runtime.steps_per_execution",
                "runtime.channels_last", "train.batch_size", "optim.peak_learning_rate")
# How a process shares its GPUs' memory (app.distribute.configure_gpu_memory): the machine's
# business, not the run's; a run resumes under another limit (after running out of memory, say).
# So is how it shows its progress (train.progress): a run started on a terminal resumes in a log.
MACHINE_KEYS = ("runtime.gpu_memory_growth", "runtime.gpu_memory_limit", "train.progress")
# With --time_budget the run's length is planned once it has measured its step time
# (app/train/budget.py); a resumed run takes the plan it started with.
_PLANNED_KEYS = ("train.epochs", "train.validation_every_epochs", "train.time_budget_seconds",
                 "optim.warmup_epochs", "train.frozen_epochs", "optim.decay_epochs",
                 "optim.step_epochs")


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


def _misshapen_sections(loaded, schema, prefix=""):
  """The dotted keys of `loaded` that are not text, or whose section (a dict in the schema) is
  something else."""
  wrong = [f"{prefix}{key!r}" for key in loaded if not isinstance(key, str)]
  for key, value in schema.items():
    if isinstance(value, dict) and key in loaded:
      if not isinstance(loaded[key], dict):
        wrong.append(prefix + key)
      else:
        wrong += _misshapen_sections(loaded[key], value, f"{prefix}{key}.")
  return wrong


def config_from_dict(loaded, source="the saved config"):
  """A saved resolved config (config.yaml, or an export's metadata) as a ConfigDict; `source`
  names where it came from in the UsageError a foreign or edited one gets."""
  from configs import default  # pylint: disable=g-import-not-at-top
  schema = default.get_config().to_dict()
  if not isinstance(loaded, dict):
    raise UsageError(f"{source} is not a config (found {type(loaded).__name__}); pass what "
                     "app.train wrote")
  wrong = _misshapen_sections(loaded, schema)
  if wrong:
    raise UsageError(f"{source} is not a config of this application (misshapen keys: "
                     f"{', '.join(wrong[:4])}); pass what app.train wrote")
  return ml_collections.ConfigDict(_with_schema_defaults(loaded, schema))


def _as_saved(config):
  """A ConfigDict as config.yaml (and a backup's run.json) hold it: tuples become lists."""
  return yaml.safe_load(yaml.safe_dump(config.to_dict(), sort_keys=False))


def changed_keys(saved, config):
  """{dotted key: (saved value, value in `config`)} for the keys a run started with settings
  `saved` (a dict, as config.yaml holds it) would not resume under `config`. With --accel=auto
  the probed switches are the started run's, so they are not compared, nor with --time_budget
  the planned length, nor the GPU memory and progress settings (MACHINE_KEYS); a key the schema gained
  since the run started counts as unchanged while it holds its default; derived.* is computed
  from the rest."""
  skip = MACHINE_KEYS + (_PROBED_KEYS if config.runtime.accel == "auto" else ()) + (
      _PLANNED_KEYS if config.train.time_budget else ()) + (
      ("optim.learning_rate", "optim.peak_learning_rate")
      if config.optim.learning_rate_from == "auto" else ())
  before, after = flatten(saved), flatten(_as_saved(config))
  defaults = flatten(config_from_dict({}).to_dict())
  return {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
          if k not in skip and not k.startswith("derived.")
          and before.get(k, defaults.get(k)) != after.get(k)}


def describe_changes(changed):
  """"seed: 0 -> 7, ..." for the first four keys of changed_keys()."""
  items = list(changed.items())
  return (", ".join(f"{k}: {before!r} -> {after!r}" for k, (before, after) in items[:4])
          + (", ..." if len(items) > 4 else ""))


class RunDir:
  """The run directory at `path`, with its backup folder (`backup_dir`, default <path>/backup)."""

  def __init__(self, path, backup_dir=""):
    self.path = path
    self.backup_dir = backup_dir or os.path.join(path, "backup")
    self.config, self.owns_backup = None, False  # as check_new_or_resumable was given them

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

  def check_new_or_resumable(self, config=None, chief=True):
    """The directory must be new or empty, or hold an unfinished run started with the same
    settings as `config` (a resolved config): one with a backup is resumed from it, one killed
    before its first backup (its lock file outlived its owner, no metrics.json) is started over
    by create(). A finished run is never overwritten. The chief (or a lone process: `chief`)
    also takes the backup folder, which must be empty or this run's. Without `config` (a folder
    that is no run of its own) only new, empty or backed-up directories pass.

    A directory that exists with a lock file is claimed here, so a live owner is refused before
    any work; a new one is claimed by create(), which makes it and checks again under the lock:
    of two processes racing for a new directory the second is refused there, having written
    nothing. A refusal here gives back the locks it took with their records as they were: bad
    input writes nothing."""
    self.config, self.owns_backup = config, chief and config is not None
    owned_before = {path for path in (self.path, self.backup_dir) if ownership.owns(path)}
    try:
      ownership.claim(self.path, "output dir", _NEW_DIR, create=False, quiet=True)
      if self.owns_backup:
        self._claim_backup(create=False)
      self._state()
    except UsageError:
      for path in {self.path, self.backup_dir} - owned_before:
        ownership.release(path, restore=True)
      raise

  def _claim_backup(self, create):
    """The backup folder's lock; a takeover is logged for one outside the run dir only (the run
    dir's own says it)."""
    inside = os.path.realpath(self.backup_dir).startswith(os.path.realpath(self.path) + os.sep)
    ownership.claim(self.backup_dir, "backup dir", _OTHER_BACKUP_DIR, create=create, quiet=inside)

  def _state(self):
    """"new", "resume" or "start over" for the directory as it is now; UsageError for the rest."""
    if self.owns_backup:
      self._check_backup_is_this_runs()
    if ownership.is_empty(self.path):
      return "new"
    finished = os.path.exists(self.file("metrics.json"))
    saved = self.config is not None and not finished and self._saved_config()
    if saved:
      self._refuse_other_settings(self._changed_from_own(saved, self.config))
    if not finished and self.has_backup():
      return "resume"
    if saved and ownership.has_lock_file(self.path) and ownership.owns(self.path):
      return "start over"  # we hold the lock: its owner has ended, unfinished, without a backup
    raise UsageError(f"output dir {self.path} already exists and is not empty; {_NEW_DIR}")

  def _saved_config(self):
    path = self.file("config.yaml")
    if not os.path.isfile(path):
      return None
    return readers.read_yaml(path, "run config", f"restore it, or {_NEW_DIR}")

  def _check_backup_is_this_runs(self):
    """A backup folder belongs to the run that made it (its run.json): a run resuming from
    another's would train on that run's weights, and delete them when it ends."""
    if ownership.is_empty(self.backup_dir):
      return
    record_path = os.path.join(self.backup_dir, BACKUP_RUN)
    if not os.path.exists(record_path):
      if self.has_backup() and os.path.exists(self.file("config.yaml")):
        return  # an older version's backup of the run in this directory (config.yaml compared)
      raise UsageError(f"backup dir {self.backup_dir} is not empty and names no run (no "
                       f"{BACKUP_RUN}), so it is no backup this run may use or remove; "
                       f"{_OTHER_BACKUP_DIR}")
    fix = f"remove {self.backup_dir} if its run is not wanted, or {_OTHER_BACKUP_DIR}"
    record = readers.read_json(record_path, "backup record", fix)
    theirs, saved = record.get("output_dir"), record.get("config")
    if not (isinstance(theirs, str) and isinstance(saved, dict)):
      raise UsageError(f"backup record {record_path} is damaged or not ours; {fix}")
    if not self.has_backup():
      return  # that run was killed before its first backup: nothing of it to take over
    changed = changed_keys(saved, self.config)
    changed.pop("output_dir", None)
    if os.path.realpath(theirs) != os.path.realpath(self.path):
      raise UsageError(
          f"backup dir {self.backup_dir} holds the backup of the run in {theirs}, not of "
          f"{self.path}" + (f" (its settings: {describe_changes(changed)})" if changed else "")
          + f"; {_OTHER_BACKUP_DIR}, or resume that run with its flags and --output_dir={theirs}")
    self._refuse_other_settings(changed)

  def _refuse_other_settings(self, changed):
    if changed:
      raise UsageError(f"{self.path} holds an unfinished run started with other settings ("
                       f"{describe_changes(changed)}); pass the same flags to resume it, or a "
                       "new --output_dir")

  def started_config(self, config):
    """For a run resumed from its backup: the config it was started with (config.yaml), after
    checking that `config` is the same run (changed_keys); None for a new run. UsageError names
    the keys that differ."""
    saved = self.has_backup() and self._saved_config()
    if not saved:
      return None
    self._refuse_other_settings(self._changed_from_own(saved, config))
    return ml_collections.ConfigDict(saved)

  @staticmethod
  def _changed_from_own(saved, config):
    """changed_keys() against this directory's own config.yaml: its output_dir names this
    directory however it was written (relative to another working directory, --resume=/abs/path),
    and so does a backup folder at <output_dir>/backup on both sides."""
    changed = changed_keys(saved, config)
    changed.pop("output_dir", None)
    train = saved.get("train") if isinstance(saved.get("train"), dict) else {}
    if "train.backup_dir" in changed and train.get("backup_dir") == os.path.join(
        str(saved.get("output_dir")), "backup") and config.train.backup_dir == os.path.join(
            config.output_dir, "backup"):
      changed.pop("train.backup_dir")
    return changed

  # --- Writing ---

  def create(self):
    """Makes the directory and takes its lock for this process's life, checking again under the
    lock; a run killed before its first backup is cleared here, to start over."""
    previous = ownership.claim(self.path, "output dir", _NEW_DIR, quiet=True)
    if self.config is None:
      return
    state = self._state()
    if state == "start over":
      logging.warning("output dir %s holds a run killed before its first backup (%s); starting "
                      "it over", self.path, previous.describe() if previous else "by this process")
      for name in os.listdir(self.path):
        entry = self.file(name)
        if os.path.isdir(entry) and not os.path.islink(entry):
          shutil.rmtree(entry)
        elif name != ownership.LOCK_FILE:
          os.remove(entry)
    elif state == "resume" and previous and not previous.is_this_process():
      ownership.log_takeover("output dir", self.path, previous)

  def save_config(self, config):
    """config.yaml; for the chief then the backup folder, taken for this process's life (and
    checked again under its lock) and labelled with its run (run.json). In this order a kill at
    any point leaves a run directory that is empty or holds config.yaml."""
    files.write_text(self.file("config.yaml"), yaml.safe_dump(config.to_dict(), sort_keys=False))
    if self.owns_backup:
      self._claim_backup(create=True)
      self._check_backup_is_this_runs()
      files.write_json(os.path.join(self.backup_dir, BACKUP_RUN),
                       {"output_dir": os.path.realpath(self.path), "config": _as_saved(config)},
                       default=str)

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
    fix = "pass a run directory app.train wrote, or restore its config.yaml"
    return config_from_dict(readers.read_yaml(path, "run config", fix), f"run config {path}")

  def load_metrics(self):
    """metrics.json of the run ({} if the run did not get that far)."""
    path = self.file("metrics.json")
    if not os.path.isfile(path):
      return {}
    return readers.read_json(path, "run metrics", "restore it from a copy, or pass a run "
                             "directory app.train wrote")

