"""Who owns a directory: a run directory, a search directory or a backup folder has one owner
process at a time, for that process's whole life.

The owner holds an exclusive flock on <dir>/.lock, opened once and kept open until the process
exits. The kernel drops the lock when its process dies, however it dies (SIGKILL included), so a
dead owner's lock is free for the taking and a live one's cannot be taken: there is no stale-lock
guessing from pids or times. flock locks belong to the open file, not the process (fcntl's POSIX
locks vanish when any descriptor of the file is closed); Linux maps flock onto NFS byte-range
locks, so hosts that share a directory over NFS see each other's locks. The file also holds the
owner's record (pid, host, time, command) for the line that refuses a second process, and for the
log line of the process that takes over a dead owner's directory. Each holder writes its own in
place as it takes the lock (a holder that did not name itself would have a third process told of
a dead one); one refused for other reasons gives it back as it was (`release(restore=True)`).

The lock file is never renamed over or removed while its directory lives: a new file would give a
second process a lock of its own. It is not part of the directory's content (`is_empty`).
"""

import datetime
import fcntl
import json
import os
import socket
import sys

from absl import logging

from app.core.errors import UsageError

LOCK_FILE = ".lock"

_held = {}  # real path of a directory this process owns -> (lock file descriptor, Owner before us)


class Owner(dict):
  """A lock file's record: {"pid", "host", "since", "command"}."""

  def describe(self):
    command = self.get("command") or ""
    command = " ".join(map(str, command)) if isinstance(command, list) else str(command)
    command = command if len(command) <= 80 else command[:77] + "..."
    return (f"pid {self.get('pid', '?')} on {self.get('host', '?')} since "
            f"{self.get('since', '?')}" + (f" ({command})" if command else ""))

  def is_this_process(self):
    return self.get("pid") == os.getpid() and self.get("host") == socket.gethostname()


def _program():
  """`python -m app.train` for the commands (app/cli/<command>.py runs as app.<command>), else the
  script's name."""
  if not sys.argv or sys.argv[0] in ("", "-c"):
    return "python -c"
  path = os.path.abspath(sys.argv[0])
  parts = [os.path.splitext(os.path.basename(path))[0]]
  folder = os.path.dirname(path)
  while folder and os.path.exists(os.path.join(folder, "__init__.py")):
    parts.insert(0, os.path.basename(folder))
    folder = os.path.dirname(folder)
  if len(parts) == 1:
    return os.path.basename(path)
  module = ".".join(parts).replace("app.cli.", "app.", 1)
  return f"python -m {module}"


def _this_process():
  since = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
  return Owner(pid=os.getpid(), host=socket.gethostname(), since=since,
               command=[_program()] + sys.argv[1:])


def _read(fd):
  """The record in an open lock file, or an empty Owner when it holds none (yet)."""
  try:
    loaded = json.loads(os.pread(fd, 65536, 0).decode() or "{}")
  except (OSError, ValueError):
    return Owner()
  return Owner(loaded) if isinstance(loaded, dict) else Owner()


def read_owner(path):
  """The record of the lock file in directory `path` (whoever holds it, or held it last), or an
  empty Owner."""
  try:
    fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDONLY)
  except OSError:
    return Owner()
  try:
    return _read(fd)
  finally:
    os.close(fd)


def is_empty(path):
  """True when `path` is missing, or a directory holding nothing but a lock file."""
  return not os.path.exists(path) or (
      os.path.isdir(path) and not [n for n in os.listdir(path) if n != LOCK_FILE])


def has_lock_file(path):
  return os.path.exists(os.path.join(path, LOCK_FILE))


def _still_held(key):
  """Whether this process's lock on `key` is on the lock file that is there now (a directory
  removed and made again has a new one)."""
  fd, _ = _held[key]
  try:
    return os.stat(os.path.join(key, LOCK_FILE)).st_ino == os.fstat(fd).st_ino
  except OSError:
    return False


def claim(path, what, fix, create=True, quiet=False):
  """Makes this process the owner of directory `path` until it exits; returns the record of the
  owner before it (a process that has ended; an empty Owner for a new lock file).

  `what` names the directory in messages ("output dir"), `fix` is the way out a refused user is
  given ("pass a new --output_dir"). A live owner (another process, here or on a host sharing the
  file system) -> UsageError naming it. With create=False a directory without a lock file is left
  as it is (claim it once it is made); the call then returns None. Taking over a dead owner's lock
  is logged unless `quiet`. Claiming a directory this process owns already returns at once.
  """
  key = os.path.realpath(path)
  if key in _held:
    if _still_held(key):
      return _held[key][1]
    os.close(_held.pop(key)[0])
  lock_path = os.path.join(path, LOCK_FILE)
  for _ in range(3):  # a lock file removed while we locked it: lock the one there now
    fd = _open(lock_path, path, what, fix, create)
    if fd is None:
      return None
    _lock(fd, path, what, fix)
    try:
      if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
        break
    except FileNotFoundError:
      pass
    os.close(fd)
  else:
    raise UsageError(f"{what} {path} is being removed and made again by another process; {fix}")
  previous = _read(fd)
  os.ftruncate(fd, 0)
  os.pwrite(fd, json.dumps(_this_process()).encode(), 0)
  _held[key] = (fd, previous)
  if previous and not previous.is_this_process() and not quiet:
    log_takeover(what, path, previous)
  return previous


def _open(lock_path, path, what, fix, create):
  """The lock file's descriptor; None when it does not exist and `create` is False."""
  if not create and not os.path.exists(lock_path):
    return None
  try:
    if create:
      os.makedirs(path, exist_ok=True)
    return os.open(lock_path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
  except FileNotFoundError:
    if not create:  # removed since the check above: nothing to own yet
      return None
    raise UsageError(f"cannot make {what} {path}; {fix}") from None
  except OSError as e:
    raise UsageError(f"cannot make or lock {what} {path} ({e.strerror}); {fix}") from None


def _lock(fd, path, what, fix):
  """flock without waiting; a live owner -> UsageError naming it."""
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    owner = _read(fd)
    os.close(fd)
    pid = owner.get("pid")
    stop = f" (or stop it: kill {pid})" if pid and owner.get("host") == socket.gethostname() else ""
    holder = owner.describe() if owner else "another process"
    message = f"{what} {path} is in use by {holder}; wait for it to end{stop}, or {fix}"
    raise UsageError(message) from None


def log_takeover(what, path, previous):
  logging.warning("%s %s was owned by %s, which has ended; this process owns it now", what, path,
                  previous.describe())


def owns(path):
  """Whether this process holds the lock of directory `path`."""
  key = os.path.realpath(path)
  return key in _held and _still_held(key)


def release(path, restore=False):
  """Gives up this process's lock of directory `path` before the process ends (a process done
  with a directory that another may take now). With `restore`, the lock file gets back the record
  of the owner before this process (one refused for other reasons leaves it as it found it)."""
  entry = _held.pop(os.path.realpath(path), None)
  if entry:
    fd, previous = entry
    if restore:
      os.ftruncate(fd, 0)
      os.pwrite(fd, json.dumps(previous).encode() if previous else b"", 0)
    os.close(fd)
