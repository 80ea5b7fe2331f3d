"""app/serving/runs.py: loading a finished run's checkpoints in safe mode only, and exporting
the run as it trained."""

import json
import os
import shutil

import numpy as np
import pytest
import yaml

from app.core.errors import UsageError
from app.evaluate.evaluate import evaluate
from app.models import load_model
from app.serving import runs
from app.serving import saved_model as serving
from configs import default
from tests.serving import crafted


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
  preprocessing = metadata["preprocessing"]
  assert (preprocessing["resize"], preprocessing["eval_crop"]) == ("crop", 1)
  assert metadata["parity"]["saved_model/serve_bytes/non_square"]["passed"]
  # data.eval_crop (issue 18): the export keeps the share of the centre evaluation kept.
  config["data"]["eval_crop"] = 0.8
  (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
  path = runs.export_run(str(run_dir), export_dir=str(tmp_path / "exports"), parity_images=8)
  metadata = serving.read_metadata(path)
  preprocessing = metadata["preprocessing"]
  assert (preprocessing["resize"], preprocessing["eval_crop"]) == ("crop", 0.8)
  assert "/ 0.8" in preprocessing["resize_rule"]
  assert metadata["parity"]["saved_model/serve_bytes/non_square"]["passed"]
  trained = serving.read_metadata(trained_run.export_path)
  assert trained["preprocessing"]["resize"] == "resize"
  # Issue 18 (4): the run's warnings (app/evaluate/verdict.py; [] when fine) travel with it.
  assert trained["warnings"] == trained_run.metrics["warnings"]
  assert json.loads((run_dir / "metrics.json").read_text())["warnings"] == trained["warnings"]


@pytest.fixture(scope="module")
def tiny_keras_file(tmp_path_factory, make_tiny_model):
  path = str(tmp_path_factory.mktemp("tiny_keras") / "tiny.keras")
  make_tiny_model().save(path)
  return path


@pytest.mark.parametrize("edit,expected", [
    (crafted.unknown_class, r"\(TypeError: Could not locate class 'NoSuchLayer'\)"),
    (crafted.unsafe_call, r"\(TypeError: Expected 'config' to be a dict for system"),
    (lambda config: config.clear(), r"\(ValueError: "),
])
def test_crafted_checkpoints_are_one_line_errors(tiny_keras_file, tmp_path, edit, expected):
  """Issue 19 (13): Keras raises TypeError for an unknown class or a call it will not make; only
  ValueError was caught, so those were tracebacks."""
  path = crafted.edited_keras_file(tiny_keras_file, str(tmp_path / "crafted.keras"), edit)
  with pytest.raises(UsageError, match=f"cannot load .*crafted.keras as a Keras model of this "
                                       f"application {expected}.*; pass an intact checkpoint"):
    runs.load_checkpoint(path)
  assert not os.path.exists("/tmp/crafted-keras-ran")


def test_the_export_metadata_measures_the_checkpoint_it_exports(trained_run, tmp_path):
  """Issue 19 (5): app.export exported best.keras but copied metrics.json's figures (the last
  epoch's weights) into the metadata: 0.100 there, 0.130 from app.evaluate on the same file.
  Here best.keras is another epoch's weights (the trained ones with a noisy classifier)."""
  run_dir = shutil.copytree(trained_run.run_dir, tmp_path / "run")
  best = run_dir / "checkpoints" / "best.keras"
  model = load_model(str(best))
  kernel = next(v for v in model.trainable_variables if v.path == "logits/kernel")
  noise = np.random.default_rng(0).normal(0, 2 * np.std(kernel.numpy()), kernel.shape)
  kernel.assign(kernel.numpy() + noise.astype(kernel.dtype))
  model.save(str(best))
  path = runs.export_run(str(run_dir), export_dir=str(tmp_path / "exports"), parity_images=8)
  recorded = serving.read_metadata(path)["metrics"]
  _, evaluated = evaluate(run_dir=str(run_dir), report_dir=str(tmp_path / "report"), worst=0)
  last_epoch = json.loads((run_dir / "metrics.json").read_text())
  assert evaluated["accuracy"] != pytest.approx(last_epoch["test_accuracy"], abs=1e-3)
  assert recorded["test_accuracy"] == pytest.approx(evaluated["accuracy"], abs=1e-6)
  assert recorded["test_loss"] != pytest.approx(last_epoch["test_loss"], rel=1e-3)
  assert recorded["test_split"] == evaluated["split"] == "test"
  assert evaluated["warnings"] == []  # 0.25 on 10 classes: above chance (issue 18, item 4)


def test_the_export_metadata_carries_the_runs_warnings():
  """Issue 18 (4): metrics.json's "warnings" (app/evaluate/verdict.py) land in the export's
  assets.extra/metadata.json; figures without them (a checkpoint's own) record none."""
  warning = {"code": "chance_level", "message": "test accuracy 0.200 is at chance", "figures": {}}
  config = default.get_config()
  metadata = runs.export_metadata(config, {"test_accuracy": 0.2, "warnings": [warning]})
  assert metadata["warnings"] == [warning] and metadata["metrics"] == {"test_accuracy": 0.2}
  assert "warnings" not in runs.export_metadata(config, {"test_accuracy": 0.2})
