"""The evaluation report folder: report.md (Markdown with the pictures), report.json (every
number), confusion_matrix.png, worst_mistakes.png and reliability.png; and the same for
TensorBoard (write_tensorboard): the figures as images, the numbers as scalars, the per-class
table as text."""

import datetime
import json
import os

import numpy as np

from app.core import plots, summaries

FILES = ("report.md", "report.json", "confusion_matrix.png", "worst_mistakes.png",
         "reliability.png")


def _worst_titles(probabilities, labels, indices, class_names):
  predicted = probabilities.argmax(axis=-1)
  return [f"#{i}: {class_names[labels[i]]}\n-> {class_names[predicted[i]]} "
          f"({probabilities[i, predicted[i]]:.2f})" for i in indices]


SCALARS = ("accuracy", "cross_entropy", "expected_calibration_error", "macro_precision",
           "macro_recall", "macro_f1")  # and the top-k accuracy


def _top_key(results):
  return next(k for k in results if k.startswith("top") and k.endswith("_accuracy"))


def _per_class_table(results):
  lines = ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
  return lines + [f"| {c['class_id']} {c['class_name']} | {c['precision']:.4f} | "
                  f"{c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |"
                  for c in results["per_class"]]


def write_tensorboard(results, report_dir, log_dir):
  """The report as one TensorBoard run in `log_dir` (replacing an earlier one there): the
  scalars evaluation/<metric> and per_class_<precision|recall|f1>/<id>_<class>, the report's
  figures as images evaluation/<figure> and the per-class table as text. Step 0: an evaluation
  is one point, not a curve."""
  summaries.write(log_dir, [
      *summaries.scalars({k: results[k] for k in (*SCALARS, _top_key(results))},
                         prefix="evaluation/"),
      *(point for c in results["per_class"] for point in summaries.scalars(
          {f"per_class_{k}/{c['class_id']}_{c['class_name']}": c[k]
           for k in ("precision", "recall", "f1")})),
      *(summaries.png(f"evaluation/{figure}", os.path.join(report_dir, f"{figure}.png"))
        for figure in ("confusion_matrix", "worst_mistakes", "reliability")),
      summaries.text("evaluation/per_class", "\n".join(_per_class_table(results)))])


def _markdown(results, worst_count):
  top_key = _top_key(results)
  lines = [
      "# Evaluation report", "",
      f"- model: `{results['model']}`",
      f"- data: `{results['data']['name']}` ({results['data']['data_dir'] or 'default location'})"
      f", split `{results['split']}`, {results['images']} images",
      f"- test-time augmentation: {results['tta']}",
      f"- written: {results['written']}", "",
      *[f"**Warning**: {w['message']}\n" for w in results.get("warnings", [])],
      "| metric | value |", "|---|---|",
      f"| accuracy | {results['accuracy']:.4f} |",
      f"| {top_key.replace('_accuracy', '')} accuracy | {results[top_key]:.4f} |",
      f"| cross-entropy | {results['cross_entropy']:.4f} |",
      f"| expected calibration error (ECE, {len(results['calibration_bins'])} bins) | "
      f"{results['expected_calibration_error']:.4f} |",
      f"| macro precision | {results['macro_precision']:.4f} |",
      f"| macro recall | {results['macro_recall']:.4f} |",
      f"| macro F1 | {results['macro_f1']:.4f} |", "",
      "## Per class", "",
      *_per_class_table(results),
      "", "## Confusion matrix", "", "Rows: true class; columns: predicted class.", "",
      "![confusion matrix](confusion_matrix.png)", "",
      "## Worst mistakes", "",
      f"The {worst_count} wrong predictions made with the highest confidence: image index, true "
      "class -> predicted class (probability).", "",
      "![worst mistakes](worst_mistakes.png)", "",
      "## Calibration", "",
      "Accuracy against confidence in equal-width bins; the gap to the diagonal, weighted by "
      "each bin's share of the images, sums to the ECE.", "",
      "![reliability diagram](reliability.png)", "",
  ]
  return "\n".join(lines)


def write(report_dir, results, probabilities, labels, images, class_names, indices,
          tensorboard_dir=None):
  """Writes the report files into `report_dir` (created; the caller checked it is new or
  empty), and into `tensorboard_dir` if given (write_tensorboard). `results` is
  app.evaluate.metrics.compute's dict plus model, data, split and tta; `indices` are the worst
  mistakes to show. Returns the results as written to report.json."""
  os.makedirs(report_dir, exist_ok=True)
  results = dict(results, written=datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds"))
  results["worst_mistakes"] = [
      {"index": int(i), "true": class_names[labels[i]],
       "predicted": class_names[int(np.argmax(probabilities[i]))],
       "probability": float(np.max(probabilities[i]))} for i in indices]
  plots.confusion_matrix(results["confusion_matrix"], class_names,
                         os.path.join(report_dir, "confusion_matrix.png"))
  plots.image_grid(images[indices], _worst_titles(probabilities, labels, indices, class_names),
                   os.path.join(report_dir, "worst_mistakes.png"))
  plots.reliability_diagram(results["calibration_bins"], results["expected_calibration_error"],
                            os.path.join(report_dir, "reliability.png"))
  with open(os.path.join(report_dir, "report.json"), "w") as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(report_dir, "report.md"), "w") as f:
    f.write(_markdown(results, len(indices)))
  if tensorboard_dir:
    write_tensorboard(results, report_dir, tensorboard_dir)
  return results
