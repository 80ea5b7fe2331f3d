"""What every entry script shares: one-line errors with exit status 2, and quiet TF logging."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from app.errors import UsageError  # pylint: disable=g-import-not-at-top,wrong-import-position


def config_keys_help():
  """Every config key with its default and comment, read from the schema (configs/default.py),
  so --help documents the --config.<key> overrides without a second copy to keep in sync."""
  import re  # pylint: disable=g-import-not-at-top
  import configs  # pylint: disable=g-import-not-at-top
  with open(os.path.join(os.path.dirname(configs.__file__), "default.py")) as f:
    lines = re.findall(r"^  config\.([\w.]+) = (.+?)(?:  # (.*))?$", f.read(), re.MULTILINE)
  rows = [f"  --config.{key}={value}  {comment}".rstrip()
          for key, value, comment in lines if not value.startswith("ml_collections.")]
  return "Config keys (recipe defaults may differ; see configs/default.py):\n" + "\n".join(rows)


def fail(message):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def parse_flags(argv):
  """absl's parser, but a bad flag is one line and exit status 2 instead of absl's usage dump."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(str(e).strip().splitlines()[0])
  except UsageError as e:
    fail(e)


def run_main(main):
  """Wraps an absl main: UsageError -> one line on stderr, exit status 2; bugs keep tracebacks."""

  def wrapped(argv):
    try:
      return main(argv)
    except UsageError as e:
      fail(e)

  return wrapped
