"""app/train/fitting.py and the callbacks it wires: divergence stop and retry, EMA, early stopping."""

import csv
import json
import os

import keras
import numpy as np
import pytest

from app import config as config_lib
from app.core.run_dir import RunDir
from app.train import callbacks, fitting
from app.train.train_and_evaluate import train_and_evaluate
from app.core.errors import UsageError
from app.models import load_model
from configs import default
from tests import tensorboard_events


def tiny_config(tmp_path, **changes):
  config = default.get_config()
  config.data.limit = 512
  config.model.name = "vgg"
  config.model.width = 4
  config.model.depth = 1
  config.train.epochs = 3
  config.train.batch_size = 128
  config.optim.name = "sgd"
  config.optim.learning_rate = 0.05
  config.output_dir = str(tmp_path / "run")
  config.export.dir = str(tmp_path / "exports")
  for key, value in changes.items():
    config_lib.set_key(config, key, value)
  return config_lib.resolve(config)


class _PoisonOnce(keras.callbacks.Callback):
  """Plants NaNs in the classifier's kernel when epoch `epoch` (0-based) first begins (in a conv
  kernel ReLU would turn them into zeros on this CPU)."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch, self.done = epoch, False

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == self.epoch and not self.done:
      self.done = True
      kernel = next(v for v in self.model.trainable_variables if "logits/kernel" in v.path)
      kernel.assign(np.full(kernel.shape, np.nan, kernel.dtype))


@pytest.fixture
def plant(monkeypatch):
  """Adds extra callbacks after the run's own ones."""

  def add(*extra, first=()):
    build = callbacks.build

    def build_with_extra(*args):
      timing, guard, run_callbacks = build(*args)
      return timing, guard, list(first) + run_callbacks + list(extra)

    monkeypatch.setattr(callbacks, "build", build_with_extra)

  return add


def test_planted_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, plant):
  plant(_PoisonOnce(epoch=1))
  config = tiny_config(tmp_path)
  with pytest.raises(UsageError, match=r"diverged at epoch 2, step 1 \(loss nan\).*intact"):
    train_and_evaluate(config)
  last = os.path.join(config.output_dir, "checkpoints", "last.keras")
  weights = load_model(last).get_weights()  # epoch 1's checkpoint loads and is finite
  assert all(np.isfinite(w).all() for w in weights)
  assert not os.path.exists(os.path.join(config.output_dir, "metrics.json"))


def test_retry_resumes_from_the_last_good_epoch_at_half_the_rate(tmp_path, plant):
  plant(_PoisonOnce(epoch=1))
  config = tiny_config(tmp_path, **{"train.on_divergence": "retry"})
  metrics = train_and_evaluate(config)
  assert metrics["epochs_completed"] == 3
  history = [line.split(",") for line in open(os.path.join(config.output_dir, "history.csv"))]
  header = history[0]
  rates = [float(row[header.index("learning_rate")]) for row in history[1:]]
  assert rates[-1] == pytest.approx(0.025)  # constant schedule, halved after the divergence
  assert np.isfinite(metrics["test_loss"])


class _RecordRawWeights(keras.callbacks.Callback):
  def on_train_batch_end(self, batch, logs=None):
    self.raw = [np.array(v) for v in self.model.trainable_variables]


def test_ema_weights_differ_from_raw_and_are_evaluated_checkpointed_and_exported(tmp_path, plant):
  recorder = _RecordRawWeights()
  plant(recorder)
  config = tiny_config(tmp_path, **{"optim.ema": True, "optim.ema_momentum": 0.9})
  metrics = train_and_evaluate(config)
  trained = load_model(os.path.join(config.output_dir, "checkpoints", "last.keras"))
  final = [np.array(v) for v in trained.trainable_variables]
  assert any(not np.allclose(a, b) for a, b in zip(final, recorder.raw))  # EMA != raw weights
  import tensorflow as tf
  exported = tf.saved_model.load(metrics["export_path"])
  images = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
  np.testing.assert_allclose(exported.serve(images), trained.predict(images, verbose=0), atol=1e-5)


class _StopAfter(keras.callbacks.Callback):
  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_end(self, epoch, logs=None):
    if epoch == self.epoch:
      self.model.stop_training = True


def test_ema_weights_stay_when_training_stops_before_the_last_epoch(tmp_path, plant):
  recorder = _RecordRawWeights()
  plant(recorder, first=[_StopAfter(epoch=1)])  # stops at epoch 2 of 3, as EarlyStopping would
  config = tiny_config(tmp_path, **{"optim.ema": True, "optim.ema_momentum": 0.9})
  metrics = train_and_evaluate(config)
  assert metrics["epochs_completed"] == 2
  import tensorflow as tf
  exported = tf.saved_model.load(metrics["export_path"])
  checkpoint = load_model(os.path.join(config.output_dir, "checkpoints", "last.keras"))
  images = np.random.default_rng(0).uniform(0, 255, (8, 28, 28, 1)).astype("float32")
  ema_outputs = checkpoint.predict(images, verbose=0)
  np.testing.assert_allclose(exported.serve(images), ema_outputs, atol=1e-5)
  for variable, raw in zip(checkpoint.trainable_variables, recorder.raw):
    variable.assign(raw)
  assert not np.allclose(checkpoint.predict(images, verbose=0), ema_outputs, atol=1e-4)


