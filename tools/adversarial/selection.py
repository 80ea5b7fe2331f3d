"""Adversarial cases: selection (items 4 and 5; see tools/adversarial/__init__.py).

What selects weights (best.keras, early stopping, the plateau schedule) must never see the test
split, metrics.json must say which split each figure comes from, and every figure reported (in
metrics.json, in an export's metadata) must be that of the weights it names. The runs that need
best.keras to differ from the last epoch train 4 epochs at rate 0.1: on this seed the held-out
validation accuracy peaks at epoch 3 (each case says what it saw).
"""

import csv
import glob
import json
import os

import numpy as np

from tools.adversarial.common import Case, command, refused_in_one_line, TINY

# 4 epochs at a high rate: validation accuracy rises, then falls at the last epoch.
NOISY = TINY[:2] + ("--epochs=4",) + TINY[3:] + ("--learning_rate=0.1",)
SPEEDRUN = ("--config.data.validation_split=0",)  # validate on test, as the speed recipes do


def _train(work, *args):
  """(exit status, metrics.json or None, history.csv's val_accuracy per epoch, stderr tail)."""
  run_dir = os.path.join(work, "run")
  result = command("app.train", *args, f"--output_dir={run_dir}")
  metrics_path, history_path = (os.path.join(run_dir, f) for f in ("metrics.json", "history.csv"))
  metrics = json.load(open(metrics_path)) if os.path.isfile(metrics_path) else None
  accuracies = []
  if os.path.isfile(history_path):
    with open(history_path) as f:
      accuracies = [float(row["val_accuracy"]) for row in csv.DictReader(f)]
  return result.returncode, metrics, accuracies, result.stderr.strip()[-200:]


def _rounded(values):
  return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def held_out_by_default(work):
  """Item 4: a run with no validation flag validated (and selected best.keras) on the test split."""
  status, metrics, _, tail = _train(work, *TINY)
  if status != 0:
    return False, f"exit status {status}: {tail}"
  split = metrics.get("validation_split", "")
  held = (split.startswith("held_out") and metrics["num_validation"] > 0
          and metrics["num_train"] + metrics["num_validation"] == 256
          and metrics.get("selected_on") == "validation" and metrics["test_split"] == "test"
          and metrics.get("splits", {}).get("validation_accuracy") == split)
  return held, (f"validation: {metrics['num_validation']} images, {split or 'unlabelled'}; "
                f"test: {metrics['num_test']} images ({metrics['test_split']}); selected_on "
                f"{metrics.get('selected_on', 'unrecorded')}")


def early_stopping_on_test_refused(work):
  """Item 4: early stopping with validation_split=0 stopped and restored on test accuracy."""
  result = command("app.train", *TINY, *SPEEDRUN, "--config.train.early_stopping_patience=2",
                   f"--output_dir={os.path.join(work, 'run')}")
  held, detail = refused_in_one_line(result, "early_stopping_patience", "test split",
                                     "--config.data.validation_split=0.1")
  return held and not os.path.exists(os.path.join(work, "run")), detail


def plateau_on_test_refused(work):
  """Item 4: the plateau schedule with validation_split=0 lowered the rate on test loss."""
  result = command("app.train", *TINY, *SPEEDRUN, "--config.optim.schedule=plateau",
                   f"--output_dir={os.path.join(work, 'run')}")
  held, detail = refused_in_one_line(result, "plateau", "test split",
                                     "--config.data.validation_split=0.1")
  return held and not os.path.exists(os.path.join(work, "run")), detail


def speedrun_convention_selects_nothing(work):
  """Item 4: with validation_split=0 (the speed recipes' convention) best.keras was the epoch of
  the best test accuracy; now nothing selects (best = last) and metrics.json says "test"."""
  status, metrics, accuracies, tail = _train(work, *NOISY, *SPEEDRUN)
  if status != 0:
    return False, f"exit status {status}: {tail}"
  checkpoints = os.path.join(work, "run", "checkpoints")
  best, last = (open(os.path.join(checkpoints, f"{name}.keras"), "rb").read()
                for name in ("best", "last"))
  record = json.load(open(os.path.join(checkpoints, "best.json")))
  held = (best == last and record.get("selected_on", "missing") is None
          and metrics.get("selected_on", "missing") is None
          and metrics.get("validation_split") == "test"
          and set(metrics.get("splits", {}).values()) == {"test"})
  return held, (f"test accuracy per epoch {_rounded(accuracies)}; best.keras "
                f"{'=' if best == last else '!='} last.keras; best.json {record}; metrics.json "
                f"validation_split {metrics.get('validation_split')!r}, selected_on "
                f"{metrics.get('selected_on', 'unrecorded')}")


