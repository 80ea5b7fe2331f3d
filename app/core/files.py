"""Atomic writes: every file the application leaves (run directory, backups, search state,
reports) is written under a temporary name beside its target and renamed into place, so a kill
at any moment leaves the old file or the new one, never half of one."""

import contextlib
import json
import os


@contextlib.contextmanager
def atomic_path(path, suffix=""):
  """Yields a temporary path beside `path` (hidden, ending in `suffix`, which writers such as
  Keras's `model.save` check) to write to; on success it is renamed to `path`, on an exception
  removed."""
  directory, name = os.path.split(path)
  temporary = os.path.join(directory, f".{name}.tmp{suffix}")
  try:
    yield temporary
    os.replace(temporary, path)
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)


def write_text(path, text):
  with atomic_path(path) as temporary:
    with open(temporary, "w") as f:
      f.write(text)


def write_json(path, value, **dump_options):
  """`value` as indented JSON; `dump_options` go to json.dump (e.g. default=str)."""
  write_text(path, json.dumps(value, indent=2, **dump_options))
