"""app/serving/runs.py: loading a finished run's checkpoints in safe mode only, and exporting
the run as it trained."""

import os
import shutil

import pytest
import yaml

from app.core.errors import UsageError
from app.serving import runs
from app.serving import saved_model as serving


def test_a_lambda_layer_checkpoint_is_refused_by_safe_mode(unsafe_keras_file):
  before = os.path.getmtime(unsafe_keras_file)
  with pytest.raises(UsageError, match="refusing to load .*unsafe.keras: it holds Python code"):
    runs.load_checkpoint(unsafe_keras_file)
  assert os.path.getmtime(unsafe_keras_file) == before


@pytest.mark.parametrize("content,expected", [
    (b"PK\x03\x04 not really a zip", "is not a .keras model file"),
    (b"hello", "is not a .keras model file"),
])
def test_corrupt_checkpoints_are_one_line_errors(tmp_path, content, expected):
  path = tmp_path / "broken.keras"
  path.write_bytes(content)
  with pytest.raises(UsageError, match=expected):
    runs.load_checkpoint(str(path))


def test_missing_checkpoint(tmp_path):
  with pytest.raises(UsageError, match="does not exist"):
    runs.load_checkpoint(str(tmp_path / "none.keras"))


def test_an_exported_run_serves_with_its_resize_policy(trained_run, tmp_path):
  """Issue 20 (9): the export resizes as the run's data.resize did (here edited to crop)."""
  run_dir = shutil.copytree(trained_run.run_dir, tmp_path / "run")
  config = yaml.safe_load((run_dir / "config.yaml").read_text())
  config["data"]["resize"] = "crop"
  (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
  path = runs.export_run(str(run_dir), export_dir=str(tmp_path / "exports"), parity_images=8)
  metadata = serving.read_metadata(path)
  assert metadata["preprocessing"]["resize"] == "crop"
  assert metadata["parity"]["saved_model/serve_bytes/non_square"]["passed"]
  assert serving.read_metadata(trained_run.export_path)["preprocessing"]["resize"] == "resize"
