"""train_and_evaluate(config): resolved config -> data -> model -> fit -> evaluate -> export.

The one readable path through a run. Everything that can reject the input (config, data) runs
before the run directory is created, so bad input writes nothing. The run directory is one
RunDir (app/core/run_dir.py), handed to fit, transfer and the export's metadata.
"""

import platform

import keras
import tensorflow as tf
from absl import logging

from app import accel, distribute
from app.core import clock, crash_points, plots
from app.core.run_dir import RunDir
from app.data import augment, checks, pipeline, sources
from app.evaluate import verdict
from app.models import build_model, init_from_data
from app.serving import parity
from app.serving import saved_model as serving
from app.serving.runs import export_metadata
from app.train import accel_probe, budget, fitting, lr_find, output_paths, run_profile, transfer
from app.train.backup import Backup


def _images_trained(data, timing, config):
  """Images the timed epochs trained on (a resumed run's killed processes' epochs included:
  Timing.resume): each mid-epoch resume skipped part of its epoch."""
  skipped = timing.batches_skipped * config.train.batch_size
  return max(data.num_train * len(timing.train_seconds_per_epoch) - skipped, 1)


def _validation_split_label(config, fold, data):
  """metrics.json's name for the validation figures' split."""
  if fold is not None:
    return f"fold {fold[0] + 1} of {fold[1]} of train"
  if data.validation_from:  # the data's own validation split: "val folder DIR/val"
    return data.validation_from
  if config.derived.validation_is_test:
    return "test"  # the speedrun convention: nothing selected on it
  return f"held_out ({config.data.validation_split:g} of train, seed {config.seed})"


def _validation_figures(model, data, config, history, test_figures):
  """(loss, accuracy) on the validation split of the weights fit left: the test figures when it
  validated on test; the last epoch's from `history` when those weights are its own (no early
  stopping, which restores an earlier epoch's; Lookahead's last sync, the EMA swap and precise
  batch norm all come before that validation, as in _test_figures); else an evaluation."""
  if config.derived.validation_is_test:
    return test_figures
  if _last_epoch_validated(config, history) and not config.train.early_stopping_patience:
    return history["val_loss"][-1], history["val_accuracy"][-1]
  return model.evaluate(data.validation, verbose=0)


def _last_epoch_validated(config, history):
  """True when fit's last epoch ended with a validation (Keras validates epoch e when
  (e + 1) % validation_freq == 0; a run the time budget stopped mid-epoch validates that epoch
  too when it is due)."""
  return (len(history.get("loss", [])) % config.train.validation_every_epochs == 0
          and "val_accuracy" in history)


def _test_figures(model, data, config, history):
  """(loss, accuracy) on the test split of the weights fit left. When the run validated on the
  test split (the speedrun convention) in its last epoch, those are that validation's figures:
  the same images and the same weights (nothing selects on test, so nothing restores an earlier
  epoch; Lookahead's last sync is at the last step, the EMA swap before the validation, precise
  batch norm recomputes before it), so evaluating again would only repeat it: on CIFAR-10 with
  configs/cifar10_93.py's six test-time views, ~84 s of a 1,700 s run (docs/BENCHMARKS.md)."""
  if config.derived.validation_is_test and _last_epoch_validated(config, history):
    return history["val_loss"][-1], history["val_accuracy"][-1]
  return model.evaluate(data.test, verbose=0)


def _weights_label(config):
  """What the evaluated (and exported) weights are."""
  if config.train.early_stopping_patience:
    chosen = "the best validation epoch's (early stopping restores them)"
  else:
    chosen = "the last epoch's"
  return chosen + (", averaged (EMA)" if config.optim.ema else "")


