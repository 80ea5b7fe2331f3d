"""SIGTERM and SIGINT taken as a preempted job should: save a backup, exit, resume when rerun.

  install()     the command's handler for both signals (app/cli/train.py, before anything else)
  StopOnSignal  the callback, last in app/train/callbacks.build: during fit a signal only asks to
                stop; at the next batch end the run's Backup (app/train/backup.py) saves that step
                and Preempted is raised. On an epoch's last batch it waits for the epoch end, whose
                history row, checkpoints and backup are written first. Under
                MultiWorkerMirroredStrategy the workers agree at every batch end (one all-reduce
                of a flag), so all stop at the same step and the chief's backup is that step.
  Preempted     what the command prints as one line, exiting with 128 + the signal's number (143
                for SIGTERM, 130 for SIGINT), as a shell reports a process the signal ended; the
                same command resumes from the backup.

Outside fit (the cluster wait, loading data, building the model, the final evaluation and the
export) a signal raises Preempted at once; so does a second one during fit.

Why not TensorFlow's own: tf.distribute.experimental.PreemptionCheckpointHandler saves a
tf.train.Checkpoint at a step it counts itself, and keras.callbacks.BackupAndRestore has no
signal handling and replays a mid-epoch backup's epoch from its first batch; the run's Backup
already resumes at the batch (app/train/backup.py), so this only decides when to call it.
"""

import contextlib
import signal

import keras
import tensorflow as tf
from absl import logging

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
  """A signal stopped the run; str() is the one line to print, exit_status the status to exit."""

  def __init__(self, signum, detail):
    self.exit_status = 128 + signum
    super().__init__(f"stopped by {signal.Signals(signum).name} {detail}")


class _State:
  pending = None  # the signal received during fit, not acted on yet
  in_fit = False  # StopOnSignal is between on_train_begin and on_train_end
  outside_fit = "outside training; run the same command again to resume from its last backup"


def _stopped(signum, detail):
  """The Preempted to raise; this process is out of fit from now on."""
  _State.pending, _State.in_fit = None, False
  return Preempted(signum, detail)


def _handle(signum, frame):
  del frame
  if _State.in_fit and _State.pending is None:
    _State.pending = signum
    logging.warning("%s received: stopping at the next batch end, with a backup (send it again to "
                    "stop at once)", signal.Signals(signum).name)
    return
  if _State.in_fit:
    raise _stopped(signum, "during training, before its next backup; run the same command again "
                   "to resume from the last one")
  raise _stopped(signum, _State.outside_fit)


def install():
  """Takes SIGTERM and SIGINT for this process (the main thread's, as Python requires)."""
  _State.pending, _State.in_fit = None, False
  for signum in SIGNALS:
    signal.signal(signum, _handle)


@contextlib.contextmanager
def outside_fit(description):
  """What a signal during the block says it interrupted (`description`: after "stopped by X")."""
  saved, _State.outside_fit = _State.outside_fit, description
  try:
    yield
  finally:
    _State.outside_fit = saved


def _workers(strategy):
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return 1
  jobs = strategy.cluster_resolver.cluster_spec().as_dict()
  return sum(len(tasks) for tasks in jobs.values()) or 1


def _any_worker(strategy):
  """flag -> whether any worker's flag is set: an all-reduce every worker runs at the same step
  (3 ms on two CPU processes of one machine, hence every AGREE_EVERY_STEPS steps)."""

  @tf.function
  def total(flag):
    return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(tf.identity, args=(flag,)),
                           axis=None)

  return lambda flag: bool(total(tf.constant(float(flag))).numpy() > 0)


AGREE_EVERY_STEPS = 4  # multi-worker: a signal waits at most this many steps


class StopOnSignal(keras.callbacks.Callback):
  """Stops fit at the batch end after SIGTERM or SIGINT, its step saved in `backup` (module
  docstring); None: the run has no backup (transfer learning's two phases start over)."""

  def __init__(self, backup):
    super().__init__()
    self.backup, self.agree, self.epoch, self.stop_at_epoch_end = backup, None, 0, False
    self.steps = 0  # batch ends seen in this fit call: the same count on every worker

  def on_train_begin(self, logs=None):
    _State.in_fit, _State.pending, self.stop_at_epoch_end, self.steps = True, None, False, 0
    strategy = self.model.distribute_strategy
    self.agree = _any_worker(strategy) if _workers(strategy) > 1 else None

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    stop = _State.pending is not None
    if self.agree:
      self.steps += 1
      if self.steps % AGREE_EVERY_STEPS:
        return
      stop = self.agree(stop)  # every worker gets the same answer at the same step
    if not stop or self.stop_at_epoch_end:
      return
    if _State.pending is None:  # another worker's signal
      _State.pending = signal.SIGTERM
    backup = self.backup
    if backup is None:
      raise _stopped(_State.pending, f"at epoch {self.epoch + 1}, step {batch + 1}; this run "
                      "keeps no backup (transfer learning's phases): the same command starts over")
    if backup.steps and backup.batches_done >= backup.steps:
      self.stop_at_epoch_end = True  # its epoch end follows, with the epoch's backup
      return
    if self.model.stop_training:  # the divergence guard or the time budget: fit ends anyway
      return
    backup.save()
    raise _stopped(_State.pending, f"at epoch {self.epoch + 1}, step {backup.batches_done}: "
                    f"{self._saved()}; run the same command again to resume from it")

  def on_epoch_end(self, epoch, logs=None):
    # Last in the list: the epoch's history row, checkpoints and backup are written.
    if self.stop_at_epoch_end or (_State.pending is not None and not self.agree):
      raise _stopped(_State.pending, f"after epoch {epoch + 1}: {self._saved()}; run the same "
                      "command again to resume from it")

  def on_train_end(self, logs=None):
    pending, _State.in_fit, _State.pending = _State.pending, False, None
    if pending is not None:  # in the last epoch's validation, or as fit stopped for another cause
      raise Preempted(pending, f"as training ended: {self._saved(last=True)}; run the same "
                      "command again to finish the run from it")

  def _saved(self, last=False):
    if self.backup is None:
      return "no backup (transfer learning's phases start over)"
    if last:
      return f"its last backup is in {self.backup.backup_dir}"
    if not self.backup.writes:
      return f"the chief saves the backup in {self.backup.backup_dir}"
    return f"backup saved in {self.backup.backup_dir}"
