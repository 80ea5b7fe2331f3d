"""app/runs.py: reading a finished run back, and loading checkpoints in safe mode only."""

import os

import pytest
import yaml

from app.core import run_dir as runs
from app.core.errors import UsageError
from configs import default


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


def test_missing_checkpoint_and_run_dir(tmp_path):
  with pytest.raises(UsageError, match="does not exist"):
    runs.load_checkpoint(str(tmp_path / "none.keras"))
  with pytest.raises(UsageError, match="is not a run directory"):
    runs.load_config(str(tmp_path))
  assert runs.load_metrics(str(tmp_path)) == {}


def test_a_run_config_gains_keys_added_to_the_schema_since(tmp_path):
  saved = default.get_config().to_dict()
  del saved["export"]["formats"]
  saved["name"] = "old"
  (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
  config = runs.load_config(str(tmp_path))
  assert config.name == "old" and config.export.formats == ""


def test_checkpoint_names():
  assert runs.checkpoint_path("r", "best") == os.path.join("r", "checkpoints", "best.keras")
  assert runs.checkpoint_path("r", "last") == os.path.join("r", "checkpoints", "last.keras")
  assert runs.checkpoint_path("r", "/x/model.keras") == "/x/model.keras"
