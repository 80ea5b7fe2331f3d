"""train_and_evaluate(config): resolved config -> data -> model -> fit -> evaluate -> export.

The one readable path through a run. Everything that can reject the input (config, data) runs
before the run directory is created, so bad input writes nothing.
"""

import json
import os
import platform

import keras
import tensorflow as tf
from absl import logging

from app import accel, distribute, export, fitting, plots
from app import config as config_lib
from app.data import pipeline
from app.data.sources import DATASETS
from app.models import build_model


def _serving_model(model, config, data):
  """The model to export: itself under float32, else a float32 twin with the same weights, so a
  mixed-precision run still serves a float32 graph (the fix from tensorflow/tensorflow#45441)."""
  if config.runtime.mixed_precision == "float32":
    return model
  with accel.float32_policy():
    twin = build_model(config.model, data.image_shape, len(data.class_names), data.mean,
                       data.variance)
  twin.set_weights(model.get_weights())
  return twin


def train_and_evaluate(config, fold=None):
  """Trains and evaluates a resolved config (app.config.resolve); returns the metrics dict that
  is also written to <output_dir>/metrics.json. `fold` = (index, count) validates on that fold
  of the training split (app.cross_validation)."""
  run_dir = config.output_dir
  config_lib.check_output_dir(run_dir)
  keras.utils.set_random_seed(config.seed)

  # === Data ===
  source = DATASETS.get(config.data.name)(config.data)  # first: it rejects bad data dirs

  # === Runtime ===
  accel.set_precision(config.runtime)
  strategy, strategy_reason = distribute.strategy_from_config(config.runtime)

  data = pipeline.build(source, config.data, config.train.batch_size, config.seed,
                        drop_remainder=config.runtime.jit_compile, fold=fold)
  logging.info("data: %s; %d classes; %d train / %d validation / %d test images of shape %s",
               source.description, len(data.class_names), data.num_train, data.num_validation,
               data.num_test, data.image_shape)

  # === Run directory === (only now: everything above may still reject the input)
  os.makedirs(run_dir, exist_ok=True)
  config_lib.save(config, os.path.join(run_dir, "config.yaml"))

  # === Model ===
  total_steps = config.train.epochs * data.steps_per_epoch
  with strategy.scope():
    model = build_model(config.model, data.image_shape, len(data.class_names), data.mean,
                        data.variance)
    schedule = fitting.compile_model(model, config, data.steps_per_epoch,
                                     config.optim.peak_learning_rate)
  logging.info("model: %s, %d parameters", model.name, model.count_params())

  plots.learning_rate_schedule(schedule, total_steps, data.steps_per_epoch,
                               os.path.join(run_dir, "learning_rate.png"))

  # === Fit ===
  history, timing = fitting.fit(model, data, config, run_dir, schedule, strategy)
  train_seconds = timing.elapsed_seconds
  plots.training_curves(history, os.path.join(run_dir, "training_curves.png"),
                        config.train.validation_every_epochs)

  # === Evaluate ===
  test_loss, test_accuracy = model.evaluate(data.test, verbose=0)
  metrics = {
      "test_accuracy": float(test_accuracy),
      "test_loss": float(test_loss),
      "test_split": data.test_split,
      "validation_accuracy": float(history["val_accuracy"][-1]) if "val_accuracy" in history
                             else None,
      "epochs_completed": len(history["loss"]),
      "train_seconds": train_seconds,
      "train_images_per_second": data.num_train * len(timing.train_seconds_per_epoch) /
                                 sum(timing.train_seconds_per_epoch),
      "parameters": model.count_params(),
      "num_train": data.num_train,
      "num_validation": data.num_validation,
      "num_test": data.num_test,
      "class_names": data.class_names,
      "strategy": strategy_reason,
      "export_path": None,
      "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                   "python": platform.python_version()},
  }
  logging.info("test accuracy %.4f, loss %.4f (%s split), %.1f s of training",
               test_accuracy, test_loss, data.test_split, train_seconds)

  # === Export ===
  if config.export.enabled:
    metrics["export_path"] = export.export_saved_model(
        _serving_model(model, config, data), config.export.dir, config.name,
        {"class_names": data.class_names, "input_shape": list(data.image_shape),
         "input": "raw pixels 0..255 (normalised in the graph)", "run_dir": run_dir,
         "metrics": {k: metrics[k] for k in ("test_accuracy", "test_loss", "test_split")},
         "config": config.to_dict()})
    logging.info("exported %s", metrics["export_path"])
  with open(os.path.join(run_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f, indent=2)
  return metrics
