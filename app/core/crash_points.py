"""A testing hook: kill this process (SIGKILL, as a preempted host or kill -9 would) at a named
point, so the tests can resume a run from every point where a process can die.

  CONVTRAIN_CRASH_AT=epoch_end:2 python -m app.train ...   # dies at its 2nd epoch end

CONVTRAIN_CRASH_AT lists `name[:count][@task]` entries, comma-separated: the process dies the
`count`-th time (default 1) it reaches `crash_point(name)`, counted from the process's start;
`@task` limits the entry to the multi-worker process whose TF_CONFIG task index is `task`. With
CONVTRAIN_CRASH_ONCE_DIR=<dir> an entry fires once across all processes (a file named after it
is made there first), so a relaunched cluster runs on. With CONVTRAIN_CRASH_PARENT=1 the parent
process is killed first (an app.tune search dying with its trial). Unset, a call costs a
dictionary lookup. TensorFlow reads no CONVTRAIN_ variable, so tests/commands.py's fork server
can run these commands.

The points (where they are called says exactly when):
  batch_end       app/train/backup.py: a training batch has ended (after its step backup, if any)
  epoch_written   app/train/backup.py: an epoch's history row and checkpoints are written, its
                  backup is not yet the one a rerun resumes from
  epoch_end       app/train/backup.py: the epoch's backup is committed
  evaluate        app/train/train_and_evaluate.py: training is over, the final evaluation begins
  export          app/serving/saved_model.py: the SavedModel is written into the export's hidden
                  staging folder, not yet checked nor renamed to its version
"""

import json
import os
import signal

_VARIABLE, _ONCE_DIR, _PARENT = "CONVTRAIN_CRASH_AT", "CONVTRAIN_CRASH_ONCE_DIR", \
    "CONVTRAIN_CRASH_PARENT"
_reached = {}  # name -> times this process reached it


def _task_index():
  try:
    return int(json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("index", 0))
  except (ValueError, TypeError, AttributeError):
    return 0


def _entries():
  """[(entry as written, name, count, task or None)] of CONVTRAIN_CRASH_AT."""
  entries = []
  for entry in filter(None, (e.strip() for e in os.environ.get(_VARIABLE, "").split(","))):
    point, _, task = entry.partition("@")
    name, _, count = point.partition(":")
    entries.append((entry, name, int(count or 1), int(task) if task else None))
  return entries


def crash_point(name):
  """Dies here (SIGKILL) when CONVTRAIN_CRASH_AT names this point and its count is reached."""
  if _VARIABLE not in os.environ:
    return
  _reached[name] = _reached.get(name, 0) + 1
  for entry, entry_name, count, task in _entries():
    if entry_name != name or _reached[name] != count or task not in (None, _task_index()):
      continue
    once_dir = os.environ.get(_ONCE_DIR)
    if once_dir:
      os.makedirs(once_dir, exist_ok=True)
      try:  # O_EXCL: of the processes reaching it, one fires it
        os.close(os.open(os.path.join(once_dir, entry.replace("/", "_")),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY))
      except FileExistsError:
        continue
    if os.environ.get(_PARENT) == "1":
      os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
