"""SCHEDULES: name -> keras LearningRateSchedule over optimizer steps, each with linear warmup.

Every schedule is built from the same resolved quantities (peak rate, total steps, warmup steps,
steps per epoch), so switching schedules is one config key.
"""

import math

import keras
import numpy as np
from absl import logging
from keras import ops

from app.core.registry import Registry

SCHEDULES = Registry("schedule")

# The optim keys in epochs that each schedule reads besides warmup_epochs (every one warms up):
# points of the run's course, so app.config.resolve() scales them with the run's length.
EPOCH_KEYS = {"step": ("decay_epochs",), "exponential": ("decay_epochs",),
              "cosine_restarts": ("decay_epochs",), "multistep": ("step_epochs",)}


def length_keys(config):
  """The keys in epochs of the run that `config` reads: where warmup ends, where the head-only
  phase of a transfer run ends, and the schedule's own (EPOCH_KEYS). They place events in the
  recipe's course, so they scale with its length (app.config.scale_lengths, and a budgeted run's
  plan: app/train/budget.py). Not lengths: the early-stopping and plateau patiences and
  validation_every_epochs count validations to wait through noise, which a shorter run does not
  make less noisy; optim.warmup_fraction is already a share of the run."""
  return ["optim.warmup_epochs", "train.frozen_epochs"] + [
      f"optim.{key}" for key in EPOCH_KEYS.get(config.optim.schedule, ())]


def scaled_length(value, scale, epochs):
  """A length key's value at `scale` times the run's length of `epochs` epochs."""
  if isinstance(value, int):  # whole epochs (frozen_epochs): at least 1 if set, within the run
    return min(max(math.floor(value * scale + 0.5), 1), epochs) if value else 0
  if isinstance(value, (tuple, list)):
    return tuple(v * scale for v in value)
  return value * scale


@keras.saving.register_keras_serializable(package="app")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
  """Linear ramp from 0 to `after(warmup_steps)` over `warmup_steps`, then `after(step)`."""

  def __init__(self, after, warmup_steps):
    self.after = after
    self.warmup_steps = warmup_steps

  def __call__(self, step):
    step = ops.cast(step, "float32")
    ramp = self.after(float(self.warmup_steps)) * (step + 1.0) / max(self.warmup_steps, 1)
    return ops.where(step < self.warmup_steps, ramp, self.after(step))

  def get_config(self):
    return {"after": keras.saving.serialize_keras_object(self.after),
            "warmup_steps": self.warmup_steps}

  @classmethod
  def from_config(cls, config):
    return cls(keras.saving.deserialize_keras_object(config["after"]), config["warmup_steps"])


@keras.saving.register_keras_serializable(package="app")
class Constant(keras.optimizers.schedules.LearningRateSchedule):

  def __init__(self, rate):
    self.rate = rate

  def __call__(self, step):
    return ops.cast(self.rate, "float32") + 0.0 * ops.cast(step, "float32")

  def get_config(self):
    return {"rate": self.rate}


