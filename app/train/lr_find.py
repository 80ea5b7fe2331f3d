"""The learning-rate range test's short training run: the recipe's data and model, trained from
fresh weights for `steps` batches under app.optim.lr_find's exponential sweep, one rate per batch;
writes the curve and the suggestion (lr_find.csv/.png/.json) that app.train and the search read,
and the same for TensorBoard (tensorboard/lr_find)."""

import contextlib
import csv
import json
import os

import keras
import ml_collections
from absl import logging

from app import accel
from app.core import plots, summaries
from app.core.errors import UsageError
from app.data import pipeline
from app.data import sources
from app.models import build_model
from app.optim.lr_find import BatchLosses, ExponentialSweep, suggest
from app.optim.optimizers import build_optimizer, peak_rate
from app.train import output_paths


AUTO_MIN_RATE, AUTO_MAX_RATE, AUTO_STEPS = 1e-4, 10.0, 100  # optim.learning_rate_from="auto"


def sweep(config, data, min_rate, max_rate, steps, strategy=None):
  """The range test on `data` (app.data.pipeline.Datasets): a fresh model of the recipe trained
  for `steps` batches, one rate each from min_rate up to max_rate; returns (summary, rows of
  step, rate, loss, smoothed loss)."""
  keras.utils.set_random_seed(config.seed)
  with strategy.scope() if strategy else contextlib.nullcontext():
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
  summary = {"suggested_learning_rate": suggested, "min_loss_learning_rate": at_minimum,
             "steepest_learning_rate": steepest, "steps_run": len(rates),
             "batch_size": config.train.batch_size, "model": config.model.name,
             "dataset": config.data.name}
  return summary, list(zip(range(len(rates)), rates, recorder.losses, recorder.smoothed))


def write_tensorboard(summary, rows, figure, log_dir):
  """The sweep for TensorBoard: per step its rate, loss and smoothed loss; the three rates of the
  summary; the figure (the loss against the rate on a log axis, which TensorBoard's step axis
  cannot draw)."""
  rates = ("suggested_learning_rate", "min_loss_learning_rate", "steepest_learning_rate")
  summaries.write(log_dir, [
      *(point for step, rate, loss, smoothed in rows for point in summaries.scalars(
          {"learning_rate": rate, "loss": loss, "smoothed_loss": smoothed}, step, "lr_find/")),
      *summaries.scalars({k: summary[k] for k in rates}, prefix="lr_find/"),
      summaries.png("lr_find/curve", figure, description="smoothed loss against the learning "
                    "rate")])


def write(summary, rows, output_dir):
  """lr_find.csv (the curve), lr_find.png and lr_find.json (the summary) in output_dir, and the
  same for TensorBoard in output_dir/tensorboard/lr_find (in a run dir, beside Keras's logs)."""
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, "lr_find.csv"), "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["step", "learning_rate", "loss", "smoothed_loss"])
    writer.writerows(rows)
  figure = os.path.join(output_dir, "lr_find.png")
  plots.lr_find_curve([row[1] for row in rows], [row[3] for row in rows],
                      summary["suggested_learning_rate"], figure)
  with open(os.path.join(output_dir, "lr_find.json"), "w") as f:
    json.dump(summary, f, indent=2)
  write_tensorboard(summary, rows, figure, os.path.join(output_dir, summaries.LOG_DIR, "lr_find"))


def run_lr_find(config, output_dir, min_rate, max_rate, steps):
  """Sweeps the recipe's model and data; writes lr_find.csv/.png/.json; returns the summary."""
  if not 0 < min_rate < max_rate:
    raise UsageError(f"need 0 < min_lr < max_lr; received {min_rate} and {max_rate}")
  if steps < 10:
    raise UsageError(f"steps={steps} is too few for a sweep; pass --steps=100 or more")
  output_paths.require_writable_dir(output_dir, "output dir", "--output_dir")  # before the sweep
  accel.set_precision(config.runtime)
  source = sources.load(config.data)
  data = pipeline.build(source, config.data, config.train.batch_size, config.seed)
  summary, rows = sweep(config, data, min_rate, max_rate, steps)
  write(summary, rows, output_dir)
  return summary


def auto_rate(config, data, strategy, started):
  """optim.learning_rate_from="auto": (config at the range test's suggested rate, scaled to the
  batch as the recipe scales it, and the test's (summary, rows) for the run dir), or for a
  resumed run (`started`: the config it started with, RunDir.started_config) the rate it
  started with (and None)."""
  planned = ml_collections.ConfigDict(config.to_dict())
  if started:
    planned.optim.learning_rate = started.optim.learning_rate
    planned.optim.peak_learning_rate = started.optim.peak_learning_rate
    return planned, None
  summary, rows = sweep(config, data, AUTO_MIN_RATE, AUTO_MAX_RATE, AUTO_STEPS, strategy)
  rate = summary["suggested_learning_rate"]
  optim = planned.optim
  optim.learning_rate = rate
  optim.peak_learning_rate = peak_rate(optim, config.train.batch_size)
  logging.info("optim.learning_rate_from=auto: the range test (%d steps from %g to %g) suggests "
               "%.4g, peak %.4g at batch %d", summary["steps_run"], AUTO_MIN_RATE, AUTO_MAX_RATE,
               rate, optim.peak_learning_rate, config.train.batch_size)
  return planned, (summary, rows)
