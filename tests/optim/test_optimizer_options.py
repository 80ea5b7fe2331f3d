"""Optimizer options beyond the basics: clipping by value, gradient accumulation, EMA, LAMB."""

import keras
import numpy as np

from app.optim.optimizers import build_optimizer
from configs import default


def optim(**changes):
  config = default.get_config().optim
  config.name = "sgd"
  config.momentum = 0.0
  for key, value in changes.items():
    config[key] = value
  return config


def test_clipvalue_clips_each_gradient_element():
  variable = keras.Variable(np.zeros(3, "float32"))
  optimizer = build_optimizer(optim(clipvalue=0.5), 1.0)
  optimizer.apply_gradients([(np.array([2.0, -0.1, -3.0], "float32"), variable)])
  np.testing.assert_allclose(variable.numpy(), [-0.5, 0.1, 0.5], atol=1e-6)


def test_gradient_accumulation_applies_the_mean_every_n_steps():
  variable = keras.Variable(np.zeros(1, "float32"))
  optimizer = build_optimizer(optim(gradient_accumulation_steps=2), 1.0)
  optimizer.apply_gradients([(np.array([1.0], "float32"), variable)])
  np.testing.assert_allclose(variable.numpy(), [0.0])  # accumulated, not applied
  optimizer.apply_gradients([(np.array([3.0], "float32"), variable)])
  np.testing.assert_allclose(variable.numpy(), [-2.0])  # mean of 1 and 3


def test_ema_and_lamb_are_configured():
  assert build_optimizer(optim(ema=True, ema_momentum=0.95), 0.1).use_ema
  assert isinstance(build_optimizer(optim(name="lamb"), 0.1), keras.optimizers.Lamb)
