"""The command server of tests/commands.py: imports the libraries once, then forks one child per
command, which runs it as `python -m module` or `python script.py` would. Requests and replies are JSON lines on stdin/stdout.

The imports are the libraries only (app.cli imports TensorFlow with its notes hidden, as every
command does first); no command module, so no absl flag is defined and no argv read before a
child sets its own, and no TensorFlow op runs, so no runtime thread exists at the fork.
"""

import json
import os
import runpy
import sys
import traceback


def _preload():
  import app.cli  # pylint: disable=g-import-not-at-top,unused-import  # TensorFlow, quietly
  import keras  # pylint: disable=g-import-not-at-top,unused-import
  import keras_tuner  # pylint: disable=g-import-not-at-top,unused-import
  import matplotlib.pyplot  # pylint: disable=g-import-not-at-top,unused-import
  import tensorflow_datasets  # pylint: disable=g-import-not-at-top,unused-import
  import app.train.train_and_evaluate  # pylint: disable=g-import-not-at-top,unused-import
  from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top
  assert not context.context()._initialized, "the preload started TensorFlow's runtime"  # pylint: disable=protected-access


def _exit_status(error):
  """What the interpreter exits with for SystemExit(code)."""
  if error.code is None:
    return 0
  if isinstance(error.code, int):
    return error.code & 0xFF
  print(error.code, file=sys.stderr)
  return 1


def _run_child(request):
  """In the forked child: become `python -m module args` and exit with its status."""
  os.chdir(request["cwd"])
  os.environ.clear()
  os.environ.update(request["env"])
  stdin = os.open(os.devnull, os.O_RDONLY)
  stdout = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
  stderr = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
  for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
    os.dup2(fd, target)
    os.close(fd)
  target = request["target"]
  sys.argv = [target, *request["args"]]
  status = 0
  try:
    if request["script"]:  # python path/to/script.py: the script's folder comes first
      sys.path[0] = os.path.dirname(os.path.abspath(target))
      runpy.run_path(target, run_name="__main__")
    else:  # python -m: the working directory comes first
      sys.path[0] = request["cwd"]
      runpy.run_module(target, run_name="__main__", alter_sys=True)
  except SystemExit as e:
    status = _exit_status(e)
  except BaseException:  # pylint: disable=broad-except  # as the interpreter reports it
    traceback.print_exc()
    status = 1
  try:  # the interpreter's own shutdown: join non-daemon threads, then atexit functions
    import atexit  # pylint: disable=g-import-not-at-top
    import threading  # pylint: disable=g-import-not-at-top
    threading._shutdown()  # pylint: disable=protected-access
    atexit._run_exitfuncs()  # pylint: disable=protected-access
  finally:
    for stream in (sys.stdout, sys.stderr):
      try:
        stream.flush()
      except Exception:  # pylint: disable=broad-except
        pass
    os._exit(status)  # pylint: disable=protected-access


def main():
  _preload()
  replies = sys.stdout
  print("ready", file=replies, flush=True)
  for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
      _run_child(request)
    print(json.dumps({"pid": pid}), file=replies, flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), file=replies, flush=True)


if __name__ == "__main__":
  main()
