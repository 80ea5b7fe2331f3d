r"""Starts an N-worker MultiWorkerMirroredStrategy cluster on this machine (local ports).

  .venv/bin/python tools/launch_workers.py --workers=2 -- \
      .venv/bin/python -m app.train --epochs=2 --output_dir=runs/two_workers

Each worker runs the command after `--` with its own TF_CONFIG (worker i of N, ports picked free
on localhost); app.train's --strategy=auto then picks MultiWorkerMirroredStrategy. Worker output
is prefixed with [worker i]. When a worker fails, the others are stopped; with --max_restarts=K
the whole cluster is started again (up to K times) and app.train resumes from its backup in the
run directory (or starts over a run killed before its first backup), as a preempted cluster would
on real hosts; each restart waits until every worker of the last start has exited, so the chief's
lock on the run directory (app/core/ownership.py) is free for the new chief. Worker PIDs are
written to --pid_file (one line per worker, rewritten at each start) so a worker can be killed to
try that out. SIGTERM or Ctrl-C to the launcher passes one SIGTERM to each worker, which
saves a backup and exits (app/train/preemption.py); the launcher then exits with 128 + the
signal, without restarting.
"""

import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from tools.local_processes import free_ports, relay, stopped_by_signal, wait, write_pids  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_integer("workers", 2, "Workers to start (worker 0 is the chief).")
flags.DEFINE_integer("max_restarts", 0, "Restart the cluster this many times after a failure.")
flags.DEFINE_string("pid_file", "", "Write the workers' PIDs here, one per line.")


def start_cluster(command, count, pid_file):
  hosts = [f"localhost:{port}" for port in free_ports(count)]
  workers = []
  for index in range(count):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}))
    # A session of its own: Ctrl-C reaches the launcher alone, which passes one SIGTERM on.
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    relay(f"[worker {index}]", worker)
    workers.append(worker)
  if pid_file:
    write_pids(pid_file, workers)
  return workers


def main(argv):
  command = argv[1:]
  if command and command[0] == "--":
    command = command[1:]
  if not command:
    print("error: give the command to run after --, e.g. -- .venv/bin/python -m app.train",
          file=sys.stderr)
    return 2
  if flags.FLAGS.workers < 1:
    print("error: --workers must be 1 or more", file=sys.stderr)
    return 2
  for attempt in range(flags.FLAGS.max_restarts + 1):
    workers = start_cluster(command, flags.FLAGS.workers, flags.FLAGS.pid_file)
    code = wait(workers)
    for worker in workers:  # a killed one may not have died yet, and its locks go when it does
      worker.wait()
    if code == 0:
      return 0
    if stopped_by_signal():  # told to stop: the workers saved their backup; no restart
      print(f"[launcher] stopped by {signal.Signals(stopped_by_signal()).name}; run the same "
            "command again to resume", file=sys.stderr)
      return code
    if attempt < flags.FLAGS.max_restarts:
      print(f"[launcher] a worker exited with status {code}; restarting the cluster "
            f"({attempt + 1} of {flags.FLAGS.max_restarts})", flush=True)
  print(f"[launcher] a worker exited with status {code}", file=sys.stderr)
  return code


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
