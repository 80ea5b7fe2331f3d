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


_stop_signal = []  # the SIGTERM or SIGINT this launcher received while waiting, if any


def stopped_by_signal():
  """The signal (SIGTERM, SIGINT) that stopped the last wait(), or None: a launcher that was told
  to stop does not restart its processes."""
  return _stop_signal[-1] if _stop_signal else None


def wait(processes):
  """Waits for all processes; on the first failure stops the rest. Returns the first failing exit
  status, or 0. A SIGTERM or SIGINT to this launcher is passed on as one SIGTERM to each process
  (app.train saves a backup at its next batch end and exits: app/train/preemption.py); once all
  have exited, wait returns 128 + that signal and stopped_by_signal() names it."""
  del _stop_signal[:]

  def forward(signum, frame):
    del frame
    if not _stop_signal:
      for p in processes:
        if p.poll() is None:
          p.send_signal(signal.SIGTERM)
    _stop_signal.append(signum)

  if threading.current_thread() is not threading.main_thread():  # only it may take signals
    return _wait(processes)
  previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
  try:
    return _wait(processes)
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)


def _wait(processes):
  while True:
    codes = [p.poll() for p in processes]
    if _stop_signal:
      if all(c is not None for c in codes):
        return 128 + _stop_signal[0]
      time.sleep(0.2)
      continue
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
