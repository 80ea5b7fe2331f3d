"""Evaluation in depth: a model's probabilities on a split -> accuracy, top-5, per-class
precision/recall/F1, the confusion matrix, calibration (ECE) and the worst mistakes.

Numbers follow Keras's definitions, so they agree with `model.evaluate`: accuracy compares
argmaxes (first index on ties), top-k counts the true class in when fewer than k classes score
strictly higher (tf.math.in_top_k), cross-entropy is without label smoothing.
"""

import os

import numpy as np

from app.evaluate import report
from app.core import run_dir as runs
from app.serving import saved_model as serving
from app.core.errors import UsageError

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. 2017, "On Calibration of Modern NNs"
TOP_K = 5


def predict(predict_fn, dataset, tta_flip=False):
  """Runs `predict_fn` (float32 images -> probabilities) over a batched (images, one-hot labels)
  dataset; returns (probabilities float64 [N, K], labels int [N], images uint8 [N, H, W, C]).
  With `tta_flip` each image's probabilities are averaged with its mirror image's."""
  probabilities, labels, images = [], [], []
  for batch, onehot in dataset:
    p = np.asarray(predict_fn(batch), np.float64)
    if tta_flip:
      p = (p + np.asarray(predict_fn(batch[:, :, ::-1]), np.float64)) / 2
    probabilities.append(p)
    labels.append(np.argmax(onehot, axis=-1))
    images.append(np.clip(np.round(np.asarray(batch)), 0, 255).astype(np.uint8))
  return np.concatenate(probabilities), np.concatenate(labels), np.concatenate(images)


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


def _load(run_dir, model_path):
  """(predict_fn, input_shape, num_classes, config, run_dir, model_path) for a .keras checkpoint
  or an export; the data config comes from the run (or the export's recorded recipe)."""
  if model_path is None:
    if run_dir is None:
      raise UsageError("nothing to evaluate; pass --run_dir=RUN (its best checkpoint) or "
                       "--model=PATH (a .keras checkpoint or an export version folder)")
    model_path = runs.checkpoint_path(run_dir, "best")
  if os.path.isdir(model_path):
    loaded, metadata = serving.load_export(model_path)
    config = runs.load_config(run_dir) if run_dir else runs.config_from_dict(metadata["config"])
    run_dir = run_dir or metadata.get("run_dir")
    return (lambda images: loaded.serve(images).numpy(), metadata["input_shape"],
            len(metadata["class_names"]), config, run_dir, model_path)
  model = runs.load_checkpoint(model_path)
  if run_dir is None:
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(model_path)))
    if not os.path.isfile(os.path.join(run_dir, "config.yaml")):
      raise UsageError(f"{model_path} is not in a run directory; pass --run_dir=RUN, the run "
                       "whose data set to evaluate on")
  return (model.predict_on_batch, model.input_shape[1:], model.output_shape[-1],
          runs.load_config(run_dir), run_dir, model_path)


def _report_dir(report_dir, run_dir):
  """--report_dir if new or empty, else the first free <run_dir>/evaluation[-N]/."""
  if report_dir:
    if os.path.exists(report_dir) and (not os.path.isdir(report_dir) or os.listdir(report_dir)):
      raise UsageError(f"report dir {report_dir} already exists and is not empty; pass a new "
                       "--report_dir")
    return report_dir
  if not run_dir or not os.path.isdir(run_dir):
    raise UsageError(f"the model's run directory {run_dir} is not here to hold the report; pass "
                     "--report_dir=DIR")
  base, number = os.path.join(run_dir, "evaluation"), 1
  while os.path.exists(base if number == 1 else f"{base}-{number}"):
    number += 1
  return base if number == 1 else f"{base}-{number}"


def evaluate(run_dir=None, model_path=None, split="test", tta_flip=False, report_dir=None,
             dataset=None, data_dir=None, limit=None, batch_size=256, worst=25):
  """Evaluates a run's best checkpoint, or `model_path` (a .keras checkpoint or an export), on
  the run's data (or `dataset`/`data_dir`) and writes the report; returns (report dir, results)."""
  if split not in ("test", "validation"):
    raise UsageError(f"split {split!r} must be 'test' or 'validation'")
  predict_fn, input_shape, num_classes, config, run_dir, model_path = _load(run_dir, model_path)
  if dataset is not None:
    config.data.name, config.data.data_dir = dataset, ""
  if data_dir is not None:
    config.data.data_dir = data_dir
  if limit is not None:
    config.data.limit = limit
  report_dir = _report_dir(report_dir, run_dir)
  data = runs.load_data(config, batch_size)
  runs.check_compatible(input_shape, num_classes, data, model_path)
  probabilities, labels, images = predict(
      predict_fn, data.test if split == "test" else data.validation, tta_flip)
  results = dict(compute(probabilities, labels, data.class_names), model=model_path,
                 data=config.data.to_dict(), split=data.test_split if split == "test" else split,
                 tta="flip" if tta_flip else "none")
  results = report.write(report_dir, results, probabilities, labels, images, data.class_names,
                         worst_mistakes(probabilities, labels, worst))
  return report_dir, results
