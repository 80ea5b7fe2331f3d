"""k-fold cross-validation: the same recipe trained k times, each fold of the training split
held out once; reports mean and standard deviation of the held-out accuracy."""

import os

import ml_collections
import numpy as np
from absl import logging

from app.core.run_dir import RunDir
from app.train.train_and_evaluate import train_and_evaluate


def cross_validate(config):
  """Runs config.train.cv_folds trainings into <output_dir>/fold-<k>/ (no exports) and writes
  <output_dir>/cv_metrics.json; returns that summary."""
  run = RunDir(config.output_dir)
  run.check_new_or_resumable()
  folds, results = config.train.cv_folds, []
  for fold in range(folds):
    fold_config = ml_collections.ConfigDict(config.to_dict())
    fold_config.output_dir = os.path.join(config.output_dir, f"fold-{fold + 1}")
    fold_config.train.backup_dir = os.path.join(fold_config.output_dir, "backup")
    fold_config.export.enabled = False
    logging.info("cross-validation: fold %d of %d", fold + 1, folds)
    results.append(train_and_evaluate(fold_config, fold=(fold, folds)))
  accuracies = np.array([r["validation_accuracy"] for r in results])
  summary = {
      "cv_folds": folds,
      "validation_accuracy_mean": float(accuracies.mean()),
      "validation_accuracy_std": float(accuracies.std(ddof=1)),
      "validation_accuracy_per_fold": accuracies.tolist(),
      "train_seconds": float(sum(r["train_seconds"] for r in results)),
      "fold_dirs": [os.path.join(config.output_dir, f"fold-{k + 1}") for k in range(folds)],
  }
  run.write_json("cv_metrics.json", summary)
  return summary
