"""app/serving/runs.py: loading a finished run's checkpoints in safe mode only."""

import os

import pytest

from app.core.errors import UsageError
from app.serving import runs


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
