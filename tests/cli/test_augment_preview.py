"""python -m app.augment_preview, and a training run that augments on the device."""

import json
import os
import subprocess
import sys

from tests import commands

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(module, *args):
  return commands.run(module, *args, timeout=600)


def test_preview_writes_a_png_grid(tmp_path):
  out = tmp_path / "grid.png"
  result = run("app.augment_preview", "--config.data.augment=flip|crop(pad=2)|mixup(alpha=0.4)",
               "--config.data.augment_on_device=rotate(factor=0.05)", "--count=8", "--repeats=2",
               f"--output={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 5000


def test_preview_refuses_a_host_only_op_on_device(tmp_path):
  result = run("app.augment_preview", "--config.data.augment_on_device=mixup",
               f"--output={tmp_path / 'grid.png'}")
  assert result.returncode == 2
  assert "runs in the host pipeline" in result.stderr.strip().splitlines()[-1]
  assert not (tmp_path / "grid.png").exists()


def test_preview_refuses_a_reflect_pad_as_large_as_the_images(tmp_path):
  """Fashion-MNIST is 28x28: reflect padding needs pad <= 27, one line before any image moves."""
  result = run("app.augment_preview", "--config.data.augment=crop(pad=28, fill='reflect')",
               f"--output={tmp_path / 'grid.png'}")
  assert result.returncode == 2
  assert "needs pad < the images' shorter side, 28 pixels" in result.stderr.strip().splitlines()[-1]
  assert "Traceback" not in result.stderr


def test_training_with_device_augmentation_exports_an_inference_identity(tmp_path):
  result = run("app.train", "--epochs=1", "--config.data.limit=600", "--model=simple_cnn",
               "--config.model.width=8", "--config.optim.warmup_epochs=0",
               "--mixed_precision=float32", "--config.data.augment=mixup(alpha=0.2)",
               "--config.data.augment_on_device=flip|translate(factor=0.1)",
               f"--output_dir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'exports'}")
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
  check = f"""
import numpy as np, tensorflow as tf
from app.models import load_model
images = np.random.default_rng(0).uniform(0, 255, (8, 28, 28, 1)).astype("float32")
loaded = tf.saved_model.load({metrics["export_path"]!r})
trained = load_model({str(tmp_path / "run" / "checkpoints" / "last.keras")!r})
np.testing.assert_allclose(loaded.serve(images), trained(images, training=False), atol=1e-5)
np.testing.assert_allclose(loaded.serve(images), loaded.serve(images), atol=0)
print("ok")
"""
  reload = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
  assert reload.returncode == 0 and "ok" in reload.stdout, reload.stderr[-3000:]
