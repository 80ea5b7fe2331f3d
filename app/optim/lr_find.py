"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates", section 3.3).

Train from fresh weights while the rate grows exponentially from min_rate to max_rate, one
batch per rate, and record the loss. The loss falls while the rate is useful and blows up past
it; the suggestion is the rate of the lowest smoothed loss divided by 10 (a rate where the loss
still falls fast, well short of the blow-up), and the steepest-descent rate is reported too.
"""

import csv
import json
import math
import os

import keras
import numpy as np
from keras import ops

from app import accel
from app.core import plots
from app.data import pipeline
from app.data import sources
from app.core.errors import UsageError
from app.models import build_model
from app.optim.optimizers import build_optimizer

SMOOTHING = 0.9  # exponential moving average of the batch losses (bias-corrected)
STOP_FACTOR = 4.0  # stop once the smoothed loss exceeds 4x its minimum


@keras.saving.register_keras_serializable(package="app")
class ExponentialSweep(keras.optimizers.schedules.LearningRateSchedule):
  """min_rate * (max_rate / min_rate) ** (step / steps)."""

  def __init__(self, min_rate, max_rate, steps):
    self.min_rate, self.max_rate, self.steps = min_rate, max_rate, steps

  def __call__(self, step):
    progress = ops.cast(step, "float32") / max(self.steps - 1, 1)
    return self.min_rate * ops.power(self.max_rate / self.min_rate, progress)

  def get_config(self):
    return {"min_rate": self.min_rate, "max_rate": self.max_rate, "steps": self.steps}


class _BatchLosses(keras.callbacks.Callback):
  """Per-batch losses (Keras logs a running mean over the epoch; differences recover each batch)
  and an early stop once the smoothed loss diverges."""

  def __init__(self):
    super().__init__()
    self.losses, self.smoothed, self._mean, self._average = [], [], 0.0, 0.0

  def on_train_batch_end(self, batch, logs=None):
    mean = float(logs["loss"])
    loss = (batch + 1) * mean - batch * self._mean
    self._mean = mean
    self._average = SMOOTHING * self._average + (1 - SMOOTHING) * loss
    smoothed = self._average / (1 - SMOOTHING ** (batch + 1))
    self.losses.append(loss)
    self.smoothed.append(smoothed)
    if not math.isfinite(smoothed) or smoothed > STOP_FACTOR * min(self.smoothed):
      self.model.stop_training = True


def suggest(rates, smoothed):
  """(suggested rate, rate at the minimum smoothed loss, rate of the steepest descent)."""
  smoothed = np.asarray(smoothed, dtype=np.float64)
  finite = np.isfinite(smoothed)
  best = int(np.argmin(np.where(finite, smoothed, np.inf)))
  slopes = np.gradient(smoothed[:best + 1], np.log(rates[:best + 1])) if best > 1 else [0.0]
  steepest = rates[int(np.argmin(slopes))]
  return rates[best] / 10, rates[best], steepest


def run_lr_find(config, output_dir, min_rate, max_rate, steps):
  """Sweeps the recipe's model and data; writes lr_find.csv/.png/.json; returns the summary."""
  if not 0 < min_rate < max_rate:
    raise UsageError(f"need 0 < min_lr < max_lr; received {min_rate} and {max_rate}")
  if steps < 10:
    raise UsageError(f"steps={steps} is too few for a sweep; pass --steps=100 or more")
  keras.utils.set_random_seed(config.seed)
  accel.set_precision(config.runtime)
  source = sources.load(config.data)
  data = pipeline.build(source, config.data, config.train.batch_size, config.seed)
  model = build_model(config.model, data.image_shape, len(data.class_names), data.mean,
                      data.variance)
  model.compile(
      optimizer=build_optimizer(config.optim, ExponentialSweep(min_rate, max_rate, steps)),
      loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.train.label_smoothing))
  recorder = _BatchLosses()
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
