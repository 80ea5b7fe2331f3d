"""Every path a run writes, checked in one place before any work: the run directory, its backup
folder, the export root and the data cache. A path that names a file, runs through one, or lies
under a folder that cannot be written is one line naming the flag to change, where before the
run trained to the end and then failed with a traceback (an --export_dir that is a file) or
failed as it started (a cache_dir that is a file). Add a path here when a run writes a new one."""

import os

from app.core.errors import UsageError


def written_paths(config):
  """[(what, path, flag)]: the folders a run of the resolved `config` writes into (those set)."""
  paths = [("output dir", config.output_dir, "--output_dir"),
           ("backup dir", config.train.backup_dir, "--config.train.backup_dir")]
  if config.export.enabled:  # the export goes to <export.dir>/<name>/<version>
    paths += [("export dir", config.export.dir, "--export_dir"),
              ("export dir", os.path.join(config.export.dir, config.name), "--export_dir")]
  if config.data.cache and config.data.cache_dir:
    paths.append(("cache dir", config.data.cache_dir, "--config.data.cache_dir"))
  return [(what, path, flag) for what, path, flag in paths if path]


def require_writable_dir(path, what, flag):
  """UsageError unless `path` is a folder this process can write in, or can be made: nothing on
  the way to it is a file and its nearest existing ancestor is a writable folder."""
  existing = os.path.abspath(path)
  while not os.path.lexists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    where = "is a file" if existing == os.path.abspath(path) else f"lies under {existing}, a file"
    raise UsageError(f"{what} {path} {where}, not a folder; pass a folder to {flag}")
  if not os.access(existing, os.W_OK | os.X_OK):
    where = "" if existing == os.path.abspath(path) else f" ({existing}, where it would be made)"
    raise UsageError(f"{what} {path} is not writable by this user{where}; pass a writable "
                     f"folder to {flag}")


def require_writable(config):
  """Checks every path of written_paths(config) (UsageError on the first that cannot be written)."""
  for what, path, flag in written_paths(config):
    require_writable_dir(path, what, flag)
