"""What a process prints: native libraries' fd-2 chatter hidden, TensorFlow's logging quiet."""

import contextlib
import logging
import os
import sys


@contextlib.contextmanager
def native_stderr_hidden():
  """Points file descriptor 2 at /dev/null for the block: native code (TensorFlow's C++ start-up
  notes, libjpeg's complaints) writes there directly, past Python's sys.stderr. Restored on exit,
  exceptions included, so a traceback still shows."""
  sys.stderr.flush()
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


class _DropLibraryInfo(logging.Filter):
  """INFO lines that TensorFlow and tf2onnx log through absl (SavedModel signature renames,
  saver timings, ONNX optimizer passes) would drown ours; their warnings still show."""

  _LIBRARIES = (f"{os.sep}tensorflow{os.sep}", f"{os.sep}tf2onnx{os.sep}")

  def filter(self, record):
    return record.levelno >= logging.WARNING or not any(
        library in record.pathname for library in self._LIBRARIES)


def quiet_tensorflow():
  """Imports TensorFlow with its start-up notes hidden and its INFO logging off, unless
  TF_CPP_MIN_LOG_LEVEL=0 asks for them. Call before anything imports TensorFlow.

  TF 2.21 prints oneDNN/CUDA notes to fd 2 before its log level applies (and again on the first
  device query). A failed import still raises with its traceback: fd 2 is restored first."""
  if os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2") == "0":
    return
  with native_stderr_hidden():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.list_physical_devices()  # not logical: runtime.cpu_devices may still split the CPU
  logging.getLogger("tensorflow").setLevel(logging.WARNING)
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  handler = absl_logging.get_absl_handler()
  if not any(isinstance(f, _DropLibraryInfo) for f in handler.filters):  # called again: once
    handler.addFilter(_DropLibraryInfo())


def fail(message):
  """The one-line error every command prints for bad input: `error: ...`, exit status 2."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)
