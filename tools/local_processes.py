"""What the local launchers (launch_workers.py, launch_tuning.py) share: free ports, prefixed
output, waiting on a group of processes that stands or falls together, and one GPU per process
(--gpus)."""

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import portpicker


def free_ports(count):
  """`count` distinct free ports for the cluster's tasks, from portpicker (as TensorFlow's own
  multi-worker tests pick theirs). Binding port 0 and closing the socket, as this did before,
  hands the port back to the kernel, free for the next process that asks: two launchers at once
  (pytest-xdist workers) could be given the same one. portpicker checks each port free on TCP and
  UDP, never gives this process one twice, and where PORTSERVER_ADDRESS names a running
  portserver (portpicker's `portserver` command) reserves it there for this launcher's life, so
  concurrent launchers cannot collide."""
  return [portpicker.pick_unused_port() for _ in range(count)]


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


# === GPUs: --gpus pins each process to one ===
# Each process sees only its GPU (CUDA_VISIBLE_DEVICES), so concurrent trials or workers do not
# each map every GPU's memory (keras-tuner#220, #329, #413). More processes than GPUs share them
# round-robin, not refused: app.train takes GPU memory as it needs it (memory growth,
# app.distribute.configure_gpu_memory), so small trials fit side by side, and
# --gpu_memory_limit gives each a fixed share of its GPU.
_GPU_ID = re.compile(r"^(\d+|(GPU|MIG)-[0-9A-Za-z/-]+)$")


def parse_gpus(text):
  """'0,1' -> ['0', '1']: CUDA's indices (or GPU-/MIG- UUIDs, as nvidia-smi -L lists them); []
  for ''. ValueError, saying what to pass, for an empty, malformed or repeated entry."""
  if not text.strip():
    return []
  gpus = [gpu.strip() for gpu in text.split(",")]
  bad = [gpu for gpu in gpus if not _GPU_ID.match(gpu)]
  if bad:
    raise ValueError(f"--gpus={text}: {', '.join(map(repr, bad))} is no GPU index or UUID; pass "
                     "e.g. --gpus=0,1 (nvidia-smi's numbers)")
  repeated = sorted({gpu for gpu in gpus if gpus.count(gpu) > 1})
  if repeated:
    raise ValueError(f"--gpus={text} names GPU {', '.join(repeated)} more than once; list each "
                     "GPU once (processes beyond the GPUs share them round-robin)")
  return gpus


def round_robin(names, gpus):
  """{name: GPU}: the i-th process on gpus[i % len(gpus)]; {} without GPUs."""
  return {name: gpus[i % len(gpus)] for i, name in enumerate(names)} if gpus else {}


def gpu_environment(gpus):
  """The variables that show a process only `gpus` (a list of ids): CUDA_VISIBLE_DEVICES, and
  CUDA_DEVICE_ORDER=PCI_BUS_ID unless this launcher's environment sets it, so the ids are
  nvidia-smi's (CUDA numbers the fastest GPU first by default)."""
  return {"CUDA_VISIBLE_DEVICES": ",".join(gpus),
          "CUDA_DEVICE_ORDER": os.environ.get("CUDA_DEVICE_ORDER", "PCI_BUS_ID")}


def describe_gpus(assignment):
  """'GPU 0: tuner0, tuner2; GPU 1: tuner1' for round_robin's {name: GPU}, with a note when
  processes share a GPU."""
  by_gpu = {}
  for name, gpu in assignment.items():
    by_gpu.setdefault(gpu, []).append(name)
  line = "; ".join(f"GPU {gpu}: {', '.join(names)}" for gpu, names in by_gpu.items())
  if len(by_gpu) < len(assignment):
    line += (f" ({len(assignment)} processes on {len(by_gpu)} GPU(s) share them, each taking "
             "memory as it needs it; --gpu_memory_limit caps each one's share)")
  return line


def shown_command(name, variables, command):
  """'[name] VAR=value ... command': what a process is started with (--dry_run prints it)."""
  return " ".join([f"[{name}]", *(f"{key}={shlex.quote(value)}" for key, value in
                                  variables.items()), shlex.join(command)])
