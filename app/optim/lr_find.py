"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates", section 3.3).

Train from fresh weights while the rate grows exponentially from min_rate to max_rate, one
batch per rate, and record the loss. The loss falls while the rate is useful and blows up past
it; the suggestion is the rate of the lowest smoothed loss divided by 10 (a rate where the loss
still falls fast, well short of the blow-up), and the steepest-descent rate is reported too.

Here: the sweep (ExponentialSweep), the per-batch loss record (BatchLosses), the suggestion and
read_suggested_rate, the one reader of the lr_find.json that app/train/lr_find.py writes.
"""

import json
import math

import keras
import numpy as np
from keras import ops

from app.core.errors import UsageError

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


class BatchLosses(keras.callbacks.Callback):
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


def read_suggested_rate(path):
  """The suggested learning rate of an lr_find.json written by python -m app.lr_find."""
  try:
    with open(path) as f:
      rate = float(json.load(f)["suggested_learning_rate"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UsageError(f"optim.learning_rate_from={path} is not an lr_find.json ({e}); run "
                     "python -m app.lr_find and pass its output_dir/lr_find.json") from None
  if not rate > 0:
    raise UsageError(f"{path} suggests a non-positive learning rate {rate}")
  return rate
