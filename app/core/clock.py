"""The whole command's clock: seconds since this process started, as a user's `time` counts them
(Python's start-up and TensorFlow's import included), which --time_budget bounds.

Linux says when a process started (/proc/self/stat, field 22, in clock ticks since boot); a
process forked from another (the test suite's command server) counts from its fork. Elsewhere
the clock starts when this module is first imported (app/cli imports it before TensorFlow).
"""

import os
import re
import time

_IMPORTED = time.monotonic()
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(h|m|s)?", re.IGNORECASE)
_SECONDS_PER = {"h": 3600.0, "m": 60.0, "s": 1.0, None: 1.0}


def _started_seconds_ago():
  try:
    with open("/proc/self/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()  # the command name may hold spaces
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, after pid and (comm)
    return time.clock_gettime(time.CLOCK_BOOTTIME) - started
  except (OSError, ValueError, IndexError, AttributeError):
    return None


def process_seconds():
  """Wall seconds since this process started (or since this module was imported, where the
  system does not say)."""
  ago = _started_seconds_ago()
  return ago if ago is not None and ago >= 0 else time.monotonic() - _IMPORTED


def parse_duration(text):
  """"5m" -> 300.0, "90s" or "90" -> 90.0, "1h30m" -> 5400.0, "1.5h" -> 5400.0; None when
  `text` is not such a duration (or is not positive)."""
  text = str(text).strip()
  position, seconds = 0, 0.0
  for match in _DURATION.finditer(text):
    if match.start() != position or not match.group(0).strip():
      return None
    seconds += float(match.group(1)) * _SECONDS_PER[(match.group(2) or "").lower() or None]
    position = match.end()
    while position < len(text) and text[position] == " ":
      position += 1
  return seconds if text and position == len(text) and seconds > 0 else None