def test_cross_validation_reports_mean_and_std_over_folds(tmp_path):
  from app.train import cross_validation
  config = tiny_config(tmp_path, **{"train.cv_folds": 3, "train.epochs": 1})
  summary = cross_validation.cross_validate(config)
  assert summary["cv_folds"] == 3 and len(summary["validation_accuracy_per_fold"]) == 3
  assert summary["validation_accuracy_mean"] == pytest.approx(
      np.mean(summary["validation_accuracy_per_fold"]))
  assert summary["validation_accuracy_std"] >= 0
  saved = json.load(open(os.path.join(config.output_dir, "cv_metrics.json")))
  assert saved == summary
  for k in (1, 2, 3):
    fold = json.load(open(os.path.join(config.output_dir, f"fold-{k}", "metrics.json")))
    assert fold["num_validation"] in (170, 171) and fold["export_path"] is None


def test_early_stopping_stops_and_restores_the_best_weights(tmp_path):
  config = tiny_config(tmp_path, **{"train.early_stopping_patience": 1, "train.epochs": 6,
                                    "optim.learning_rate": 1e-7})  # no progress after epoch 1
  metrics = train_and_evaluate(config)
  assert metrics["epochs_completed"] == 2
  import tensorflow as tf
  exported = tf.saved_model.load(metrics["export_path"])
  best = load_model(os.path.join(config.output_dir, "checkpoints", "best.keras"))
  images = np.random.default_rng(0).uniform(0, 255, (8, 28, 28, 1)).astype("float32")
  np.testing.assert_allclose(exported.serve(images), best.predict(images, verbose=0), atol=1e-5)


def test_a_retry_keeps_one_clock_and_the_best_checkpoint_of_the_whole_run(tmp_path, plant):
  plant(_PoisonOnce(epoch=2))
  config = tiny_config(tmp_path, **{"train.on_divergence": "retry", "train.epochs": 4})
  metrics = train_and_evaluate(config)
  history = [line.strip().split(",") for line in open(os.path.join(config.output_dir, "history.csv"))]
  header, rows = history[0], history[1:]
  elapsed = [float(row[header.index("elapsed_seconds")]) for row in rows]
  assert elapsed == sorted(elapsed)  # the retry does not restart the clock
  assert metrics["train_seconds"] >= elapsed[-1]
  best = json.load(open(os.path.join(config.output_dir, "checkpoints", "best.json")))
  accuracies = [float(row[header.index("val_accuracy")]) for row in rows]
  finite = [a for a in accuracies if np.isfinite(a)]
  assert best["val_accuracy"] == pytest.approx(max(finite))


class _StepAtEpochBegin(keras.callbacks.Callback):
  """Records (epoch, optimizer.iterations) as each epoch, first attempts and retries, begins."""

  def __init__(self):
    super().__init__()
    self.steps = []

  def on_epoch_begin(self, epoch, logs=None):
    self.steps.append((epoch, int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))))


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_retry_with_gradient_accumulation_resumes_the_schedule_where_it_was(tmp_path, plant,
                                                                            precision):
  steps = _StepAtEpochBegin()
  plant(_PoisonOnce(epoch=1), steps)
  config = tiny_config(tmp_path, **{"train.on_divergence": "retry",
                                    "optim.gradient_accumulation_steps": 2,
                                    "runtime.mixed_precision": precision})
  metrics = train_and_evaluate(config)
  assert metrics["epochs_completed"] == 3 and np.isfinite(metrics["test_loss"])
  # 512 images in batches of 128: 4 batches an epoch, 2 updates; the retried epoch 2 starts
  # where its diverged attempt started.
  assert steps.steps == [(0, 0), (1, 2), (1, 2), (2, 4)]


def read_history_csv(run_dir):
  with open(os.path.join(run_dir, "history.csv"), newline="") as f:
    rows = list(csv.reader(f))
  return rows[0], rows[1:]


def test_a_retried_epoch_replaces_the_diverged_one_in_history_csv(tmp_path, plant, monkeypatch):
  from app.core import plots
  plotted = {}
  monkeypatch.setattr(plots, "training_curves", lambda history, *args: plotted.update(history))
  plant(_PoisonOnce(epoch=1))
  # Validated every 2 epochs: the first fit call's first epoch has no val_ keys, the retry's has.
  config = tiny_config(tmp_path, **{"train.on_divergence": "retry",
                                    "train.validation_every_epochs": 2})
  train_and_evaluate(config)
  header, rows = read_history_csv(config.output_dir)
  assert [row[0] for row in rows] == ["0", "1", "2"]  # one row per epoch
  assert all(len(row) == len(header) for row in rows), (header, rows)
  rates = [float(row[header.index("learning_rate")]) for row in rows]
  assert rates == pytest.approx([0.05, 0.025, 0.025])  # epoch 2's row is the retry's
  assert np.isfinite(float(rows[1][header.index("loss")]))
  # The history behind training_curves.png: one value per epoch, one per validated epoch.
  assert len(plotted["loss"]) == 3 and len(plotted["val_accuracy"]) == 1


