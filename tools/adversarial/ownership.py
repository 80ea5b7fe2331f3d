"""Adversarial cases: ownership (see tools/adversarial/__init__.py). Issue 19's items 1 (a run
taking over another's backup), 2 (two processes in one run, search or backup directory) and 8
(a run killed before its first backup), through real `python -m app.<command>` processes."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from tools.adversarial.common import (Case, command, PYTHON, REPO, refused_in_one_line,
                                      same_weights, TINY)

LONG = TINY[:2] + ("--epochs=30",) + TINY[3:]  # ~10 s of training: time for a second process
CRASH_AT = "CONVTRAIN_CRASH_AT"  # app/core/crash_points.py: SIGKILL at a named point


def _start(module, *args):
  """`python -m module args` started, not waited for; its stderr goes to a temporary file
  (`process.errors()` reads it)."""
  log = tempfile.TemporaryFile("w+")
  process = subprocess.Popen([PYTHON, "-m", module, *map(str, args)], cwd=REPO,
                             env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.DEVNULL,
                             stderr=log, text=True)
  process.errors = lambda: (log.seek(0), log.read())[1]
  return process


def _wait_for(path, process, timeout=300):
  """Waits until `path` exists; False if the process ended first or time ran out."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if os.path.exists(path):
      return True
    if process.poll() is not None:
      return False
    time.sleep(0.005)
  return False


def _stop(process):
  if process.poll() is None:
    process.kill()
  process.wait()


def _digest(folder):
  """A hash of the folder's files (names and bytes)."""
  digest = hashlib.sha256()
  for root, _, names in sorted(os.walk(folder)):
    for name in sorted(names):
      path = os.path.join(root, name)
      digest.update(os.path.relpath(path, folder).encode())
      with open(path, "rb") as f:
        digest.update(f.read())
  return digest.hexdigest()


def _last_line(text):
  lines = [line for line in text.strip().splitlines() if line.strip()]
  return lines[-1] if lines else ""


# === Item 2: one owner per directory ===

def _while_running(first, ready_file, owned, module, *args, finish=False):
  """Runs `python -m module args` once the process `first` has made `ready_file` (so owns the
  directory `owned`); -> (held, detail) of the second's refusal in one line naming `owned` as "in
  use by pid ...", held only if `first` was still running then. With `finish`, waits for `first`
  to end, else kills it."""
  try:
    if not _wait_for(ready_file, first):
      return False, "the first process ended before it began: " + _last_line(first.errors())
    second = command(module, *args)
    alive = first.poll() is None
    if finish:
      first.wait(timeout=600)
  finally:
    _stop(first)
  held, detail = refused_in_one_line(second, f"{owned} is in use by pid")
  if held and not alive:
    return False, "the first process had ended when the second was refused: no overlap shown"
  return held, detail


def two_runs_one_dir(work):
  """The second is refused; the first finishes with its own files (one history, its config)."""
  run_dir = os.path.join(work, "run")
  first = _start("app.train", *LONG, f"--output_dir={run_dir}")
  held, detail = _while_running(first, os.path.join(run_dir, "config.yaml"), run_dir, "app.train",
                                *LONG, "--seed=1", f"--output_dir={run_dir}", finish=True)
  if not held:
    return False, "second run: " + detail
  if first.returncode != 0:
    return False, f"the first run exited with {first.returncode}: {_last_line(first.errors())}"
  with open(os.path.join(run_dir, "history.csv")) as f:
    rows = f.read().splitlines()
  with open(os.path.join(run_dir, "config.yaml")) as f:
    seed = [line for line in f if line.startswith("seed:")]
  if len(rows) != 31 or seed != ["seed: 0\n"]:
    return False, f"history.csv has {len(rows)} lines, config.yaml {seed}"
  return True, detail


def stale_lock_taken_over(work):
  """kill -9 after the first backup: the rerun takes the dead owner's lock and resumes."""
  run_dir = os.path.join(work, "run")
  first = command("app.train", *TINY[:2], "--epochs=3", *TINY[3:], f"--output_dir={run_dir}",
                  env={CRASH_AT: "epoch_end:1"})
  if first.returncode != -signal.SIGKILL:
    return False, f"the first run was not killed after its first backup: {first.returncode}"
  pid = json.load(open(os.path.join(run_dir, ".lock")))["pid"]
  again = command("app.train", *TINY[:2], "--epochs=3", *TINY[3:], f"--output_dir={run_dir}")
  if again.returncode != 0:
    return False, f"the rerun exited with {again.returncode}: {_last_line(again.stderr)}"
  taken = [line for line in again.stderr.splitlines()
           if f"output dir {run_dir} was owned by" in line and "which has ended" in line]
  if not taken or f"pid {pid}" not in taken[0]:
    return False, "the rerun did not log taking over the dead owner's lock"
  return True, taken[0].split("] ", 1)[-1][:160]


def two_searches_one_dir(work):
  """A second search (with --overwrite, which would empty the live one's directory) is refused."""
  search_dir = os.path.join(work, "search")
  flags = (f"--search_dir={search_dir}", "--max_trials=2", "--config.data.limit=256",
           "--config.train.epochs=1", "--config.search.space=optim.learning_rate=log(0.01, 0.1)")
  first = _start("app.tune", *flags)
  return _while_running(first, os.path.join(search_dir, "fingerprint.json"), search_dir,
                        "app.tune", *flags, "--overwrite")


def two_runs_one_backup_dir(work):
  """A run into another output dir but the same backup dir as a live run is refused, unwritten."""
  backup_dir = os.path.join(work, "backup")
  first = _start("app.train", *LONG, f"--output_dir={work}/first",
                 f"--config.train.backup_dir={backup_dir}")
  held, detail = _while_running(first, os.path.join(backup_dir, "run.json"), backup_dir,
                                "app.train", *LONG, f"--output_dir={work}/second",
                                f"--config.train.backup_dir={backup_dir}")
  if held and os.path.exists(os.path.join(work, "second")):
    return False, "the refused run wrote its output dir"
  return held, detail