def train_and_evaluate(config, fold=None):
  """Trains and evaluates a resolved config (app.config.resolve); returns the metrics dict that
  is also written to <output_dir>/metrics.json. `fold` = (index, count) validates on that fold
  of the training split (app.cross_validation)."""
  profile = run_profile.RunProfile()  # where the time goes: run_profile.json
  role = distribute.role(config.runtime, config.derived.strategy)
  if not role.is_chief:  # only the chief writes the run directory and the export
    config = distribute.worker_config(config, role)
  output_paths.require_writable(config)  # every path the run writes, before any work
  run = RunDir(config.output_dir, config.train.backup_dir)
  # Refuses a live owner, a finished run, other settings and another run's backup; the chief
  # alone takes the backup folder (the workers only read it, into scratch run dirs).
  run.check_new_or_resumable(config, chief=role.is_chief)
  # First TensorFlow work: MultiWorkerMirroredStrategy and split CPU devices must come before any.
  strategy, strategy_reason = distribute.strategy_from_config(
      config.runtime, config.derived.strategy, config.derived.strategy_reason)
  keras.utils.set_random_seed(config.seed)
  profile.lap("start_up")

  # === Data ===
  source = sources.load(config.data)  # first: it rejects bad data dirs
  source, data_report = checks.check_source(source, config.data, config.seed)
  # The model's device ops, built once under the strategy's scope (their seed generators are
  # variables) and checked against the images here (the host ones in pipeline.build).
  with strategy.scope():
    device_augmenter = augment.build(config.derived.augment_on_device, on_device=True)
  device_augmenter.check_image_shape(source.image_shape)

  # === Runtime === (--accel=auto measures the switches first: app/accel_probe.py)
  accel.set_precision(config.runtime)
  probed, started = None, role.is_chief and run.started_config(config)
  if config.runtime.accel == "auto" and started:  # resuming: the switches the run started with
    probed = (accel_probe.settings_of(started), [])
  elif config.runtime.accel == "auto":
    probed = accel_probe.probe(config, source, strategy, fold)
  if probed:
    config = accel_probe.apply(config, probed[0])
    accel.set_precision(config.runtime)
    profile.lap("accel_probe")
  data = pipeline.for_run(source, config, fold)
  profile.lap("data")
  range_test = None
  if config.optim.learning_rate_from == "auto":  # the range test first (app/train/lr_find.py)
    config, range_test = lr_find.auto_rate(config, data, strategy, started)
    profile.lap("lr_range_test")
  # --time_budget: the length planned from the measured step time (app/train/budget.py).
  config, budget_plan = budget.plan(config, data, strategy, run, started)
  if budget_plan:
    profile.lap("budget_measurement")
  validation_split = _validation_split_label(config, fold, data)
  test_from = "the test split" if data.test_split == "test" else (
      f"held out of train (data.validation_split={config.data.validation_split:g}, seed "
      f"{config.seed}; metrics.json: test_split {data.test_split})")
  logging.info("data: %s; %d classes; %d train / %d validation / %d test images of shape %s; "
               "validation: %s; test: %s", source.description, len(data.class_names),
               data.num_train, data.num_validation, data.num_test, data.image_shape,
               validation_split, test_from)

  # === Model === (a weights file that does not fit, or images too small, stop the run here)
  total_steps = config.train.epochs * data.steps_per_epoch
  with strategy.scope():
    model = build_model(config.model, data.image_shape, len(data.class_names), data.mean,
                        data.variance, device_augmenter.layers(),
                        batch_size=config.train.batch_size)  # refused if it cannot fit in memory
    schedule = fitting.compile_model(model, config, data.steps_per_epoch,
                                     config.optim.peak_learning_rate)
  init_from_data(model, data.train)  # airbench's patch whitening; reads nothing for most families
  logging.info("model: %s, %d parameters", model.name, model.count_params())
  profile.lap("model")

  # === Run directory === (only now: everything above may still reject the input)
  run.create()
  run.save_config(config)
  run.write_json("data_report.json", data_report)
  if config.derived.data_aware:  # the data-aware recipe's choices, each with its reason
    run.write_json("data_aware.json", config.derived.data_aware.to_dict())
  if budget_plan:
    run.write_json(budget.PLAN_FILE, budget_plan)
  if range_test:
    lr_find.write(*range_test, run.path)
  if probed and probed[1]:
    accel_probe.write_table(probed[1], probed[0], run)

  fitting.write_schedule(run, schedule, total_steps, data.steps_per_epoch)
  profile.lap("run_dir")

  # === Fit === (transfer learning trains the head, then fine-tunes: app/train/transfer.py)
  resumed_from = Backup.read(run.backup_dir)  # a killed run's last backup
  if config.train.frozen_epochs:
    history, timing = transfer.fit_two_phase(model, data, config, run, strategy)
  else:
    history, timing = fitting.fit(model, data, config, run, schedule, strategy)
  profile.fit(timing.fit_split)
  transfer.save_backbone_weights(model, run)  # backbone.weights.h5, for a later --weights
  train_seconds = timing.elapsed_seconds
  plots.training_curves(history, run.file("training_curves.png"),
                        config.train.validation_every_epochs)

  # === Evaluate === (the weights fit left: the last epoch's, or early stopping's best)
  crash_points.crash_point("evaluate")  # a testing hook (app/core/crash_points.py)
  test_loss, test_accuracy = _test_figures(model, data, config, history)
  validation_loss, validation_accuracy = _validation_figures(model, data, config, history,
                                                             (test_loss, test_accuracy))
  metrics = {
      "test_accuracy": float(test_accuracy),
      "test_loss": float(test_loss),
      "test_split": data.test_split,
      "validation_accuracy": float(validation_accuracy),
      "validation_loss": float(validation_loss),
      # Which split each figure comes from, and what selected the weights they measure.
      "validation_split": validation_split,
      "splits": {"test_accuracy": data.test_split, "test_loss": data.test_split,
                 "validation_accuracy": validation_split, "validation_loss": validation_split},
      "selected_on": None if config.derived.validation_is_test else "validation",
      "weights": _weights_label(config),
      "epochs_completed": len(history["loss"]),
      "train_seconds": train_seconds,
      # train.time_budget_seconds: where the budget stopped training (None: it ran every epoch)
      "stopped_by_time_budget": timing.stopped_by_budget,
      "train_images_per_second": _images_trained(data, timing, config) /
                                 sum(timing.train_seconds_per_epoch),
      "parameters": model.count_params(),
      "num_train": data.num_train,
      "num_validation": data.num_validation,
      "num_test": data.num_test,
      "class_names": data.class_names,
      "strategy": strategy_reason,
      # The policy trained in and why (--mixed_precision=auto: the devices; config.yaml's derived).
      "mixed_precision": f"{config.runtime.mixed_precision} (" + (
          "--accel=auto chose it: accel_probe.md" if probed else
          config.derived.mixed_precision_reason) + ")",
      "worker": {"index": role.index, "count": role.count, "chief": role.is_chief},
      "resumed_from": resumed_from,
      # Every resume of the run, in order: where (epoch, batches done, trained: nothing left to
      # train) and the clock it went on from (train_seconds counts the killed processes' time).
      "resumes": timing.resumes,
      "accel": probed[0] if probed else None,
      "export_path": None,
      "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                   "python": platform.python_version()},
  }
  logging.info("test accuracy %.4f, loss %.4f (%s split), %.1f s of training",
               test_accuracy, test_loss, data.test_split, train_seconds)
  # A model at chance, a late collapse, a loss that rose: warned of, not a silent exit 0.
  metrics["warnings"] = verdict.check_run(
      metrics["test_accuracy"], data.split_class_counts["test"], metrics["validation_accuracy"],
      data.split_class_counts["validation"], history, config.train.validation_every_epochs,
      steps_trained=len(history["loss"]) * data.steps_per_epoch,
      validation_is_test=metrics["validation_split"] == "test")
  verdict.report(metrics["warnings"])
  profile.lap("final_evaluation")

  # === Export === (float32 whatever the training precision; checked on held-out images)
  if config.export.enabled:
    metrics["export_path"] = serving.export_saved_model(
        model, config.export.dir, config.name, data.class_names,
        export_metadata(config, metrics),
        parity_images=parity.take_images(data.test, config.export.parity_images),
        formats=tuple(config.derived.export_formats), resize=data.evaluation_resize)
    logging.info("exported %s", metrics["export_path"])
    profile.lap("export")
  # The whole command's seconds (start-up to export), and with --time_budget its bound.
  metrics["run_seconds"] = clock.process_seconds()
  profiled = profile.report(metrics["run_seconds"], config.model.tta)
  run.write_json(run_profile.PROFILE_FILE, profiled)
  run_profile.log(profiled)
  metrics["run_profile"] = {row["phase"]: row["seconds"] for row in profiled["phases"]}
  if budget_plan:
    metrics["time_budget"] = dict(budget_plan, actual_seconds=metrics["run_seconds"],
                                  within_budget=metrics["run_seconds"] <= budget_plan[
                                      "budget_seconds"] * 1.1)
  run.write_json("metrics.json", metrics)
  if role.is_chief:  # the run is complete: nothing left to resume
    run.remove_backup()
  else:
    run.remove()
  return metrics
