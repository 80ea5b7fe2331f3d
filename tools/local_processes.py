"""What the local launchers (launch_workers.py, launch_tuning.py) share: free ports, prefixed
output, and waiting on a group of processes that stands or falls together."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time


def free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def relay(prefix, process):
  """Copies the process's (text, merged) stdout to ours, each line prefixed, from a thread."""
  def copy():
    for line in iter(process.stdout.readline, ""):
      sys.stdout.write(f"{prefix} {line}")
      sys.stdout.flush()
  threading.Thread(target=copy, daemon=True).start()


def wait(processes):
  """Waits for all processes; on the first failure stops the rest. Returns the first failing exit
  status, or 0."""
  while True:
    codes = [p.poll() for p in processes]
    failed = [c for c in codes if c not in (None, 0)]
    if failed:
      for p in processes:
        if p.poll() is None:
          p.send_signal(signal.SIGTERM)
      for p in processes:
        try:
          p.wait(timeout=30)
        except subprocess.TimeoutExpired:
          p.kill()
      return failed[0]
    if all(c == 0 for c in codes):
      return 0
    time.sleep(0.2)


def write_pids(path, processes):
  """One PID per line, written atomically."""
  with open(path + ".tmp", "w") as f:
    f.write("".join(f"{p.pid}\n" for p in processes))
  os.replace(path + ".tmp", path)
