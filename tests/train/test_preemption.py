"""app/train/preemption.py: SIGTERM and SIGINT, real signals to this process, during a fit (a
backup of that step, then Preempted), on an epoch's last batch (the epoch end first), twice (at
once), and during the cluster wait of app/distribute.py (at once). tests/test_multi_worker.py
preempts real `python -m app.train` runs and resumes them."""

import json
import os
import signal
import socket
import threading
import time

import keras
import numpy as np
import pytest

from app import distribute
from app.train import preemption
from app.train.backup import Backup


@pytest.fixture
def handlers():
  """preemption.install() for the test; this process's own handlers back afterwards."""
  saved = {signum: signal.getsignal(signum) for signum in preemption.SIGNALS}
  preemption.install()
  yield
  for signum, handler in saved.items():
    signal.signal(signum, handler)


class _SignalAt(keras.callbacks.Callback):
  """Sends this process `signals` at the end of batch `batch` of epoch `epoch`."""

  def __init__(self, epoch, batch, signals=(signal.SIGTERM,)):
    super().__init__()
    self.at, self.signals, self.epoch = (epoch, batch), signals, 0

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    if (self.epoch, batch) == self.at:
      for signum in self.signals:
        os.kill(os.getpid(), signum)


def _fit(tmp_path, signal_at, steps=4, epochs=2):
  """A tiny fit with the run's callback order (app/train/callbacks.build): the Backup, the
  signal, the commit of each epoch's backup, StopOnSignal last. Returns the Backup."""
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  model.compile(optimizer="sgd", loss="mse")
  backup = Backup(str(tmp_path / "backup"))
  backup.start(0, 0, steps)
  x, y = np.ones((steps * 8, 3), "float32"), np.zeros((steps * 8, 2), "float32")
  run_callbacks = [backup, signal_at, backup.commit_callback(), preemption.StopOnSignal(backup)]
  model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False, callbacks=run_callbacks)
  return backup


def _state(tmp_path):
  return json.loads((tmp_path / "backup" / Backup.STATE).read_text())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_fit_saves_that_step_and_stops(tmp_path, handlers, signum):
  with pytest.raises(preemption.Preempted) as stopped:
    _fit(tmp_path, _SignalAt(epoch=0, batch=1, signals=(signum,)))
  assert stopped.value.exit_status == 128 + signum
  assert str(stopped.value) == (
      f"stopped by {signal.Signals(signum).name} at epoch 1, step 2: backup saved in "
      f"{tmp_path / 'backup'}; run the same command again to resume from it")
  assert (_state(tmp_path)["epoch"], _state(tmp_path)["batches_done"]) == (0, 2)


def test_a_signal_on_an_epoch_s_last_batch_stops_once_the_epoch_is_written(tmp_path, handlers):
  """A backup there would resume into an epoch with no step left: the epoch end's comes first."""
  with pytest.raises(preemption.Preempted, match="after epoch 1: backup saved"):
    _fit(tmp_path, _SignalAt(epoch=0, batch=3))
  assert (_state(tmp_path)["epoch"], _state(tmp_path)["batches_done"]) == (1, 0)


def test_a_second_signal_stops_at_once(tmp_path, handlers):
  with pytest.raises(preemption.Preempted, match="before its next backup"):
    _fit(tmp_path, _SignalAt(epoch=0, batch=1, signals=(signal.SIGTERM, signal.SIGTERM)))
  assert not (tmp_path / "backup" / Backup.STATE).exists()


def test_outside_fit_a_signal_stops_at_once(handlers):
  with pytest.raises(preemption.Preempted, match="^stopped by SIGTERM outside training"):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_the_cluster_wait_stops_it_at_once(handlers, signum):
  """TensorFlow's own wait (MultiWorkerMirroredStrategy()) held the GIL and took SIGTERM for
  itself; app/distribute.py waits first, in Python. Its port is free again afterwards."""
  from tools.local_processes import free_ports  # pylint: disable=g-import-not-at-top
  own, absent = free_ports(2)
  cluster = {"worker": [f"localhost:{own}", f"localhost:{absent}"]}
  threading.Timer(0.5, os.kill, (os.getpid(), signum)).start()
  start = time.monotonic()
  with pytest.raises(preemption.Preempted) as stopped:
    with preemption.outside_fit("while waiting"):
      distribute.wait_for_cluster(cluster, "worker", 0, timeout_seconds=60)
  assert time.monotonic() - start < 5
  assert str(stopped.value) == f"stopped by {signal.Signals(signum).name} while waiting"
  socket.create_server(("", own)).close()
