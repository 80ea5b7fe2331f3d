"""app/optim/optimizers.py: every optimizer builds; weight decay shrinks kernels, not biases or BN."""

import keras
import numpy as np
import pytest

from app.core.errors import UsageError

from app import config as config_lib
from app.optim.optimizers import OPTIMIZERS, build_optimizer
from configs import default


def optim_config(name, **changes):
  optim = default.get_config().optim
  optim.name = name
  for key, value in changes.items():
    optim[key] = value
  return optim


def tiny_model():
  """Conv with bias + batch norm, every variable non-zero so decay would show on each of them."""
  model = keras.Sequential([
      keras.Input((5, 5, 2)),
      keras.layers.Conv2D(3, 3, use_bias=True, name="conv"),
      keras.layers.BatchNormalization(name="bn"),
      keras.layers.Flatten(),
      keras.layers.Dense(2, name="dense"),
  ])
  rng = np.random.default_rng(0)
  for variable in model.trainable_variables:
    variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
  return model


def values(model):
  return {v.path: v.numpy().copy() for v in model.trainable_variables}


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_builds_and_steps(name):
  optimizer = build_optimizer(optim_config(name, weight_decay=1e-4, clipnorm=1.0), 0.01)
  assert isinstance(optimizer, keras.optimizers.Optimizer)
  assert float(optimizer.learning_rate) == pytest.approx(0.01)
  assert optimizer.clipnorm == 1.0
  model = tiny_model()
  before = values(model)
  optimizer.apply_gradients(
      [(keras.ops.ones_like(v), v) for v in model.trainable_variables])
  assert all(not np.array_equal(before[v.path], v.numpy()) for v in model.trainable_variables)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_builds_for_a_momentum_validate_accepts(name, momentum):
  """validate() is the one place that refuses a config: what it accepts must build."""
  config = default.get_config()
  config.optim.name = name
  config.optim.momentum = momentum
  if name == "lion" and momentum == 0:  # Keras's Lion needs beta_1 > 0: validate refuses it
    with pytest.raises(UsageError, match="Lion"):
      config_lib.validate(config)
    return
  config_lib.validate(config)
  build_optimizer(config.optim, 0.01)


def test_zero_weight_decay_and_clipnorm_mean_off():
  for name in OPTIMIZERS.names():
    optimizer = build_optimizer(optim_config(name), 0.01)
    assert not optimizer.weight_decay, name  # AdamW too: never Keras's 0.004 default
    assert optimizer.clipnorm is None, name


def test_weight_decay_shrinks_kernels_only():
  rate, weight_decay = 0.1, 0.05
  optimizer = build_optimizer(optim_config("sgd", momentum=0.0, nesterov=False,
                                           weight_decay=weight_decay), rate)
  model = tiny_model()
  optimizer.build(model.trainable_variables)
  before = values(model)
  optimizer.apply_gradients([(keras.ops.zeros_like(v), v) for v in model.trainable_variables])
  after = values(model)
  assert sorted(p.split("/", 1)[1] for p in after) == [
      "bn/beta", "bn/gamma", "conv/bias", "conv/kernel", "dense/bias", "dense/kernel"]
  for path, value in after.items():
    if path.endswith("kernel"):
      np.testing.assert_allclose(value, before[path] * (1 - rate * weight_decay), rtol=1e-6)
    else:
      np.testing.assert_array_equal(value, before[path], err_msg=path)
