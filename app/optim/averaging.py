"""Weight averaging during training: Lookahead (airbench94) and keeping the EMA weights when
training stops early (the EMA itself is Keras's: optimizer use_ema + SwapEMAWeights)."""

import keras

from app import keras_compat


class Lookahead(keras.callbacks.Callback):
  """Lookahead as airbench94 runs it (Zhang et al. 2019, "Lookahead Optimizer: k steps forward,
  1 step back"): every `every` steps the slow weights move toward the trained (fast) ones,
  slow = d * slow + (1 - d) * fast, and training goes on from them (fast = slow). d ramps up as
  peak_decay * (step / total)^3, so early training runs nearly free and the end averages
  strongly; the run's last step leaves the slow weights in the model (d = 1). Every float
  variable takes part, batch-norm statistics included, as in airbench. A resumed run starts its
  slow weights again from the restored ones."""

  def __init__(self, every, peak_decay):
    super().__init__()
    self.every, self.peak_decay = every, peak_decay
    self.epoch = self.synced = 0
    self.variables = self.slow = None

  def on_train_begin(self, logs=None):
    self.total = self.params["epochs"] * self.params["steps"]
    self.variables = [v for v in self.model.variables if keras.backend.is_float_dtype(v.dtype)]
    self.slow = [keras.ops.copy(v) for v in self.variables]  # snapshots, not views

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def decay(self, step):
    return 1.0 if step >= self.total else self.peak_decay * (step / self.total) ** 3

  def on_train_batch_end(self, batch, logs=None):
    step = self.epoch * self.params["steps"] + batch + 1  # steps_per_execution: the last one
    if step // self.every == self.synced // self.every and step < self.total:
      return
    self.synced, decay = step, self.decay(step)
    for index, variable in enumerate(self.variables):
      slow = self.slow[index] * decay + keras.ops.convert_to_tensor(variable) * (1.0 - decay)
      self.slow[index] = slow
      variable.assign(slow)


class KeepEMAOnEarlyStop(keras.callbacks.Callback):
  """SwapEMAWeights(swap_on_epoch=True) re-syncs the optimizer's EMA slots only after the last
  planned epoch; when training stops earlier, fit()'s final `finalize_variable_values` would copy
  the swapped-out raw weights back into the model. This re-syncs on an early stop (it runs after
  EarlyStopping, so a restored best EMA snapshot is what stays)."""

  def __init__(self, swap):
    super().__init__()
    self.swap = swap

  def on_epoch_end(self, epoch, logs=None):
    if self.model.stop_training and epoch != self.params["epochs"] - 1:
      keras_compat.finalize_ema_values(self.swap)