def _image_folder(root, per_class=30):
  """Class folders of 16x16 PNGs, no train/ or test/: a source without a test split."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for index, name in enumerate(("red", "green", "blue")):
    os.makedirs(os.path.join(root, name))
    for i in range(per_class):
      image = rng.integers(0, 80, (16, 16, 3))
      image[..., index] += 150
      Image.fromarray(image.astype(np.uint8)).save(os.path.join(root, name, f"{i:03d}.png"))
  return 3 * per_class


def no_test_split_is_not_tested_on_validation(work):
  """Item 4: a source without a test split reported its test figures on the validation part,
  the one best.keras was selected on."""
  root = os.path.join(work, "images")
  total = _image_folder(root)
  status, metrics, _, tail = _train(work, "--dataset=folder", f"--data_dir={root}",
                                    *TINY[:3], "--batch_size=16", TINY[5])
  if status != 0:
    return False, f"exit status {status}: {tail}"
  splits = metrics.get("splits", {})
  held = (metrics["test_split"] == "held_out_test" and metrics["num_test"] > 0
          and metrics["num_validation"] > 0
          and metrics["num_train"] + metrics["num_validation"] + metrics["num_test"] == total
          and splits.get("test_accuracy") == "held_out_test"
          and splits.get("validation_accuracy", "held_out_test") != "held_out_test")
  return held, (f"{total} images: {metrics['num_train']} train, {metrics['num_validation']} "
                f"validation ({metrics.get('validation_split', 'unlabelled')}), "
                f"{metrics['num_test']} test ({metrics['test_split']})")


def export_metadata_is_the_exported_checkpoint(work):
  """Item 5: app.export exported best.keras but wrote the last epoch's test accuracy (metrics.json)
  into the metadata: 0.100 there, 0.130 from app.evaluate on the same checkpoint."""
  status, metrics, accuracies, tail = _train(work, *NOISY)
  if status != 0:
    return False, f"exit status {status}: {tail}"
  run_dir = os.path.join(work, "run")
  best_epoch = json.load(open(os.path.join(run_dir, "checkpoints", "best.json")))["epoch"]
  exported = command("app.export", f"--run_dir={run_dir}",
                     f"--export_dir={os.path.join(work, 'exports')}", "--parity_images=8")
  if exported.returncode != 0:
    return False, f"app.export: exit status {exported.returncode}: {exported.stderr[-160:]}"
  report_dir = os.path.join(work, "report")
  evaluated = command("app.evaluate", f"--run_dir={run_dir}", f"--report_dir={report_dir}",
                      "--worst=1")
  if evaluated.returncode != 0:
    return False, f"app.evaluate: exit status {evaluated.returncode}: {evaluated.stderr[-160:]}"
  [metadata_path] = glob.glob(os.path.join(work, "exports", "*", "*", "assets.extra",
                                           "metadata.json"))
  recorded = json.load(open(metadata_path))["metrics"]["test_accuracy"]
  accuracy = json.load(open(os.path.join(report_dir, "report.json")))["accuracy"]
  detail = (f"best.keras = epoch {best_epoch} of {len(accuracies)}: metadata test_accuracy "
            f"{recorded:.4f}, app.evaluate {accuracy:.4f}, metrics.json (the last epoch's) "
            f"{metrics['test_accuracy']:.4f}")
  if best_epoch == len(accuracies):
    return False, "setup: best.keras is the last epoch, so the case shows nothing; " + detail
  return abs(recorded - accuracy) < 1e-6, detail


def metrics_after_early_stopping_are_the_restored_weights(work):
  """Item 5: after early stopping restored an earlier epoch, metrics.json's validation_accuracy
  was the last epoch's (history.csv's last row), not that of the weights it reports on."""
  status, metrics, accuracies, tail = _train(work, *NOISY,
                                             "--config.train.early_stopping_patience=1")
  if status != 0:
    return False, f"exit status {status}: {tail}"
  best = int(np.argmax(accuracies))
  detail = (f"validation accuracy per epoch {_rounded(accuracies)}; metrics.json "
            f"validation_accuracy {metrics['validation_accuracy']:.4f}, weights "
            f"{metrics.get('weights', 'unrecorded')!r}")
  if best == len(accuracies) - 1:
    return False, "setup: the last epoch is the best, so the case shows nothing; " + detail
  return abs(metrics["validation_accuracy"] - accuracies[best]) < 1e-6, detail


CASES = [
    Case(4, "validation_held_out_by_default", held_out_by_default),
    Case(4, "early_stopping_on_test_refused", early_stopping_on_test_refused),
    Case(4, "plateau_on_test_refused", plateau_on_test_refused),
    Case(4, "speedrun_convention_selects_nothing", speedrun_convention_selects_nothing),
    Case(4, "no_test_split_is_not_tested_on_validation", no_test_split_is_not_tested_on_validation),
    Case(5, "export_metadata_is_the_exported_checkpoint",
         export_metadata_is_the_exported_checkpoint),
    Case(5, "metrics_after_early_stopping_are_the_restored_weights",
         metrics_after_early_stopping_are_the_restored_weights),
]
