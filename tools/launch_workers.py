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

With --gpus=0,1 worker i sees only GPU i mod 2 (CUDA_VISIBLE_DEVICES, nvidia-smi's numbering);
more workers than GPUs share them round-robin (app.train takes GPU memory as it needs it, and
--gpu_memory_limit caps it). --dry_run prints what each worker would be started with:

  .venv/bin/python tools/launch_workers.py --workers=2 --gpus=0,1 --dry_run -- \
      .venv/bin/python -m app.train --epochs=2 --output_dir=runs/two_workers
"""

import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from tools import local_processes  # pylint: disable=g-import-not-at-top,wrong-import-position
from tools.local_processes import free_ports, relay, stopped_by_signal, wait, write_pids  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_integer("workers", 2, "Workers to start (worker 0 is the chief).")
flags.DEFINE_integer("max_restarts", 0, "Restart the cluster this many times after a failure.")
flags.DEFINE_string("pid_file", "", "Write the workers' PIDs here, one per line.")
flags.DEFINE_string("gpus", "", "GPUs to spread the workers over, e.g. 0,1 (nvidia-smi's "
                    "numbers): worker i sees only GPU i mod N (CUDA_VISIBLE_DEVICES). Empty: "
                    "every worker sees every GPU.")
flags.DEFINE_boolean("dry_run", False, "Print each worker's environment variables and command, "
                     "and start none.")


def cluster(count, gpus=()):
  """[(name, the variables set for it)]: worker i of `count` with its TF_CONFIG (free local
  ports) and, with `gpus`, one of them (round-robin)."""
  hosts = [f"localhost:{port}" for port in free_ports(count)]
  names = [f"worker {index}" for index in range(count)]
  on_gpu = local_processes.round_robin(names, gpus)
  planned = []
  for index, name in enumerate(names):
    variables = {"TF_CONFIG": json.dumps(
        {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})}
    if gpus:
      variables.update(local_processes.gpu_environment([on_gpu[name]]))
    planned.append((name, variables))
  return planned


def start_cluster(command, count, pid_file, gpus=()):
  workers = []
  for name, variables in cluster(count, gpus):
    # A session of its own: Ctrl-C reaches the launcher alone, which passes one SIGTERM on.
    worker = subprocess.Popen(command, env=dict(os.environ, **variables), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    relay(f"[{name}]", worker)
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
  try:
    gpus = local_processes.parse_gpus(flags.FLAGS.gpus)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  planned = cluster(flags.FLAGS.workers, gpus)  # each start below picks its own free ports
  if gpus:
    on_gpu = {name: variables["CUDA_VISIBLE_DEVICES"] for name, variables in planned}
    print(f"[launcher] {local_processes.describe_gpus(on_gpu)}", flush=True)
  if flags.FLAGS.dry_run:
    for name, variables in planned:
      print(local_processes.shown_command(name, variables, command))
    return 0
  for attempt in range(flags.FLAGS.max_restarts + 1):
    workers = start_cluster(command, flags.FLAGS.workers, flags.FLAGS.pid_file, gpus)
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
