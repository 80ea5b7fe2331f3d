"""Staging folders: a writer builds its output in a hidden folder beside the target and renames
it into place (app/serving/saved_model.py's exports), so a reader never sees half of it. A
writer killed midway leaves its folder behind; the next writer into the same place removes
those, never one a live writer is building.

Each staging folder holds a lock file, flocked by its writer from the folder's first instant to
its end. The kernel drops the lock when its process dies, however it dies (SIGKILL included),
so a free lock means an abandoned folder: no guessing from pids or ages (app/core/ownership.py
uses flock the same way; Linux maps flock onto NFS locks, so hosts sharing the folder see each
other's). A cleaner takes the lock before it removes a folder, and a new writer checks that its
lock file is still the one in its folder, so one that a cleaner took in the instant before its
lock tries again with a new folder. Where the file system cannot lock at all, a writer goes on
unlocked and a cleaner removes nothing.
"""

import fcntl
import os
import shutil
import tempfile

LOCK_FILE = ".lock"


def _lock(path):
  """An open descriptor of `path`, created if need be, flocked exclusively; None when another
  process holds it or `path`'s folder is gone. OSError where the file system cannot lock."""
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except FileNotFoundError:
    return None
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    os.close(fd)
    return None
  except OSError:
    os.close(fd)
    raise
  return fd


def new_folder(base, prefix):
  """(path, lock) of a new staging folder `<base>/<prefix>XXXXXXXX`, locked by this process
  until release(lock); lock is None where the file system cannot lock."""
  while True:
    folder = tempfile.mkdtemp(prefix=prefix, dir=base)
    lock_path = os.path.join(folder, LOCK_FILE)
    try:
      fd = _lock(lock_path)
    except OSError:
      return folder, None
    try:
      if fd is not None and os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
        return folder, fd
    except FileNotFoundError:  # a cleaner removed it before the lock: another folder
      pass
    if fd is not None:
      os.close(fd)


def release(lock):
  """Ends the writer's hold on its folder (remove the folder first)."""
  if lock is not None:
    os.close(lock)


def remove_abandoned(base, prefix):
  """Removes the staging folders `<base>/<prefix>*` whose lock is free (their writers died; an
  earlier version's folders have no lock file at all); returns their names."""
  removed = []
  for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
    path = os.path.join(base, name)
    if not name.startswith(prefix) or not os.path.isdir(path):
      continue
    try:
      fd = _lock(os.path.join(path, LOCK_FILE))
    except OSError:  # cannot tell: keep it
      continue
    if fd is None:  # a live writer's
      continue
    try:
      shutil.rmtree(path, ignore_errors=True)
      removed.append(name)
    finally:
      os.close(fd)
  return removed
