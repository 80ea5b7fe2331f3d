"""tools/local_processes.py: a launcher told to stop (SIGTERM, Ctrl-C) passes one SIGTERM to each
of its processes, waits for them, and says it was stopped, so tools/launch_workers.py does not
restart them."""

import os
import signal
import subprocess
import sys
import threading

from tools import local_processes

# Exits 143 on SIGTERM, as app.train does after its backup; says when it got one.
_WORKER = """import signal, sys, time
def stop(signum, frame):
  print("SIGTERM", flush=True)
  sys.exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_signal_to_the_launcher_is_passed_on_once_and_ends_the_wait():
  workers = [subprocess.Popen([sys.executable, "-c", _WORKER], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
  for worker in workers:
    assert worker.stdout.readline() == "ready\n"
  saved = signal.getsignal(signal.SIGINT)
  threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()  # Ctrl-C
  assert local_processes.wait(workers) == 128 + signal.SIGINT
  assert local_processes.stopped_by_signal() == signal.SIGINT
  assert signal.getsignal(signal.SIGINT) is saved
  for worker in workers:
    assert worker.returncode == 128 + signal.SIGTERM
    assert worker.stdout.read() == "SIGTERM\n"  # one, not one per signal


def test_a_failed_process_is_no_stop_signal():
  workers = [subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])]
  assert local_processes.wait(workers) == 3
  assert local_processes.stopped_by_signal() is None