@pytest.mark.parametrize("loss_scaled", [False, True])
def test_set_optimizer_step_moves_the_schedule_under_accumulation(loss_scaled):
  from app import keras_compat
  schedule = keras.optimizers.schedules.PiecewiseConstantDecay([9], [1.0, 0.5])  # batches
  optimizer = keras.optimizers.SGD(schedule, gradient_accumulation_steps=2)
  if loss_scaled:  # mixed_float16's wrapper counts in its inner optimizer
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  keras_compat.set_optimizer_step(optimizer, 12)  # batches: 6 updates
  assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 6
  assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == 0.5


def test_steps_per_execution_that_does_not_divide_the_epoch_keeps_epochs_whole(tmp_path, caplog):
  """steps_per_execution=2 on 3 steps per epoch: Keras ran executions across the epoch's end
  (so epochs ended a step off and it warned "Your input ran out of data"); the run uses the
  largest divisor of the epoch's steps instead, says so in one line, and trains every step."""
  import warnings  # pylint: disable=g-import-not-at-top
  caplog.set_level("INFO", logger="absl")
  config = tiny_config(tmp_path, **{"data.limit": 384, "train.epochs": 2,
                                    "runtime.steps_per_execution": 2})
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    metrics = train_and_evaluate(config)
  assert not [w for w in caught if "ran out of data" in str(w.message)]
  assert metrics["epochs_completed"] == 2
  assert "steps_per_execution=2 does not divide the 3 steps of an epoch; using 1" in caplog.text
  model = load_model(os.path.join(config.output_dir, "checkpoints", "last.keras"))
  assert int(model.optimizer.iterations) == 6


@pytest.mark.parametrize("first, last, skip, spans", [
    (0, 3, 0, [(0, 3, 0)]),
    (1, 3, 5, [(1, 2, 5), (2, 3, 0)]),  # mid-epoch: the rest of epoch 2 in a call of its own
    (2, 3, 5, [(2, 3, 5)]),
    (3, 3, 0, [(3, 3, 0)]),  # killed after the last epoch's backup: a fit of no epoch ends it
])
def test_fit_spans(first, last, skip, spans):
  from app.train import fitting  # pylint: disable=g-import-not-at-top
  assert fitting._fit_spans(first, last, skip) == spans


def test_keras_verbosity_is_a_bar_on_a_terminal_and_a_line_per_epoch_elsewhere(tmp_path):
  """train.progress=auto asks the stream: a pseudo-terminal gets Keras's bar (verbose=1), a pipe
  and a file one line per epoch (verbose=2); bar and epoch hold whatever stdout is."""
  import pty  # pylint: disable=g-import-not-at-top
  from app.train import fitting  # pylint: disable=g-import-not-at-top
  (terminal_reader, terminal_fd), (pipe_reader, pipe_fd) = pty.openpty(), os.pipe()
  with open(terminal_fd, "w") as terminal, open(pipe_fd, "w") as pipe, \
      open(tmp_path / "train.log", "w") as log, open(terminal_reader), open(pipe_reader):
    assert [fitting.keras_verbosity("auto", s) for s in (terminal, pipe, log)] == [1, 2, 2]
    assert [fitting.keras_verbosity("bar", s) for s in (terminal, pipe, log)] == [1, 1, 1]
    assert [fitting.keras_verbosity("epoch", s) for s in (terminal, pipe, log)] == [2, 2, 2]


def test_the_schedule_is_a_tensorboard_run_redrawn_whole(tmp_path):
  """Issue 21: learning_rate.png's rates as TensorBoard scalars by step, and the figure, in the
  run's tensorboard/learning_rate_schedule; transfer learning redraws it with both phases, which
  replaces the first drawing rather than adding to it."""
  run = RunDir(str(tmp_path))
  fitting.write_schedule(run, lambda step: 0.1, 20, 10)
  fitting.write_schedule(run, lambda step: 0.1 if step < 10 else 0.01, 20, 10)
  board = tensorboard_events.runs(tmp_path)["tensorboard/learning_rate_schedule"]
  plugin, rates = board["learning_rate_schedule/learning_rate"]
  assert plugin == "scalars" and rates == [(step, pytest.approx(0.1 if step < 10 else 0.01))
                                           for step in range(20)]
  assert board["learning_rate_schedule/figure"][0] == "images"
  assert (tmp_path / "learning_rate.png").read_bytes()[:4] == b"\x89PNG"
