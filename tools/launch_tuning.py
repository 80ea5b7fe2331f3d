r"""Distributed tuning on this machine: a KerasTuner chief (the oracle) and N workers (trials).

  .venv/bin/python tools/launch_tuning.py --workers=2 -- \
      --config=configs/tune_fashion_mnist.py --search_dir=runs/search --max_trials=20

Starts `python -m app.tune <args after -->` N+1 times with KERASTUNER_TUNER_ID=chief, tuner0,
tuner1, ... and KERASTUNER_ORACLE_IP/PORT = localhost and a free port: the chief serves the oracle
and writes the results, each worker asks it for trials and runs them. Output is prefixed with
[chief] / [tuner i]. When one process fails, the others are stopped. On a cluster set the same
three variables per host yourself (README, "Search").
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from tools.local_processes import free_ports, relay, wait, write_pids  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_integer("workers", 2, "Tuner workers to start beside the chief.")
flags.DEFINE_string("pid_file", "", "Write the chief's and the workers' PIDs here, one per line.")


def start(tune_args, workers):
  """The chief, then the workers, all pointed at the chief's oracle on a free local port."""
  port = free_ports(1)[0]
  processes = []
  for name in ["chief"] + [f"tuner{i}" for i in range(workers)]:
    env = dict(os.environ, KERASTUNER_TUNER_ID=name, KERASTUNER_ORACLE_IP="localhost",
               KERASTUNER_ORACLE_PORT=str(port))
    process = subprocess.Popen([sys.executable, "-m", "app.tune", *tune_args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    relay(f"[{name}]", process)
    processes.append(process)
  return processes


def main(argv):
  tune_args = argv[1:]
  if tune_args and tune_args[0] == "--":
    tune_args = tune_args[1:]
  if flags.FLAGS.workers < 1:
    print("error: --workers must be 1 or more", file=sys.stderr)
    return 2
  processes = start(tune_args, flags.FLAGS.workers)
  if flags.FLAGS.pid_file:
    write_pids(flags.FLAGS.pid_file, processes)
  code = wait(processes)
  time.sleep(0.2)  # let the relays print the last lines
  if code:
    print(f"[launcher] a tuning process exited with status {code}", file=sys.stderr)
  return code


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
