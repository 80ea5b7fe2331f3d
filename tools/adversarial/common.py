"""What the adversarial cases share: running a command as a user does, and judging its output."""

import collections
import io
import os
import subprocess
import sys
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable

Case = collections.namedtuple("Case", "item name run")  # see tools/adversarial/__init__.py

# A run small enough to take seconds: Fashion-MNIST's first 256 images, one tiny epoch.
TINY = ("--model=simple_cnn", "--mixed_precision=float32", "--epochs=1", "--batch_size=64",
        "--config.data.limit=256", "--config.export.enabled=false")


def command(module, *args, cwd=None, env=None, timeout=600):
  """`python -m module args` -> subprocess.CompletedProcess (text stdout/stderr)."""
  full_env = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
  return subprocess.run([PYTHON, "-m", module, *map(str, args)], cwd=cwd or REPO, env=full_env,
                        capture_output=True, text=True, timeout=timeout)


def refused_in_one_line(result, *words):
  """(held, detail): exit status 2, one line on stderr naming every word, no traceback."""
  lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
  last = lines[-1] if lines else ""
  if result.returncode != 2:
    return False, f"exit status {result.returncode}: {last[:160]}"
  if "Traceback" in result.stderr:
    return False, "traceback: " + last[:160]
  missing = [w for w in words if w.lower() not in last.lower()]
  if missing:
    return False, f"refused, but the line does not name {missing}: {last[:160]}"
  return True, last[:160]


def _weights(run_dir):
  """checkpoints/last.keras's weight arrays as bytes, by name."""
  import h5py  # pylint: disable=g-import-not-at-top
  arrays = {}
  with zipfile.ZipFile(os.path.join(run_dir, "checkpoints", "last.keras")) as archive:
    with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
      weights.visititems(lambda name, item: arrays.update({name: item[()]})
                         if isinstance(item, h5py.Dataset) else None)
  return arrays


def same_weights(run_dir, reference_dir, atol=1e-5):
  """(held, "largest weight difference D") of two runs' checkpoints/last.keras."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  ours, theirs = _weights(run_dir), _weights(reference_dir)
  if sorted(ours) != sorted(theirs):
    return False, "the weights have other names"
  worst = max(float(np.max(np.abs(ours[k] - theirs[k]))) for k in ours)
  return worst <= atol, f"largest weight difference {worst:.2g}"
