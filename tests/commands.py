"""Runs the app's commands as a user does, `python -m app.<command> ARGS` (or `python tools/X.py
ARGS`) in a process of its own,
without paying TensorFlow's import (~5 s of CPU, most of a refused command's time) each time.

One server process per test process (tests/command_server.py) imports TensorFlow, Keras and the
libraries the commands use, and nothing else: no command module, no flag definition, no TensorFlow
op, so its runtime and thread pools have not started. For each command it forks a child that runs
the command module as `__main__` (runpy, as `python -m` does) with its own argv, cwd, environment,
stdin (/dev/null), stdout and stderr (files), and exits with the command's status.

What the child cannot show is what TensorFlow prints or reads while it loads, before any command
code runs: start-up notes on stderr, and the environment variables read at import (TF_CPP_*,
TF_ENABLE_ONEDNN_OPTS, CUDA_VISIBLE_DEVICES, thread counts). `run(..., fresh_interpreter=True)`,
and any `env` that changes such a variable, start a real `python -m` instead.
"""

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Environment variables TensorFlow (or its libraries) read while loading: a command given any of
# these must start a fresh interpreter to see it.
_READ_AT_IMPORT = ("TF_CPP_", "TF_ENABLE_", "TF_NUM_", "CUDA_", "OMP_", "KMP_", "ONEDNN_",
                   "DNNL_", "PYTHON", "LD_", "XLA_FLAGS", "TF_XLA_FLAGS")

_server = None  # this process's server: subprocess.Popen, started on first use


def _start_server():
  global _server
  if _server is None or _server.poll() is not None:
    _server = subprocess.Popen([sys.executable, "-m", "tests.command_server"], cwd=REPO,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = _server.stdout.readline()
    if ready.strip() != "ready":
      raise RuntimeError(f"tests/command_server.py did not start: {ready!r}")
    atexit.register(_server.kill)
  return _server


def _needs_fresh_interpreter(env):
  if env is None:
    return False
  changed = {key for key in set(env) | set(os.environ) if env.get(key) != os.environ.get(key)}
  return any(key.startswith(_READ_AT_IMPORT) for key in changed)


def run(target, *args, cwd=REPO, env=None, timeout=300, fresh_interpreter=False):
  """`python -m target args` (a module name) or `python target args` (a path ending in .py,
  relative to cwd) -> subprocess.CompletedProcess (text stdout and stderr), as
  subprocess.run(..., capture_output=True, text=True) returns it; raises
  subprocess.TimeoutExpired after `timeout` seconds, the command killed."""
  script = target.endswith(".py")
  command = [sys.executable, *([] if script else ["-m"]), target, *[str(a) for a in args]]
  if fresh_interpreter or _needs_fresh_interpreter(env):
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
  server = _start_server()
  with tempfile.TemporaryDirectory() as scratch:
    out, err = os.path.join(scratch, "stdout"), os.path.join(scratch, "stderr")
    request = {"target": target, "script": script, "args": [str(a) for a in args], "cwd": str(cwd),
               "env": dict(os.environ if env is None else env), "stdout": out, "stderr": err}
    server.stdin.write(json.dumps(request) + "\n")
    server.stdin.flush()
    pid = json.loads(server.stdout.readline())["pid"]
    ready, _, _ = select.select([server.stdout], [], [], timeout)
    if not ready:
      os.kill(pid, signal.SIGKILL)
      server.stdout.readline()  # the server reaps it and reports
      raise subprocess.TimeoutExpired(command, timeout)
    status = json.loads(server.stdout.readline())["returncode"]
    with open(out, errors="replace") as f_out, open(err, errors="replace") as f_err:
      return subprocess.CompletedProcess(command, status, f_out.read(), f_err.read())
