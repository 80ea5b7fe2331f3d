"""app/evaluate/evaluate.py and app/evaluate/report.py: flip TTA by the models' own layers, and
the report folder the numbers are written to."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from app.evaluate import evaluate as evaluation
from app.evaluate import metrics
from app.evaluate import report
from app.evaluate import verdict
from tests import tensorboard_events
from tests.evaluate.conftest import CLASSES


def test_flip_tta_averages_each_image_with_its_mirror():
  images = np.random.default_rng(0).uniform(0, 255, (10, 4, 5, 1)).astype(np.float32)
  labels = np.eye(3, dtype=np.float32)[np.arange(10) % 3]
  dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)

  def predict_fn(batch):  # a left-right asymmetric "model": softmax of the first column's rows
    return tf.nn.softmax(tf.reshape(batch[:, :3, 0, 0], (-1, 3)) / 50.0).numpy()

  plain, _, _ = evaluation.predict(predict_fn, dataset)
  mirrored, _, _ = evaluation.predict(predict_fn, dataset.map(lambda x, y: (x[:, :, ::-1], y)))
  flipped, labels_out, images_out = evaluation.predict(predict_fn, dataset, tta_flip=True)
  assert flipped.dtype == np.float64 and flipped.shape == (10, 3)
  # Float32 outputs: the TTA batch (images and mirrors together) may take other kernel paths,
  # which moved the last bit on an AVX2 CPU (relative 8e-8); a wrong average moves far more.
  np.testing.assert_allclose(flipped, (plain + mirrored) / 2, rtol=1e-6, atol=0)
  assert not np.allclose(flipped, plain)
  np.testing.assert_array_equal(labels_out, np.arange(10) % 3)
  np.testing.assert_array_equal(images_out, np.round(images).astype(np.uint8))


def test_report_folder_holds_markdown_json_and_pictures(tmp_path, predictions):
  probabilities, labels = predictions
  images = np.zeros((300, 8, 8, 3), np.uint8)
  results = dict(metrics.compute(probabilities, labels, CLASSES), model="m.keras",
                 data={"name": "folder", "data_dir": "/data"}, split="test", tta="none",
                 warnings=verdict.chance_level(0.1, [50] * 6, "test"))  # as if at chance
  written = report.write(str(tmp_path), results, probabilities, labels, images, CLASSES,
                         metrics.worst_mistakes(probabilities, labels, 7))
  assert sorted(os.listdir(tmp_path)) == sorted(report.FILES)
  for name in report.FILES:
    if name.endswith(".png"):
      assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
  markdown = (tmp_path / "report.md").read_text()
  for picture in ("confusion_matrix.png", "worst_mistakes.png", "reliability.png"):
    assert f"]({picture})" in markdown
  assert f"| accuracy | {results['accuracy']:.4f} |" in markdown
  assert "**Warning**: test accuracy 0.100 is at chance" in markdown
  assert json.loads((tmp_path / "report.json").read_text()) == written
  assert len(written["worst_mistakes"]) == 7


def test_the_report_is_a_tensorboard_run_in_the_runs_log_dir(tmp_path, predictions):
  """Issue 21: the report's figures as TensorBoard images, its numbers as scalars and the
  per-class table as text, read back by TensorBoard's own event reader."""
  probabilities, labels = predictions
  results = dict(metrics.compute(probabilities, labels, CLASSES), model="m.keras",
                 data={"name": "folder", "data_dir": "/data"}, split="test", tta="none")
  run_dir = tmp_path / "run"
  report_dir = run_dir / "evaluation"
  log_dir = evaluation.tensorboard_dir(str(report_dir), str(run_dir))
  assert log_dir == str(run_dir / "tensorboard" / "evaluation")
  report.write(str(report_dir), results, probabilities, labels, np.zeros((300, 8, 8, 3), np.uint8),
               CLASSES, metrics.worst_mistakes(probabilities, labels, 7), log_dir)
  board = tensorboard_events.runs(run_dir)["tensorboard/evaluation"]
  for name in ("accuracy", "top5_accuracy", "cross_entropy", "expected_calibration_error",
               "macro_precision", "macro_recall", "macro_f1"):
    assert board[f"evaluation/{name}"] == ("scalars", [(0, pytest.approx(results[name]))]), name
  per_class = results["per_class"][2]
  assert board["per_class_recall/2_c"] == ("scalars", [(0, pytest.approx(per_class["recall"]))])
  assert len([tag for tag in board if tag.startswith("per_class_f1/")]) == len(CLASSES)
  for figure in ("confusion_matrix", "worst_mistakes", "reliability"):
    plugin, [(step, png)] = board[f"evaluation/{figure}"]
    drawn = tf.io.decode_png(tf.io.read_file(str(report_dir / f"{figure}.png")))
    assert plugin == "images" and tf.io.decode_png(png).shape == drawn.shape
  plugin, [(_, table)] = board["evaluation/per_class"]
  assert plugin == "text" and f"| 2 c | {per_class['precision']:.4f} |" in table
  # Evaluated again into the same folder: one run, the new numbers.
  report.write_tensorboard(dict(results, accuracy=0.5), str(report_dir), log_dir)
  board = tensorboard_events.runs(run_dir)["tensorboard/evaluation"]
  assert board["evaluation/accuracy"] == ("scalars", [(0, 0.5)])


@pytest.mark.parametrize("report_dir, run_dir, expected", [
    ("run/evaluation-2", "run", "run/tensorboard/evaluation-2"),
    ("run/reports/b", "run", "run/tensorboard/reports_b"),
    ("elsewhere", "run", "elsewhere/tensorboard"),  # --report_dir outside the run
    ("report", None, "report/tensorboard"),  # an export evaluated with no run dir
])
def test_the_reports_tensorboard_run_goes_in_the_run_dir_when_the_report_does(
    report_dir, run_dir, expected):
  assert evaluation.tensorboard_dir(report_dir, run_dir) == expected
