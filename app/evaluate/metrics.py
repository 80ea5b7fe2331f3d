"""The numbers of an evaluation, from probabilities and labels alone (NumPy): accuracy, top-5,
per-class precision/recall/F1, the confusion matrix, calibration (ECE) and the worst mistakes.

Numbers follow Keras's definitions, so they agree with `model.evaluate`: accuracy compares
argmaxes (first index on ties), top-k counts the true class in when fewer than k classes score
strictly higher (tf.math.in_top_k), cross-entropy is without label smoothing.
"""

import numpy as np

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. 2017, "On Calibration of Modern NNs"
TOP_K = 5


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


def per_class(confusion):
  """Precision, recall, F1 and support per class from a confusion matrix (rows = true class);
  0 where undefined (no predictions or no examples), as scikit-learn's zero_division=0."""
  true_positives = np.diag(confusion).astype(np.float64)
  predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
  with np.errstate(divide="ignore", invalid="ignore"):
    precision = np.where(predicted > 0, true_positives / predicted, 0.0)
    recall = np.where(support > 0, true_positives / support, 0.0)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
  return precision, recall, f1, support


def compute(probabilities, labels, class_names):
  """Every number of the report, JSON-able."""
  num_classes = len(class_names)
  predicted = probabilities.argmax(axis=-1)
  true_probability = probabilities[np.arange(len(labels)), labels]
  stronger = (probabilities > true_probability[:, None]).sum(axis=-1)
  top_k = min(TOP_K, num_classes)
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (labels, predicted), 1)
  precision, recall, f1, support = per_class(confusion)
  ece, bins = calibration(probabilities, labels)
  return {
      "images": int(len(labels)),
      "accuracy": float(np.mean(predicted == labels)),
      f"top{top_k}_accuracy": float(np.mean(stronger < top_k)),
      "cross_entropy": float(np.mean(-np.log(np.clip(true_probability, 1e-7, 1.0)))),
      "expected_calibration_error": ece,
      "macro_precision": float(precision.mean()),
      "macro_recall": float(recall.mean()),
      "macro_f1": float(f1.mean()),
      "per_class": [{"class_id": i, "class_name": name, "precision": float(precision[i]),
                     "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
                    for i, name in enumerate(class_names)],
      "confusion_matrix": confusion.tolist(),
      "calibration_bins": bins,
  }


def worst_mistakes(probabilities, labels, count):
  """Indices of the wrong predictions made with the highest confidence, most confident first."""
  predicted = probabilities.argmax(axis=-1)
  wrong = np.flatnonzero(predicted != labels)
  order = np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")
  return wrong[order][:count]