@keras.saving.register_keras_serializable(package="app")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Straight line from `rate` at `start_step` to `rate * final_fraction` at `end_step`."""

  def __init__(self, rate, start_step, end_step, final_fraction=0.0):
    self.rate, self.start_step, self.end_step = rate, start_step, end_step
    self.final_fraction = final_fraction

  def __call__(self, step):
    progress = (ops.cast(step, "float32") - self.start_step) / max(self.end_step - self.start_step, 1)
    progress = ops.clip(progress, 0.0, 1.0)
    return self.rate * (1.0 - (1.0 - self.final_fraction) * progress)

  def get_config(self):
    return {"rate": self.rate, "start_step": self.start_step, "end_step": self.end_step,
            "final_fraction": self.final_fraction}


def _with_warmup(schedule, warmup_steps):
  return Warmup(schedule, warmup_steps) if warmup_steps > 0 else schedule


@SCHEDULES.register("constant")
def constant(rate, total_steps, warmup_steps, steps_per_epoch, optim):
  return _with_warmup(Constant(rate), warmup_steps)


@SCHEDULES.register("cosine")
def cosine(rate, total_steps, warmup_steps, steps_per_epoch, optim):
  """Half-cosine from the peak to peak * final_fraction over the steps after warmup."""
  decay = keras.optimizers.schedules.CosineDecay(
      rate, decay_steps=max(total_steps - warmup_steps, 1), alpha=optim.final_fraction)
  return _with_warmup(_Shifted(decay, warmup_steps), warmup_steps)


@SCHEDULES.register("onecycle")
def onecycle(rate, total_steps, warmup_steps, steps_per_epoch, optim):
  """Triangular: linear warmup to the peak, then linear decay to peak * final_fraction at the end
  (Smith 2018's one-cycle as used by the CIFAR-10 speedruns: Page's DAWNBench ResNet-9, airbench)."""
  return _with_warmup(LinearDecay(rate, warmup_steps, total_steps, optim.final_fraction), warmup_steps)


@SCHEDULES.register("step")
def step(rate, total_steps, warmup_steps, steps_per_epoch, optim):
  """Multiply by decay_rate every decay_epochs."""
  decay = keras.optimizers.schedules.ExponentialDecay(
      rate, decay_steps=max(int(optim.decay_epochs * steps_per_epoch), 1),
      decay_rate=optim.decay_rate, staircase=True)
  return _with_warmup(_Shifted(decay, warmup_steps), warmup_steps)


@SCHEDULES.register("exponential")
def exponential(rate, total_steps, warmup_steps, steps_per_epoch, optim):
  """Smooth decay by decay_rate per decay_epochs."""
  decay = keras.optimizers.schedules.ExponentialDecay(
      rate, decay_steps=max(int(optim.decay_epochs * steps_per_epoch), 1),
      decay_rate=optim.decay_rate)
  return _with_warmup(_Shifted(decay, warmup_steps), warmup_steps)


@keras.saving.register_keras_serializable(package="app")
class _Shifted(keras.optimizers.schedules.LearningRateSchedule):
  """`inner(step - shift)`: a decay that starts when warmup ends."""

  def __init__(self, inner, shift):
    self.inner, self.shift = inner, shift

  def __call__(self, step):
    return self.inner(ops.maximum(ops.cast(step, "float32") - self.shift, 0.0))

  def get_config(self):
    return {"inner": keras.saving.serialize_keras_object(self.inner), "shift": self.shift}

  @classmethod
  def from_config(cls, config):
    return cls(keras.saving.deserialize_keras_object(config["inner"]), config["shift"])


@SCHEDULES.register("multistep")
def multistep(rate, total_steps, warmup_steps, steps_per_epoch, optim):
  """Multiply by decay_rate at each epoch in step_epochs, e.g. (30, 60, 80)."""
  # PiecewiseConstantDecay keeps a value through its boundary step: end each one a step early.
  boundaries = [int(e * steps_per_epoch) - 1 for e in optim.step_epochs]
  values = [rate * optim.decay_rate ** i for i in range(len(boundaries) + 1)]
  return _with_warmup(keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values),
                      warmup_steps)


@SCHEDULES.register("polynomial")
def polynomial(rate, total_steps, warmup_steps, steps_per_epoch, optim):
  """(1 - t/T)^power from the peak to peak * final_fraction over the steps after warmup."""
  decay = keras.optimizers.schedules.PolynomialDecay(
      rate, decay_steps=max(total_steps - warmup_steps, 1),
      end_learning_rate=rate * optim.final_fraction, power=optim.power)
  return _with_warmup(_Shifted(decay, warmup_steps), warmup_steps)


@SCHEDULES.register("cosine_restarts")
def cosine_restarts(rate, total_steps, warmup_steps, steps_per_epoch, optim):
  """SGDR (Loshchilov & Hutter 2017): cosine cycles of decay_epochs, each twice the last."""
  decay = keras.optimizers.schedules.CosineDecayRestarts(
      rate, first_decay_steps=max(int(optim.decay_epochs * steps_per_epoch), 1), t_mul=2.0,
      m_mul=1.0, alpha=optim.final_fraction)
  return _with_warmup(_Shifted(decay, warmup_steps), warmup_steps)


@keras.saving.register_keras_serializable(package="app")
class PlateauScaled(keras.optimizers.schedules.LearningRateSchedule):
  """`inner(step) * scale`, where `scale` is a variable that ReduceOnPlateau lowers."""

  def __init__(self, inner, scale=1.0):
    self.inner = inner
    self.scale = keras.Variable(scale, dtype="float32", trainable=False, name="plateau_scale")

  def __call__(self, step):
    return self.inner(step) * self.scale

  def get_config(self):
    return {"inner": keras.saving.serialize_keras_object(self.inner),
            "scale": float(keras.ops.convert_to_numpy(self.scale))}

  @classmethod
  def from_config(cls, config):
    return cls(keras.saving.deserialize_keras_object(config["inner"]), config["scale"])


@SCHEDULES.register("plateau")
def plateau(rate, total_steps, warmup_steps, steps_per_epoch, optim):
  """Constant (after warmup) until validation loss stalls for plateau_patience epochs, then
  times decay_rate (ReduceOnPlateau, below); floors at peak * final_fraction."""
  return PlateauScaled(_with_warmup(Constant(rate), warmup_steps))


def build_schedule(optim, peak_rate, total_steps, steps_per_epoch):
  warmup_steps = int(round(optim.warmup_epochs * steps_per_epoch))
  return SCHEDULES.get(optim.schedule)(peak_rate, total_steps, warmup_steps, steps_per_epoch, optim)


class ReduceOnPlateau(keras.callbacks.Callback):
  """Lowers a PlateauScaled schedule's scale by `factor` when val_loss has not improved for
  `patience` epochs (keras.callbacks.ReduceLROnPlateau cannot: it needs a float rate, and ours
  is a schedule so warmup and the other schedules compose)."""

  def __init__(self, schedule, factor, patience, min_scale):
    super().__init__()
    self.schedule, self.factor, self.patience, self.min_scale = schedule, factor, patience, min_scale
    self.best, self.wait = float("inf"), 0

  def on_epoch_end(self, epoch, logs=None):
    loss = (logs or {}).get("val_loss")
    if loss is None:
      return
    if loss < self.best:
      self.best, self.wait = loss, 0
      return
    self.wait += 1
    if self.wait >= self.patience:
      self.wait = 0
      scale = float(keras.ops.convert_to_numpy(self.schedule.scale))
      lowered = max(scale * self.factor, self.min_scale)
      if lowered < scale:  # not yet at the floor
        rate = self._rate()
        self.schedule.scale.assign(lowered)
        logging.info("plateau at epoch %d: val_loss has not improved on %.4g "
                     "(optim.plateau_patience=%d); learning rate %.4g -> %.4g", epoch + 1,
                     self.best, self.patience, rate, self._rate())

  def _rate(self):
    return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def sampled(schedule, total_steps, points=400):
  """(steps, rates): `schedule` (any step -> rate callable) at up to `points` steps spread over
  the run, as numbers for the run directory's learning_rate.png."""
  steps = np.unique(np.linspace(0, max(total_steps - 1, 0), points).astype(int))
  return steps, [float(np.asarray(schedule(int(step)))) for step in steps]
