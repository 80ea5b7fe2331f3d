"""app/evaluate/metrics.py: the numbers, checked against scikit-learn and by hand."""

import numpy as np
import pytest
from sklearn import metrics as sk

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
