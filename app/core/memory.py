"""The machine's memory, and the one check that a size fits in it.

Sizes a user sets (the image side, the batch, the model's width, a data set decoded into memory)
are bounded by the memory they need before anything allocates it, so a size that cannot fit is
one line naming the flag to lower instead of a MemoryError or ResourceExhaustedError traceback
minutes into a run (or the kernel's OOM killer). The figures compared are lower bounds of what
the work needs, so a refusal is certain to be right; on a GPU the bound is the host's memory,
which a GPU's own does not usually exceed by much.
"""

import os
import re

from app.core.errors import UsageError

_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max",  # cgroup v2
                  "/sys/fs/cgroup/memory/memory.limit_in_bytes")  # cgroup v1


def machine_bytes():
  """Physical memory (os.sysconf), or the container's cgroup limit when that is lower."""
  total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  for path in _CGROUP_LIMITS:
    try:
      with open(path) as f:
        limit = f.read().strip()
    except OSError:
      continue
    if limit.isdigit():
      total = min(total, int(limit))
  return total


# "8GiB", "8 GB", "8g", "512MiB", "1.5T"; a bare number is in MiB (TensorFlow's unit for a GPU's
# memory limit). Binary units whatever the spelling, as shown() and `free -h` count them.
_SIZE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])i?b?|(b))?$", re.IGNORECASE)
_POWER = {"k": 1, "m": 2, "g": 3, "t": 4, "b": 0, None: 2}


def parse_size(text):
  """"8GiB" or "8G" -> 8 * 2**30 bytes, "512MiB" or "512" -> 512 * 2**20, "100b" -> 100; None
  when `text` is not such a size (or is not positive)."""
  match = _SIZE.match(str(text).strip())
  if not match:
    return None
  unit = (match.group(2) or match.group(3) or "").lower() or None
  size = int(float(match.group(1)) * 1024 ** _POWER[unit])
  return size if size > 0 else None


def shown(size_bytes):
  """4.7e12 -> '4.3 TB' (binary units, as `free -h`)."""
  size = float(size_bytes)
  for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
    if size < 1024 or unit == "PB":
      return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
    size /= 1024
  return ""


def require_fits(needed_bytes, what, fix):
  """UsageError when `needed_bytes` (what `what` needs, a lower bound) exceed the machine's
  memory; `fix` says which flag to lower."""
  available = machine_bytes()
  if needed_bytes > available:
    raise UsageError(f"{what} needs at least {shown(needed_bytes)} of memory, more than this "
                     f"machine's {shown(available)}; {fix}")
