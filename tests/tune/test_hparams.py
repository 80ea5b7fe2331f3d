"""The HParams dashboard of a search (app/tune/hparams.py), written from fabricated trial results
as results.write does after each trial and read back by TensorBoard's own HParams plugin code.
tests/cli/test_tune.py reads what a real 3-trial search wrote."""

import types

import numpy as np
import pytest

from app.tune import hparams, results, search
from configs import tune_fashion_mnist
from tests import commands, tensorboard_events


def _trial(trial_id, status, values, metrics=None):
  metrics = metrics or {}
  return types.SimpleNamespace(
      trial_id=trial_id, status=status, score=metrics.get("time_to_target"), message="",
      hyperparameters=types.SimpleNamespace(values=values),
      metrics=types.SimpleNamespace(exists=lambda name: name in metrics,
                                    get_last_value=lambda name: metrics[name]))


def test_each_trial_is_a_session_with_its_values_and_metrics(tmp_path):
  config = tune_fashion_mnist.get_config()
  config.search.objective, config.search.tuner = "time_to_target", "hyperband"
  config.search.target_accuracy, config.search.trial_time_budget_seconds = 0.9, 60.0
  plan = search.make_plan(config, "configs/tune_fashion_mnist.py", {}, str(tmp_path / "search"))
  (tmp_path / "search").mkdir()
  first = {"model.width": 24, "optim.learning_rate": np.float64(0.1), "optim.weight_decay": 5e-4,
           "data.augment": "flip", "train.batch_size": 256, "tuner/epochs": 4, "tuner/bracket": 1}
  trials = [
      _trial("0", "COMPLETED", first,
             {"time_to_target": 31.5, "val_accuracy": 0.91, "train_seconds": 40.25}),
      _trial("1", "FAILED", dict(first, **{"optim.learning_rate": 0.8})),
      _trial("2", "RUNNING", dict(first, **{"model.width": 40})),  # not finished: no session yet
  ]
  results.write(plan, trials)
  experiment, sessions = tensorboard_events.hparams(tmp_path / "search")
  assert experiment["metrics"] == ["val_accuracy", "train_seconds", "time_to_target"]
  assert experiment["hparams"]["model.width"] == {"domainInterval": {"minValue": 16,
                                                                      "maxValue": 40}}
  assert experiment["hparams"]["optim.learning_rate"] == {
      "domainInterval": {"minValue": 0.05, "maxValue": 0.8}}
  assert experiment["hparams"]["data.augment"] == {"domainDiscrete": ["flip", "flip|crop(pad=2)"]}
  assert experiment["hparams"]["train.batch_size"] == {"domainDiscrete": [128, 256, 512]}
  assert experiment["hparams"]["tuner/epochs"] == {"domainInterval": {"minValue": 1,
                                                                       "maxValue": 12}}
  assert set(sessions) == {"trials/0", "trials/1"}
  done = sessions["trials/0"]
  assert done["status"] == "STATUS_SUCCESS"
  assert done["metrics"] == {"val_accuracy": np.float32(0.91), "train_seconds": 40.25,
                             "time_to_target": 31.5}
  assert done["hparams"] == {"model.width": 24, "optim.learning_rate": 0.1,
                             "optim.weight_decay": 5e-4, "data.augment": "flip",
                             "train.batch_size": 256, "tuner/epochs": 4}
  assert sessions["trials/1"]["status"] == "STATUS_FAILURE"
  assert sessions["trials/1"]["metrics"] == {}
  # After the next trial: its session is added, the others are not written twice.
  trials[2].status, trials[2].score = "COMPLETED", 20.0
  trials[2].metrics = _trial("2", "", {}, {"time_to_target": 20.0, "val_accuracy": 0.93,
                                           "train_seconds": 30.0}).metrics
  results.write(plan, trials)
  _, sessions = tensorboard_events.hparams(tmp_path / "search")
  assert sessions["trials/2"]["metrics"]["time_to_target"] == 20.0
  assert sessions["trials/2"]["hparams"]["model.width"] == 40
  for trial_id in ("0", "1", "2"):
    assert len(hparams.summaries.event_files(tmp_path / "search" / "trials" / trial_id)) == 1
  assert len(hparams.summaries.event_files(tmp_path / "search")) == 1


def test_the_search_process_writes_the_dashboard_without_starting_tensorflow(tmp_path):
  """The search process writes the dashboard between its trials: a TensorFlow op there would
  start TensorFlow's runtime, which takes nearly all of each GPU's memory, the trials' (on a CPU
  the sign of a started runtime is that its devices can no longer be split)."""
  script = tmp_path / "write_dashboard.py"
  script.write_text(f"""
import types
import tensorflow as tf
from app.tune import results, search
from configs import tune_fashion_mnist
plan = search.make_plan(tune_fashion_mnist.get_config(), "configs/tune_fashion_mnist.py", {{}},
                        {str(tmp_path / "search")!r})
metrics = {{"val_accuracy": 0.9, "train_seconds": 12.0}}
trial = types.SimpleNamespace(
    trial_id="0", status="COMPLETED", score=0.9, message="",
    hyperparameters=types.SimpleNamespace(values={{"model.width": 24}}),
    metrics=types.SimpleNamespace(exists=metrics.__contains__, get_last_value=metrics.get))
import os; os.makedirs(plan.search_dir)
results.write(plan, [trial])
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
print("runtime not started")
""")
  result = commands.run(str(script))
  assert result.returncode == 0 and "runtime not started" in result.stdout, result.stderr[-3000:]
  _, sessions = tensorboard_events.hparams(tmp_path / "search")
  assert sessions["trials/0"]["metrics"] == {"val_accuracy": pytest.approx(0.9),
                                             "train_seconds": 12.0}
