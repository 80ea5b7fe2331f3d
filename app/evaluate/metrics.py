"""The numbers of an evaluation, from probabilities and labels alone: accuracy, top-5, per-class
precision/recall/F1, the confusion matrix and cross-entropy from scikit-learn's `sklearn.metrics`;
calibration (ECE) and the worst mistakes, which it does not have, here in NumPy.

Numbers follow Keras's definitions where they meet, so they agree with `model.evaluate`: accuracy
compares argmaxes (first index on ties), cross-entropy is without label smoothing and clipped at
Keras's epsilon. Top-k is scikit-learn's, which breaks exact ties by class index where
tf.math.in_top_k counts every tied class in; they differ only on equal probabilities.
"""

import warnings

import numpy as np
from sklearn import metrics as sk

from app.core.errors import UsageError

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. 2017, "On Calibration of Modern NNs"
TOP_K = 5
# keras.config.epsilon(): Keras clips probabilities there before the log, so one confident
# mistake costs -log(1e-7) = 16; scikit-learn clips at the dtype's own (2e-16 for float64: 36).
KERAS_EPSILON = 1e-7


def calibration(probabilities, labels, bins=ECE_BINS):
  """Expected calibration error and the per-bin (confidence, accuracy, count) behind it."""
  confidence = probabilities.max(axis=-1)
  correct = probabilities.argmax(axis=-1) == labels
  edges = np.linspace(0.0, 1.0, bins + 1)
  which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
  rows, ece = [], 0.0
  for b in range(bins):
    members = which == b
    count = int(members.sum())
    accuracy = float(correct[members].mean()) if count else None
    mean_confidence = float(confidence[members].mean()) if count else None
    if count:
      ece += count / len(labels) * abs(accuracy - mean_confidence)
    rows.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count,
                 "accuracy": accuracy, "confidence": mean_confidence})
  return float(ece), rows


def compute(probabilities, labels, class_names):
  """Every number of the report, JSON-able. Classes the split lacks still have their row and
  column (`labels=` below): their precision and recall are 0 where undefined, as zero_division=0."""
  if not np.isfinite(probabilities).all():
    raise UsageError(f"the model's predictions hold NaN or infinite values for "
                     f"{int((~np.isfinite(probabilities)).any(axis=-1).sum())} of {len(labels)} "
                     "images (diverged weights?); evaluate an earlier checkpoint")
  classes = np.arange(len(class_names))
  predicted = probabilities.argmax(axis=-1)
  top_k = min(TOP_K, len(class_names))
  precision, recall, f1, support = sk.precision_recall_fscore_support(
      labels, predicted, labels=classes, zero_division=0)
  with warnings.catch_warnings():  # the clip below adds up to K * 1e-7 to a row's sum
    warnings.filterwarnings("ignore", ".*do not sum to one", UserWarning)
    cross_entropy = sk.log_loss(labels, np.clip(probabilities, KERAS_EPSILON, 1.0), labels=classes)
  ece, bins = calibration(probabilities, labels)
  return {
      "images": int(len(labels)),
      "accuracy": float(sk.accuracy_score(labels, predicted)),
      # With no more classes than k every class is in the top k (scikit-learn warns, and refuses
      # two-class scores as "binary").
      f"top{top_k}_accuracy": (
          float(sk.top_k_accuracy_score(labels, probabilities, k=top_k, labels=classes))
          if top_k < len(class_names) else 1.0),
      "cross_entropy": float(cross_entropy),
      "expected_calibration_error": ece,
      "macro_precision": float(precision.mean()),
      "macro_recall": float(recall.mean()),
      "macro_f1": float(f1.mean()),
      "per_class": [{"class_id": i, "class_name": name, "precision": float(precision[i]),
                     "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
                    for i, name in enumerate(class_names)],
      "confusion_matrix": sk.confusion_matrix(labels, predicted, labels=classes).tolist(),
      "calibration_bins": bins,
  }


def worst_mistakes(probabilities, labels, count):
  """Indices of the wrong predictions made with the highest confidence, most confident first."""
  predicted = probabilities.argmax(axis=-1)
  wrong = np.flatnonzero(predicted != labels)
  order = np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")
  return wrong[order][:count]
