"""Callbacks for the run directory: timing, history.csv, atomic checkpoints, backups for
resuming, TensorBoard."""

import glob
import json
import math
import os
import shutil
import time

import keras


class Timing(keras.callbacks.Callback):
  """Adds `elapsed_seconds` (wall time since fit started, validation and compilation included:
  the time-to-accuracy clock) to each epoch's logs, and keeps the time spent in training batches
  alone so throughput is not diluted by validation."""

  def __init__(self):
    super().__init__()
    self.start = self.epoch_start = self.validation_start = None
    self.train_seconds_per_epoch = []
    self.stopped_by_budget = None  # where TimeBudget stopped the run, if it did

  def on_train_begin(self, logs=None):
    if self.start is None:  # one clock across the fit calls of a run (retries, transfer phases)
      self.start = time.perf_counter()

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch_start = time.perf_counter()
    self.validation_start = None

  def on_test_begin(self, logs=None):
    self.validation_start = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    train_end = self.validation_start or time.perf_counter()
    self.train_seconds_per_epoch.append(train_end - self.epoch_start)
    if logs is not None:
      logs["elapsed_seconds"] = time.perf_counter() - self.start

  @property
  def elapsed_seconds(self):
    return time.perf_counter() - self.start


class TimeBudget(keras.callbacks.Callback):
  """Stops training cleanly (model.stop_training) once the run's clock (`timing`, so one budget
  across retries and transfer phases) passes `seconds`: the epoch it runs out in ends early and is
  still validated, checkpointed and evaluated as usual. For time-aware searches (app/tuning)."""

  def __init__(self, timing, seconds):
    super().__init__()
    self.timing, self.seconds, self.epoch = timing, seconds, 0

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    if self.timing.elapsed_seconds >= self.seconds:
      if self.timing.stopped_by_budget is None:
        self.timing.stopped_by_budget = f"epoch {self.epoch + 1}, step {batch + 1}"
      self.model.stop_training = True


class LearningRateLog(keras.callbacks.Callback):
  """Adds the optimizer's current `learning_rate` (after the schedule) to each epoch's logs."""

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def save_atomically(model, path):
  """Write `path` through a temporary file and a rename: a crash never leaves half a checkpoint."""
  temporary = f"{path}.tmp.keras"
  model.save(temporary)
  os.replace(temporary, path)


class AtomicCheckpoint(keras.callbacks.Callback):
  """Saves `last.keras` every epoch and `best.keras` when `monitor` improves, both atomically;
  an epoch the DivergenceGuard flagged is not saved, so the last good checkpoint survives."""

  def __init__(self, directory, guard, monitor="val_accuracy"):
    super().__init__()
    self.directory, self.guard, self.monitor = directory, guard, monitor
    os.makedirs(directory, exist_ok=True)
    # A later fit call of the same run (a retry, a transfer phase) keeps the best so far.
    self.best_record = os.path.join(directory, "best.json")
    self.best = None
    if os.path.exists(self.best_record):
      with open(self.best_record) as f:
        self.best = json.load(f)[monitor]

  def on_epoch_end(self, epoch, logs=None):
    if self.guard.diverged:
      return
    save_atomically(self.model, os.path.join(self.directory, "last.keras"))
    value = (logs or {}).get(self.monitor)
    if value is not None and (self.best is None or value > self.best):
      self.best = value
      save_atomically(self.model, os.path.join(self.directory, "best.keras"))
      with open(self.best_record, "w") as f:
        json.dump({self.monitor: float(value), "epoch": epoch + 1}, f)


