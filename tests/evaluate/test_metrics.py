"""app/evaluate/metrics.py: the numbers, checked against scikit-learn's own calls and by hand."""

import warnings

import numpy as np
import pytest
from sklearn import metrics as sk

from app.core.errors import UsageError
from app.evaluate import metrics
from tests.evaluate.conftest import CLASSES


def test_numbers_agree_with_scikit_learn(predictions):
  probabilities, labels = predictions
  results = metrics.compute(probabilities, labels, CLASSES)
  predicted = probabilities.argmax(-1)
  assert results["images"] == 300
  assert results["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
  assert results["top5_accuracy"] == pytest.approx(
      sk.top_k_accuracy_score(labels, probabilities, k=5, labels=range(len(CLASSES))))
  assert results["cross_entropy"] == pytest.approx(sk.log_loss(labels, probabilities))
  np.testing.assert_array_equal(results["confusion_matrix"], sk.confusion_matrix(labels, predicted))
  precision, recall, f1, support = sk.precision_recall_fscore_support(labels, predicted,
                                                                      zero_division=0)
  for i, row in enumerate(results["per_class"]):
    assert (row["class_id"], row["class_name"]) == (i, CLASSES[i])
    assert row["precision"] == pytest.approx(precision[i])
    assert row["recall"] == pytest.approx(recall[i])
    assert row["f1"] == pytest.approx(f1[i])
    assert row["support"] == support[i]
  assert results["macro_f1"] == pytest.approx(sk.f1_score(labels, predicted, average="macro"))


def test_edge_cases_keep_the_report_s_definitions_and_warn_nothing():
  # Two classes (scikit-learn's "binary" case), a class the split lacks, and a certain mistake.
  probabilities = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.8, 0.0]])
  labels = np.array([0, 0, 1])
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no "do not sum to one", no "k >= n_classes"
    results = metrics.compute(probabilities, labels, ["a", "b", "c"])
    binary = metrics.compute(probabilities[:, :2], labels, ["a", "b"])
  assert results["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
  assert [row["support"] for row in results["per_class"]] == [2, 1, 0]
  assert results["per_class"][2] == {"class_id": 2, "class_name": "c", "precision": 0.0,
                                     "recall": 0.0, "f1": 0.0, "support": 0}
  assert results["top3_accuracy"] == binary["top2_accuracy"] == 1.0
  # Keras's clip at 1e-7: the certain mistake costs -log(1e-7), not scikit-learn's -log(2e-16).
  assert results["cross_entropy"] == pytest.approx((-np.log(1e-7) - np.log(0.8)) / 3)
  assert binary["accuracy"] == pytest.approx(2 / 3)


def test_non_finite_predictions_are_one_line_not_a_traceback():
  probabilities = np.array([[0.5, 0.5], [np.nan, np.nan], [0.9, 0.1]])
  with pytest.raises(UsageError, match="NaN or infinite values for 1 of 3 images"):
    metrics.compute(probabilities, np.array([0, 1, 0]), ["a", "b"])


def test_expected_calibration_error_by_hand():
  # Two images at confidence 0.9 (one right) and two at 0.6 (both right):
  # ECE = 2/4 * |0.5 - 0.9| + 2/4 * |1.0 - 0.6| = 0.4.
  probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
  labels = np.array([0, 1, 0, 1])
  ece, bins = metrics.calibration(probabilities, labels, bins=10)
  assert ece == pytest.approx(0.4)
  assert [b["count"] for b in bins] == [0] * 5 + [2, 0, 0, 2, 0]
  assert metrics.calibration(np.eye(3), np.arange(3))[0] == 0.0  # certain and right


def test_worst_mistakes_are_the_most_confident_wrong_ones():
  probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
  labels = np.array([0, 0, 0, 1])
  assert metrics.worst_mistakes(probabilities, labels, 10).tolist() == [2, 1, 3]
  assert metrics.worst_mistakes(probabilities, labels, 1).tolist() == [2]
