r"""Distributed tuning on this machine: a KerasTuner chief (the oracle) and N workers (trials).

  .venv/bin/python tools/launch_tuning.py --workers=2 -- \
      --config=configs/tune_fashion_mnist.py --search_dir=runs/search --max_trials=20

Starts `python -m app.tune <args after -->` N+1 times with KERASTUNER_TUNER_ID=chief, tuner0,
tuner1, ... and KERASTUNER_ORACLE_IP/PORT = localhost and a free port: the chief serves the oracle
and writes the results, each worker asks it for trials and runs them. Output is prefixed with
[chief] / [tuner i]. When one process fails, the others are stopped. On a cluster set the same
three variables per host yourself (README, "Search").

With --gpus=0,1 worker i sees only GPU i mod 2 (CUDA_VISIBLE_DEVICES, nvidia-smi's numbering),
so concurrent trials do not each take every GPU's memory (keras-tuner#220, #329, #413); more
workers than GPUs share them round-robin (each trial takes memory as it needs it; pass
--gpu_memory_limit=4GiB after -- to cap each one's share). --dry_run prints what each process
would be started with:

  .venv/bin/python tools/launch_tuning.py --workers=4 --gpus=0,1 --dry_run -- \
      --config=configs/tune_fashion_mnist.py --search_dir=runs/search
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from tools import local_processes  # pylint: disable=g-import-not-at-top,wrong-import-position
from tools.local_processes import free_ports, relay, wait, write_pids  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_integer("workers", 2, "Tuner workers to start beside the chief.")
flags.DEFINE_string("pid_file", "", "Write the chief's and the workers' PIDs here, one per line.")
flags.DEFINE_string("gpus", "", "GPUs to spread the workers over, e.g. 0,1 (nvidia-smi's "
                    "numbers): worker i sees only GPU i mod N (CUDA_VISIBLE_DEVICES), so its "
                    "trials do not take the others' memory; the chief, which trains nothing "
                    "during the search, sees them all (for --retrain). Empty: every process sees "
                    "every GPU.")
flags.DEFINE_boolean("dry_run", False, "Print each process's environment variables and command, "
                     "and start none.")


def processes(tune_args, workers, gpus=()):
  """[(name, the variables set for it, command)]: the chief, then the workers, all pointed at the
  chief's oracle on a free local port; with `gpus`, each worker on one of them (round-robin)."""
  port = free_ports(1)[0]
  names = ["chief"] + [f"tuner{i}" for i in range(workers)]
  visible = {"chief": list(gpus), **{name: [gpu] for name, gpu in
                                      local_processes.round_robin(names[1:], gpus).items()}}
  planned = []
  for name in names:
    variables = dict(KERASTUNER_TUNER_ID=name, KERASTUNER_ORACLE_IP="localhost",
                     KERASTUNER_ORACLE_PORT=str(port))
    if gpus:
      variables.update(local_processes.gpu_environment(visible[name]))
    planned.append((name, variables, [sys.executable, "-m", "app.tune", *tune_args]))
  return planned


def start(planned):
  """Starts processes() output, each one's output relayed with its name."""
  started = []
  for name, variables, command in planned:
    process = subprocess.Popen(command, env=dict(os.environ, **variables),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    relay(f"[{name}]", process)
    started.append(process)
  return started


def main(argv):
  tune_args = argv[1:]
  if tune_args and tune_args[0] == "--":
    tune_args = tune_args[1:]
  if flags.FLAGS.workers < 1:
    print("error: --workers must be 1 or more", file=sys.stderr)
    return 2
  try:
    gpus = local_processes.parse_gpus(flags.FLAGS.gpus)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  planned = processes(tune_args, flags.FLAGS.workers, gpus)
  if gpus:
    workers = {name: variables["CUDA_VISIBLE_DEVICES"] for name, variables, _ in planned[1:]}
    print(f"[launcher] {local_processes.describe_gpus(workers)}; the chief sees GPU "
          f"{planned[0][1]['CUDA_VISIBLE_DEVICES']}", flush=True)
  if flags.FLAGS.dry_run:
    for name, variables, command in planned:
      print(local_processes.shown_command(name, variables, command))
    return 0
  started = start(planned)
  if flags.FLAGS.pid_file:
    write_pids(flags.FLAGS.pid_file, started)
  code = wait(started)
  time.sleep(0.2)  # let the relays print the last lines
  if code:
    print(f"[launcher] a tuning process exited with status {code}", file=sys.stderr)
  return code


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
