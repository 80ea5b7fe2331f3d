"""Transfer learning: a pretrained backbone, a new head, and the two-phase schedule of the
keras-io guide "Transfer learning & fine-tuning" (Chollet) and Yosinski et al. 2014.

Phase 1, `train.frozen_epochs` epochs: the backbone is frozen (`trainable = False`; its weights
and its batch-norm statistics stay as loaded) and only the new head trains, at the recipe's
learning rate and schedule. A random head's large gradients would otherwise wreck the
pretrained features in the first steps.
Phase 2, the remaining `train.epochs - train.frozen_epochs` epochs: everything trains at
`optim.fine_tune_rate_factor` times the rate, the schedule run again over this phase, with the
backbone's batch-norm layers still frozen: in Keras a BatchNormalization layer with
trainable=False runs in inference mode, so the small new data set does not overwrite
statistics learnt on the large one.
The model is recompiled at each phase: Keras collects the trainable variables when it compiles.

After training, every run of a backbone family saves `<run_dir>/backbone.weights.h5`, which
`--weights` (config.model.weights) loads into the backbone of the next run.
"""


import keras
import ml_collections
from absl import logging

from app.train import fitting
from app.models.applications import backbone_of

BACKBONE_WEIGHTS = "backbone.weights.h5"


def _phase_config(config, epochs, peak_rate):
  phase = ml_collections.ConfigDict(config.to_dict())
  phase.train.epochs = epochs
  phase.optim.peak_learning_rate = peak_rate
  return phase


def _fit_phase(model, data, config, run, strategy, first_epoch, timing=None):
  with strategy.scope():
    schedule = fitting.compile_model(model, config, data.steps_per_epoch,
                                     config.optim.peak_learning_rate)
  history, timing = fitting.fit(model, data, config, run, schedule, strategy,
                                first_epoch=first_epoch, timing=timing)
  return history, timing, schedule


def train_head(model, data, config, run, strategy):
  """Phase 1: the head alone for train.frozen_epochs epochs, the backbone frozen."""
  backbone_of(model).trainable = False
  logging.info("transfer phase 1: %d epochs, head only (backbone frozen)",
               config.train.frozen_epochs)
  return _fit_phase(model, data, _phase_config(config, config.train.frozen_epochs,
                                               config.optim.peak_learning_rate),
                    run, strategy, first_epoch=0)


def fine_tune(model, data, config, run, strategy, timing=None):
  """Phase 2: everything but batch-norm statistics, at the lower rate, for the other epochs."""
  backbone = backbone_of(model)
  backbone.trainable = True
  for layer in backbone.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.trainable = False  # inference mode: moving statistics used, never updated
  epochs = config.train.epochs - config.train.frozen_epochs
  rate = config.optim.peak_learning_rate * config.optim.fine_tune_rate_factor
  logging.info("transfer phase 2: %d epochs, fine-tuning at learning rate %g (batch norm frozen)",
               epochs, rate)
  return _fit_phase(model, data, _phase_config(config, epochs, rate), run, strategy,
                    first_epoch=config.train.frozen_epochs, timing=timing)


def fit_two_phase(model, data, config, run, strategy):
  """Phase 1 then phase 2 (module docstring); returns what fitting.fit returns, over both
  phases, and redraws <run_dir>/learning_rate.png with both phases' schedules."""
  history, timing, head_schedule = train_head(model, data, config, run, strategy)
  head_steps = config.train.frozen_epochs * data.steps_per_epoch
  schedule = head_schedule
  if config.train.epochs > config.train.frozen_epochs:
    more, timing, tune_schedule = fine_tune(model, data, config, run, strategy, timing)
    for key, values in more.items():
      history.setdefault(key, []).extend(values)
    schedule = lambda step: head_schedule(step) if step < head_steps else \
        tune_schedule(step - head_steps)
  total_steps = config.train.epochs * data.steps_per_epoch
  fitting.write_schedule(run, schedule, total_steps, data.steps_per_epoch)
  return history, timing


def save_backbone_weights(model, run):
  """Writes <run dir>/backbone.weights.h5 for a model with a backbone; returns its path or None."""
  backbone = backbone_of(model)
  if backbone is None:
    return None
  path = run.file(BACKBONE_WEIGHTS)
  backbone.save_weights(path)
  return path
