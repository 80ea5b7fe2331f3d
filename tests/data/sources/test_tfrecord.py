"""app/data/sources/tfrecord.py and tools/folder_to_tfrecord.py: the shards give the folder's
batches."""

import json
import re

import numpy as np
import pytest

from app.data import pipeline
from app.data.sources import tfrecord
from app.data.sources import DATASETS
from app.core.errors import UsageError
from configs import default

from tests import commands


@pytest.fixture(scope="module")
def converted(cifar_mini_dir, tmp_path_factory):
  out = tmp_path_factory.mktemp("tfr") / "cifar_mini"
  result = commands.run("tools/folder_to_tfrecord.py", f"--input={cifar_mini_dir}",
                        f"--output={out}", "--shards=3")
  assert result.returncode == 0, result.stderr[-3000:]
  return out


def data_config(name, data_dir, **changes):
  data = default.get_config().data
  data.name, data.data_dir = name, str(data_dir)
  for key, value in changes.items():
    data[key] = value
  return data


def test_manifest_lists_shards_counts_and_labels(converted):
  manifest = json.load(open(converted / "manifest.json"))
  assert manifest["splits"]["train"]["count"] == 1000 and manifest["splits"]["test"]["count"] == 200
  assert len(manifest["splits"]["train"]["shards"]) == 3
  assert set(manifest["splits"]["train"]["per_class"].values()) == {100}
  assert manifest["image_size"] == [32, 32] and manifest["channels"] == 3


@pytest.mark.parametrize("validation_split", [0.0, 0.2])
def test_tfrecord_batches_equal_folder_batches(converted, cifar_mini_dir, validation_split):
  built = {}
  for name, directory in (("folder", cifar_mini_dir), ("tfrecord", converted)):
    data = data_config(name, directory, validation_split=validation_split)
    built[name] = pipeline.build(DATASETS.get(name)(data), data, 64, seed=3)
  folder, records = built["folder"], built["tfrecord"]
  assert (folder.num_train, folder.num_validation) == (records.num_train, records.num_validation)
  np.testing.assert_allclose(folder.mean, records.mean)
  for split in ("train", "validation", "test"):
    a = list(getattr(folder, split).as_numpy_iterator())
    b = list(getattr(records, split).as_numpy_iterator())
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
      np.testing.assert_array_equal(xa, xb)
      np.testing.assert_array_equal(ya, yb)


def test_a_streamed_run_trains_every_step_without_running_out_of_data(converted, tmp_path):
  """Streamed records (in_memory_max_gb=0) made Keras warn "Your input ran out of data"."""
  result = commands.run(
      "app.train", "--dataset=tfrecord", f"--data_dir={converted}",
      "--config.data.in_memory_max_gb=0", "--config.data.limit=48", "--batch_size=16",
      "--epochs=2", "--model=simple_cnn", "--config.model.width=4",
      "--config.optim.warmup_epochs=0", f"--output_dir={tmp_path / 'run'}",
      f"--export_dir={tmp_path / 'export'}",  # the recipe's mixed_bfloat16
      timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  output = result.stdout + result.stderr
  assert "ran out of data" not in output, output[-3000:]
  # Keras's verbose=2 line of each epoch: "<steps run>/<steps_per_epoch> - ..."
  assert re.findall(r"^(\d+)/(\d+) - ", output, re.MULTILINE) == [("3", "3")] * 2, output[-3000:]


def test_missing_or_foreign_manifest_is_a_usage_error(tmp_path):
  with pytest.raises(UsageError, match="cannot read .*manifest.json"):
    DATASETS.get("tfrecord")(data_config("tfrecord", tmp_path))
  (tmp_path / "manifest.json").write_text('{"format": "other"}')
  with pytest.raises(UsageError, match="not a convtrain-tfrecord-v1 manifest"):
    tfrecord.read_manifest(str(tmp_path))


def test_converter_refuses_a_non_empty_output(converted, cifar_mini_dir):
  result = commands.run("tools/folder_to_tfrecord.py", f"--input={cifar_mini_dir}",
                        f"--output={converted}")
  assert result.returncode == 2
  assert "already exists and is not empty" in result.stderr.strip().splitlines()[-1]