# === Item 1: a backup belongs to its run ===

def another_runs_backup(work):
  """Two runs with other seeds and rates share a backup dir; the first was killed after its
  first backup. The second must not resume from it (nor delete it); the first resumes."""
  backup_dir = os.path.join(work, "shared")
  first_flags = (*TINY[:2], "--epochs=3", *TINY[3:], "--seed=1", "--learning_rate=0.05",
                 f"--output_dir={work}/first", f"--config.train.backup_dir={backup_dir}")
  first = command("app.train", *first_flags, env={CRASH_AT: "epoch_end:1"})
  if first.returncode != -signal.SIGKILL:
    return False, f"the first run was not killed after its first backup: {first.returncode}"
  before = _digest(backup_dir)
  second = command("app.train", *TINY[:2], "--epochs=3", *TINY[3:], "--seed=2",
                   "--learning_rate=0.1", f"--output_dir={work}/second",
                   f"--config.train.backup_dir={backup_dir}")
  held, detail = refused_in_one_line(second, backup_dir, f"{work}/first", f"{work}/second",
                                     "seed: 1 -> 2")
  if not held:
    return False, "second run: " + detail
  if _digest(backup_dir) != before:
    return False, "the refused run changed the first run's backup"
  again = command("app.train", *first_flags)
  if again.returncode != 0 or "resuming from the backup" not in again.stderr:
    return False, f"the first run did not resume from its backup: {_last_line(again.stderr)}"
  return True, detail


# === Item 8: killed before the first backup ===

def killed_before_first_backup(work):
  run_dir = os.path.join(work, "killed")
  flags = (*TINY[:2], "--epochs=2", *TINY[3:])
  first = command("app.train", *flags, f"--output_dir={run_dir}",  # epoch 1's row written,
                  env={CRASH_AT: "epoch_written:1"})  # its backup not committed
  if first.returncode != -signal.SIGKILL or os.path.exists(
      os.path.join(run_dir, "backup", "state.json")):
    return False, f"the run was not killed before its first backup: {first.returncode}"
  other = command("app.train", *flags, "--seed=1", f"--output_dir={run_dir}")
  held, detail = refused_in_one_line(other, str(run_dir), "seed: 0 -> 1")
  if not held:
    return False, "other settings: " + detail
  again = command("app.train", *flags, f"--output_dir={run_dir}")
  if again.returncode != 0:
    return False, f"the rerun exited with {again.returncode}: {_last_line(again.stderr)}"
  reference = command("app.train", *flags, f"--output_dir={work}/reference")
  if reference.returncode != 0:
    return False, "the uninterrupted run failed: " + _last_line(reference.stderr)
  same, weights = same_weights(run_dir, os.path.join(work, "reference"))
  return same, f"started over; {weights}"


def _launch(work, name, *extra, env=None):
  """tools/launch_workers.py --workers=2 on a small run, started, not waited for."""
  pid_file = os.path.join(work, f"{name}.pids")
  scratch = os.path.join(work, f"{name}-tmp")
  os.makedirs(scratch)
  run_dir = os.path.join(work, name)
  process = subprocess.Popen(
      [PYTHON, "tools/launch_workers.py", "--workers=2", f"--pid_file={pid_file}", *extra, "--",
       PYTHON, "-m", "app.train", "--model=simple_cnn", "--mixed_precision=float32",
       "--epochs=2", "--batch_size=64", "--config.data.limit=1024", "--learning_rate=0.02",
       "--config.optim.warmup_epochs=0", "--config.export.enabled=false",
       f"--output_dir={run_dir}"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO, TMPDIR=scratch, **(env or {})),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)
  return process, run_dir, pid_file


def launcher_restarts_a_run_killed_before_first_backup(work):
  """The chief of a 2-worker cluster killed in epoch 1; --max_restarts=1 starts the run over
  (both workers of the one run owning what they should) to an uninterrupted cluster's weights."""
  reference, reference_dir, _ = _launch(work, "reference")
  output, _ = reference.communicate(timeout=900)
  if reference.returncode != 0:
    return False, "the uninterrupted cluster failed: " + _last_line(output)
  process, run_dir, _ = _launch(  # the chief (task 0) dies in epoch 1, once
      work, "killed", "--max_restarts=1",
      env={CRASH_AT: "batch_end:2@0", "CONVTRAIN_CRASH_ONCE_DIR": os.path.join(work, "once")})
  try:
    output, _ = process.communicate(timeout=900)
  finally:
    _stop(process)
  if process.returncode != 0 or "restarting the cluster" not in output:
    return False, f"the launcher exited with {process.returncode}: {_last_line(output)}"
  if "killed before its first backup" not in output:
    return False, "the restarted chief did not start the run over"
  same, weights = same_weights(run_dir, reference_dir)
  return same, f"restarted and started over; {weights}"


CASES = [
    Case(2, "two_runs_one_dir", two_runs_one_dir),
    Case(2, "stale_lock_taken_over", stale_lock_taken_over),
    Case(2, "two_searches_one_dir", two_searches_one_dir),
    Case(2, "two_runs_one_backup_dir", two_runs_one_backup_dir),
    Case(1, "another_runs_backup", another_runs_backup),
    Case(8, "killed_before_first_backup", killed_before_first_backup),
    Case(8, "launcher_restarts_a_run_killed_before_first_backup",
         launcher_restarts_a_run_killed_before_first_backup),
]

if __name__ == "__main__":
  sys.exit("run through tools/replay_adversarial.py --only=ownership")
