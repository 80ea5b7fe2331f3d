"""A search directory's fingerprint.json: what the search was made for (the recipe less the
searched keys, the space, tuner, objective and data set). The same command resumes the search; a
changed one is refused with the parts that changed, never silently reloaded. A key a later
version of the app added to the schema counts as unchanged while it holds its default (the old
trials trained as if it did)."""

import dataclasses
import hashlib
import json
import os
import shutil

from app.core import ownership, readers
from app.core import run_dir
from app.core.errors import UsageError
from app.tune import trials


def _data_identity(data):
  """The data set's location and its files' names, sizes and times (a changed copy differs)."""
  listing = []
  if data.data_dir and os.path.isdir(data.data_dir):
    for root, _, files in os.walk(data.data_dir):
      for name in sorted(files):
        stat = os.stat(os.path.join(root, name))
        listing.append((os.path.relpath(os.path.join(root, name), data.data_dir), stat.st_size,
                        int(stat.st_mtime)))
  return {"name": data.name, "data_dir": data.data_dir,
          "files": hashlib.sha256(json.dumps(sorted(listing)).encode()).hexdigest()}


def _flat(config):
  """`config`'s keys flattened ("optim.learning_rate") with their values as fingerprint.json
  holds them."""
  return json.loads(json.dumps(run_dir.flatten(config.to_dict()), default=str))


def fingerprint(config, plan):
  """{part: value} for what makes two searches the same one; max_trials may grow on a resume."""
  recipe = _flat(config)
  searched = {p.key for p in plan.params}
  recipe = {k: v for k, v in recipe.items()
            if k not in searched and not k.startswith("search.") and k != "output_dir"
            and k not in run_dir.MACHINE_KEYS}  # a search resumes under another GPU memory limit
  return json.loads(json.dumps({
      "recipe": recipe, "space": [dataclasses.astuple(p) for p in plan.params],
      "tuner": config.search.tuner, "objective": plan.objective.name,
      "search": {k: v for k, v in config.search.items()
                 if k not in ("space", "max_trials", "time_budget_seconds")},
      "data": _data_identity(config.data)}, default=str))


def _without_new_defaults(saved, parts):
  """`parts` less the recipe and search keys that `saved` lacks and that hold the schema's
  default value (configs/default.py)."""
  from configs import default  # pylint: disable=g-import-not-at-top
  defaults = _flat(default.get_config())
  parts = dict(parts)
  for part, prefix in (("recipe", ""), ("search", "search.")):
    if isinstance(saved.get(part), dict) and isinstance(parts.get(part), dict):
      parts[part] = {k: v for k, v in parts[part].items()
                     if k in saved[part] or (prefix + k) not in defaults
                     or defaults[prefix + k] != v}
  return parts


def check_search_dir(search_dir, parts, overwrite):
  """Makes `search_dir` ready: new, resumed (same fingerprint) or overwritten (--overwrite)."""
  path = os.path.join(search_dir, "fingerprint.json")
  ours = os.path.exists(path)
  if not ownership.is_empty(search_dir) and not ours:
    raise UsageError(f"{search_dir} is not empty and not a search directory (no fingerprint.json); "
                     "pass a new --search_dir")
  if ours and overwrite:  # everything but the lock file: its owner keeps it (app/core/ownership.py)
    for name in os.listdir(search_dir):
      if name != ownership.LOCK_FILE:
        entry = os.path.join(search_dir, name)
        if os.path.isdir(entry) and not os.path.islink(entry):
          shutil.rmtree(entry)
        else:
          os.remove(entry)
  elif ours:
    saved = readers.read_json(path, "search fingerprint", "pass --overwrite to start the search "
                              "over (its trials are lost), or restore the file")
    parts = _without_new_defaults(saved, parts)
    changed = sorted(k for k in set(saved) | set(parts) if saved.get(k) != parts.get(k))
    if changed:
      detail = changed
      if changed == ["recipe"] and isinstance(saved["recipe"], dict):
        detail = sorted(k for k in set(saved["recipe"]) | set(parts["recipe"])
                        if saved["recipe"].get(k) != parts["recipe"].get(k))[:4]
      raise UsageError(f"{search_dir} was made for a different search space/data (changed: "
                       f"{', '.join(detail)}); use a new --search_dir or --overwrite")
  os.makedirs(search_dir, exist_ok=True)
  trials.write_json(path, parts)