class Backup(keras.callbacks.BackupAndRestore):
  """keras.callbacks.BackupAndRestore (weights and optimizer state, at each epoch end and every
  `save_freq` steps) made exact and atomic for resuming a killed or preempted run:

  - each save is `weights-E-B.weights.h5` (epoch E, B batches of it done) written through a
    temporary file, then `state.json` naming it, also renamed into place: a kill at any moment
    leaves a consistent pair;
  - the batch within the epoch is recorded across fit calls, and app/fitting.py restores it
    itself (`restore`), skipping the batches already done (Keras's own restore would replay a
    mid-epoch backup's epoch from its first batch);
  - only the process that `writes` (the chief) saves; every worker restores from the same folder.
  """

  STATE = "state.json"

  def __init__(self, backup_dir, save_freq="epoch", writes=True):
    super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=False)
    self.writes, self._skipped, self._batches_done = writes, 0, 0

  def start(self, epoch, skipped):
    """Before each fit call: it begins at `epoch` with `skipped` of its batches already done."""
    self._current_epoch, self._skipped, self._batches_done = epoch, skipped, skipped
    self._last_batch_seen, self._batches_seen_since_last_saving = -1, 0

  def on_train_begin(self, logs=None):
    pass  # restored by app/fitting.py before fit, see restore()

  def on_train_end(self, logs=None):
    pass  # kept until the whole run has ended: app/training.py removes the folder

  def on_train_batch_end(self, batch, logs=None):
    self._batches_done = self._skipped + batch + 1
    super().on_train_batch_end(batch, logs)

  def on_epoch_end(self, epoch, logs=None):
    self._skipped = self._batches_done = 0
    super().on_epoch_end(epoch, logs)  # the next epoch, batch 0; saves when save_freq="epoch"
    if self.save_freq != "epoch":
      self._save_model()  # step-level backups also back up every epoch end

  def _save_model(self):
    if not self.writes or self.model.stop_training:  # DivergenceGuard stopped it: keep the last good
      return
    os.makedirs(self.backup_dir, exist_ok=True)
    name = f"weights-{self._current_epoch}-{self._batches_done}.weights.h5"
    temporary = os.path.join(self.backup_dir, f".{name}.tmp.weights.h5")
    self.model.save_weights(temporary, overwrite=True)
    os.replace(temporary, os.path.join(self.backup_dir, name))
    state = {"epoch": self._current_epoch, "batches_done": self._batches_done, "weights": name}
    temporary = os.path.join(self.backup_dir, f".{self.STATE}.tmp")
    with open(temporary, "w") as f:
      json.dump(state, f)
    os.replace(temporary, os.path.join(self.backup_dir, self.STATE))
    for old in glob.glob(os.path.join(self.backup_dir, "weights-*.weights.h5")):
      if os.path.basename(old) != name:
        os.remove(old)

  @staticmethod
  def read(backup_dir):
    """The last backup's {"epoch", "batches_done", "weights"}, or None when there is none."""
    path = os.path.join(backup_dir, Backup.STATE)
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return json.load(f)

  @staticmethod
  def restore(model, backup_dir):
    """Loads the last backup's weights and optimizer state into `model` (built, with its
    optimizer built); returns (epoch, batches done of it), or None when there is no backup."""
    state = Backup.read(backup_dir)
    if state is None:
      return None
    model.load_weights(os.path.join(backup_dir, state["weights"]))
    return state["epoch"], state["batches_done"]

  @staticmethod
  def remove(backup_dir):
    shutil.rmtree(backup_dir, ignore_errors=True)


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
      scale = float(keras.ops.convert_to_numpy(self.schedule.scale))
      self.schedule.scale.assign(max(scale * self.factor, self.min_scale))
      self.wait = 0


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
      self.swap._finalize_ema_values()  # pylint: disable=protected-access


class DivergenceGuard(keras.callbacks.Callback):
  """Stops training at the first batch whose loss is NaN/inf or above `factor` times the first
  epoch's mean loss; `self.diverged` then says where. The checkpoints of earlier epochs stay."""

  def __init__(self, factor):
    super().__init__()
    self.factor, self.reference, self.diverged, self.epoch = factor, None, None, 0

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    loss = float((logs or {}).get("loss", 0.0))
    if not math.isfinite(loss) or (self.reference is not None and loss > self.factor * self.reference):
      self.diverged = f"epoch {self.epoch + 1}, step {batch + 1} (loss {loss:.4g})"
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    if self.reference is None and logs and math.isfinite(logs.get("loss", math.nan)):
      self.reference = logs["loss"]


def build(run_dir, config, schedule, timing=None, backup=None):
  """The callbacks for a run; the backup comes right after the divergence guard (so it never saves
  a diverged state) and before the EMA swap (it saves the raw weights); the log-adding ones come
  before the writers that read their values; the EMA swap before anything that evaluates or saves."""
  timing, guard = timing or Timing(), DivergenceGuard(config.train.divergence_factor)
  run_callbacks = [timing, guard] + ([backup] if backup else []) + [LearningRateLog()]
  if config.train.time_budget_seconds:
    run_callbacks.append(TimeBudget(timing, config.train.time_budget_seconds))
  swap_ema = keras.callbacks.SwapEMAWeights(swap_on_epoch=True) if config.optim.ema else None
  if swap_ema:
    # Validation and checkpoints see the EMA weights; fit() leaves them in the model at the end.
    run_callbacks.append(swap_ema)
  if config.optim.lookahead_every:
    run_callbacks.append(Lookahead(config.optim.lookahead_every, config.optim.lookahead_decay))
  if config.optim.schedule == "plateau":
    run_callbacks.append(ReduceOnPlateau(schedule, config.optim.decay_rate,
                                         config.optim.plateau_patience, config.optim.final_fraction))
  if config.train.early_stopping_patience:
    run_callbacks.append(keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=config.train.early_stopping_patience,
        restore_best_weights=True))
  if swap_ema:
    run_callbacks.append(KeepEMAOnEarlyStop(swap_ema))
  run_callbacks += [
      keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv"), append=True),
      AtomicCheckpoint(os.path.join(run_dir, "checkpoints"), guard),
      keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard"), update_freq="epoch",
                                  # "START,STOP" (validated): Keras parses it; "" = 0, off
                                  profile_batch=config.train.profile_steps or 0),
  ]
  return timing, guard, run_callbacks
