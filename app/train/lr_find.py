"""The learning-rate range test's short training run: the recipe's data and model, trained from
fresh weights for `steps` batches under app.optim.lr_find's exponential sweep, one rate per batch;
writes the curve and the suggestion (lr_find.csv/.png/.json) that app.train and the search read."""

import csv
import json
import os

import keras

from app import accel
from app.core import plots
from app.core.errors import UsageError
from app.data import pipeline
from app.data import sources
from app.models import build_model
from app.optim.lr_find import BatchLosses, ExponentialSweep, suggest
from app.optim.optimizers import build_optimizer
from app.train import output_paths


def run_lr_find(config, output_dir, min_rate, max_rate, steps):
  """Sweeps the recipe's model and data; writes lr_find.csv/.png/.json; returns the summary."""
  if not 0 < min_rate < max_rate:
    raise UsageError(f"need 0 < min_lr < max_lr; received {min_rate} and {max_rate}")
  if steps < 10:
    raise UsageError(f"steps={steps} is too few for a sweep; pass --steps=100 or more")
  output_paths.require_writable_dir(output_dir, "output dir", "--output_dir")  # before the sweep
  keras.utils.set_random_seed(config.seed)
  accel.set_precision(config.runtime)
  source = sources.load(config.data)
  data = pipeline.build(source, config.data, config.train.batch_size, config.seed)
  model = build_model(config.model, data.image_shape, len(data.class_names), data.mean,
                      data.variance)
  model.compile(
      optimizer=build_optimizer(config.optim, ExponentialSweep(min_rate, max_rate, steps)),
      loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.train.label_smoothing))
  recorder = BatchLosses()
  model.fit(data.train.repeat(), steps_per_epoch=steps, epochs=1, callbacks=[recorder], verbose=0,
            shuffle=False)  # the pipeline shuffles
  rates = [min_rate * (max_rate / min_rate) ** (i / max(steps - 1, 1))
           for i in range(len(recorder.losses))]
  suggested, at_minimum, steepest = suggest(rates, recorder.smoothed)

  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, "lr_find.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["step", "learning_rate", "loss", "smoothed_loss"])
    writer.writerows(zip(range(len(rates)), rates, recorder.losses, recorder.smoothed))
  plots.lr_find_curve(rates, recorder.smoothed, suggested, os.path.join(output_dir, "lr_find.png"))
  summary = {"suggested_learning_rate": suggested, "min_loss_learning_rate": at_minimum,
             "steepest_learning_rate": steepest, "steps_run": len(rates),
             "batch_size": config.train.batch_size, "model": config.model.name,
             "dataset": config.data.name}
  with open(os.path.join(output_dir, "lr_find.json"), "w") as f:
    json.dump(summary, f, indent=2)
  return summary
