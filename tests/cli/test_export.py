"""python -m app.export as a user runs it: a run's checkpoint -> the next version, float32,
parity-checked; saved_model_cli sees the signatures; bad input is one line and writes nothing."""

import hashlib
import os
import shutil
import subprocess
import sys

import keras
import pytest

from app.models import load_model
from tests import commands

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


def run_module(module, *args, timeout=300):
  return commands.run(module, *args, timeout=timeout)


def tree_digest(path):
  return {os.path.relpath(os.path.join(d, f), path):
          hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
          for d, _, files in os.walk(path) for f in files}


def test_export_writes_the_next_version_with_onnx_and_litert(trained_run, tmp_path):
  version_1 = os.path.join(trained_run.export_dir, "tiny", "1")
  before = tree_digest(version_1)
  result = run_module("app.export", f"--run_dir={trained_run.run_dir}", "--formats=onnx,litert")
  assert result.returncode == 0, result.stderr[-3000:]
  version_2 = os.path.join(trained_run.export_dir, "tiny", "2")
  assert result.stdout.strip() == f"exported {version_2}"
  assert tree_digest(version_1) == before
  assert {"model.onnx", "model.tflite", "saved_model.pb"} <= set(os.listdir(version_2))

  # In a fresh process: the export loads, its metadata records passed checks, and it computes
  # what the checkpoint computes on real held-out images (float32: within 1e-5).
  check = f"""
import json, numpy as np, tensorflow as tf
from app.data.sources.idx import read_idx
from app.models import load_model
images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")[-32:, ..., None]
loaded = tf.saved_model.load({version_2!r})
served = loaded.signatures["serving_default"](images=tf.constant(images, tf.float32))
keras_model = load_model({os.path.join(trained_run.run_dir, "checkpoints", "best.keras")!r})
expected = keras_model.predict(images.astype("float32"), verbose=0)
assert np.abs(served["probabilities"].numpy() - expected).max() <= 1e-5
metadata = json.load(open({os.path.join(version_2, "assets.extra", "metadata.json")!r}))
assert all(record["passed"] for record in metadata["parity"].values()), metadata["parity"]
assert set(metadata["parity"]) >= {{"saved_model/serve_bytes", "onnx", "litert"}}
assert metadata["checkpoint"].endswith("best.keras") and metadata["version"] == 2
assert metadata["metrics"]["test_accuracy"] > 0
print("fresh process ok")
"""
  fresh = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
  assert fresh.returncode == 0 and "fresh process ok" in fresh.stdout, fresh.stderr[-3000:]


def test_saved_model_cli_lists_every_signature(trained_run):
  result = subprocess.run([SAVED_MODEL_CLI, "show", "--all", "--dir", trained_run.export_path],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  for signature in ("serving_default", "serve_bytes", "serve_uint8", "serve"):
    assert f"signature_def['{signature}']" in result.stdout, signature
  assert "DT_STRING" in result.stdout and "DT_UINT8" in result.stdout
  for output in ("probabilities", "top_class_ids", "top_class_names"):
    assert f"outputs['{output}']" in result.stdout


def test_a_mixed_precision_checkpoint_exports_float32(trained_run, tmp_path):
  """A checkpoint saved under mixed_bfloat16 keeps its policies; the export must not."""
  run_dir = tmp_path / "mixed_run"
  (run_dir / "checkpoints").mkdir(parents=True)
  shutil.copy(os.path.join(trained_run.run_dir, "config.yaml"), run_dir)
  trained = load_model(os.path.join(trained_run.run_dir, "checkpoints", "best.keras"))
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    mixed = keras.models.clone_model(trained)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  mixed.set_weights(trained.get_weights())
  assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in mixed._flatten_layers()}  # pylint: disable=protected-access
  mixed.save(str(run_dir / "checkpoints" / "best.keras"))
  exports = tmp_path / "exports"
  result = run_module("app.export", f"--run_dir={run_dir}", f"--export_dir={exports}")
  assert result.returncode == 0, result.stderr[-3000:]
  check = f"""
import tensorflow as tf
loaded = tf.saved_model.load({str(exports / "tiny" / "1")!r})
assert {{v.dtype for v in loaded.variables if v.dtype.is_floating}} == {{tf.float32}}
out = loaded.signatures["serving_default"](images=tf.zeros([1, 28, 28, 1]))
assert out["probabilities"].dtype == tf.float32
print("float32 ok")
"""
  fresh = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
  assert fresh.returncode == 0 and "float32 ok" in fresh.stdout, fresh.stderr[-3000:]


def test_help_documents_every_flag():
  result = run_module("app.export", "--help")
  assert result.returncode == 0
  for flag in ("--run_dir", "--checkpoint", "--export_dir", "--name", "--formats",
               "--parity_images"):
    assert flag in result.stdout, flag


BAD_INPUTS = {
    "name with a separator": (["--name=a/b"], "export name 'a/b' must be a plain folder name"),
    "name climbing out": (["--name=.."], "export name '..' must be a plain folder name"),
    "not a run dir": (["--run_dir={tmp}"], "is not a run directory (no config.yaml)"),
    "missing checkpoint": (["--checkpoint={tmp}/none.keras"], "none.keras does not exist"),
    "unsafe checkpoint": (["--checkpoint={unsafe}"], "refusing to load"),
    "corrupt checkpoint": (["--checkpoint={tmp}/corrupt.keras"], "is not a .keras model file"),
    "unknown format": (["--formats=tflite"], "unknown export format 'tflite'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, trained_run, tmp_path,
                                                         unsafe_keras_file):
  args, expected = BAD_INPUTS[case]
  (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04truncated")
  exports = tmp_path / "exports"
  args = [f"--run_dir={trained_run.run_dir}", f"--export_dir={exports}",
          *[a.format(tmp=tmp_path, unsafe=unsafe_keras_file) for a in args]]
  result = run_module("app.export", *args)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and expected in last, last
  assert not exports.exists() or not os.listdir(exports)
  assert not os.path.exists(os.path.join(REPO, "a"))  # --name=a/b wrote nowhere
