"""Is the trained model of any use? Warnings from a run's figures alone (pure functions of numbers).

A run whose model ends at chance (test accuracy 0.200 on 5 balanced classes, its validation
accuracy fallen from 0.448 to 0.200 in the last epoch) used to exit 0 without a word. Each check
returns a list of warnings, [] when fine: {"code", "message" (one line: what was seen, its likely
causes and fixes), "figures" (the numbers compared)}. app/train/train_and_evaluate.py records
them in metrics.json and the export's metadata; app.evaluate in report.json.
"""

import math
import sys

from absl import logging

# Within 2 points of always answering the most common class counts as chance: on the 10,000
# images of a standard test split that is 200 images, 4 binomial standard errors or more, so a
# model that learnt anything clears it (a tiny split may graze it by luck alone).
CHANCE_MARGIN = 0.02
# A final validation accuracy "far" below the run's best is both >= 10 points below it and >= 25%
# of it. The points keep out the epoch-to-epoch wobble of a small split (one image of a 26-image
# split is 3.8 points; the standard error at n=100, p=0.5 is 5); the share keeps out a few
# images' noise at high accuracy (0.80 -> 0.69 on 26 images is 3 of them) and leaves what this is
# for: a model losing a quarter or more of what it had, as the 0.448 -> 0.200 collapse that
# prompted it (55%). The cost: from 0.95 only a fall below 0.71 is flagged.
COLLAPSE_POINTS = 0.10
COLLAPSE_RELATIVE = 0.25

_FIXES = ("likely a learning rate too high or too low (python -m app.lr_find suggests one; "
          "--learning_rate), too few steps (more --epochs, or a smaller --batch_size for this "
          "much data), or an image size the model cannot use (--config.data.image_size)")


def _number(value):
  """A figure as JSON takes it strictly: finite floats as they are, NaN/inf as their names."""
  value = float(value)
  return value if math.isfinite(value) else str(value)


def majority_rate(class_counts):
  """The accuracy of always answering the most common class: its share of the split; None for an
  empty split."""
  counts = [int(c) for c in class_counts]
  return max(counts) / sum(counts) if sum(counts) else None


def chance_level(accuracy, class_counts, split, steps_trained=None):
  """[a "chance_level" warning] when `accuracy` on `split` is within CHANCE_MARGIN of the split's
  majority-class rate, or below it; `steps_trained` (optimizer steps in all) goes in the message."""
  rate = majority_rate(class_counts)
  if rate is None or accuracy > rate + CHANCE_MARGIN:
    return []
  steps = f" after {steps_trained} training steps" if steps_trained is not None else ""
  return [{
      "code": "chance_level",
      "message": (f"{split} accuracy {accuracy:.3f} is at chance{steps}: always answering the "
                  f"most common class scores {rate:.3f}; the model is of no use; {_FIXES}"),
      "figures": {"split": split, "accuracy": _number(accuracy), "majority_rate": rate,
                  "margin": CHANCE_MARGIN, "images": int(sum(class_counts)),
                  "steps_trained": steps_trained},
  }]


def collapse(final_accuracy, val_accuracies, validation_every=1):
  """[a "validation_collapse" warning] when the final validation accuracy is far below the best
  of `val_accuracies` (history's val_accuracy: one per validated epoch, every
  `validation_every`-th epoch): COLLAPSE_POINTS and COLLAPSE_RELATIVE of it."""
  if not val_accuracies:
    return []
  best_index = max(range(len(val_accuracies)), key=lambda i: val_accuracies[i])  # the first best
  best = float(val_accuracies[best_index])
  drop = round(best - final_accuracy, 9)  # 0.448 - 0.348 is 0.1 here, not 0.0999...
  if not (drop >= COLLAPSE_POINTS and drop >= COLLAPSE_RELATIVE * best):
    return []
  best_epoch = (best_index + 1) * validation_every
  return [{
      "code": "validation_collapse",
      "message": (f"validation accuracy ended at {final_accuracy:.3f}, far below the "
                  f"{best:.3f} of epoch {best_epoch}: training fell apart late; keep the best "
                  "epoch (--config.train.early_stopping_patience=N, or export "
                  "checkpoints/best.keras), lower --learning_rate, or train in "
                  "--mixed_precision=float32"),
      "figures": {"final_accuracy": _number(final_accuracy), "best_accuracy": best,
                  "best_epoch": best_epoch, "points": COLLAPSE_POINTS,
                  "relative": COLLAPSE_RELATIVE},
  }]


def loss_trend(losses):
  """[a "loss_not_finite" or "loss_rose" warning] when the last epoch's training loss is NaN/inf,
  or (two epochs or more) higher than the first epoch's."""
  if not losses:
    return []
  first, last = float(losses[0]), float(losses[-1])
  figures = {"first_loss": _number(first), "last_loss": _number(last), "epochs": len(losses)}
  if not math.isfinite(last):
    return [{"code": "loss_not_finite", "figures": figures,
             "message": f"the training loss ended at {last}: training diverged; lower "
                        "--learning_rate or train in --mixed_precision=float32"}]
  if len(losses) > 1 and last > first:
    return [{"code": "loss_rose", "figures": figures,
             "message": f"the training loss rose from {first:.4f} (epoch 1) to {last:.4f} "
                        f"(epoch {len(losses)}): the model did not learn; {_FIXES}"}]
  return []


def check_run(test_accuracy, test_counts, validation_accuracy, validation_counts, history,
              validation_every=1, steps_trained=None, validation_is_test=False):
  """Every warning of a finished run: chance level on test and on validation (once when
  validation is the test split), a late validation collapse, a training loss that ended badly.
  `history` is fit's dict of per-epoch lists (loss, val_accuracy, ...)."""
  warnings = chance_level(test_accuracy, test_counts, "test", steps_trained)
  if not validation_is_test:
    warnings += chance_level(validation_accuracy, validation_counts, "validation", steps_trained)
  warnings += collapse(validation_accuracy, history.get("val_accuracy") or [], validation_every)
  return warnings + loss_trend(history.get("loss") or [])


def report(warnings):
  """Logs each warning and prints it as one `warning: ...` line to stderr, so a user sees it
  without reading the logs."""
  for warning in warnings:
    logging.warning("%s: %s", warning["code"], warning["message"])
    print(f"warning: {warning['message']}", file=sys.stderr)
