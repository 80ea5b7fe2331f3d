"""OPTIMIZERS: name -> builder(learning_rate, optim config) -> keras optimizer.

Weight decay is Keras 3's decoupled form (AdamW-style: w -= rate * weight_decay * w each step)
on every optimizer, and skips biases and batch-norm parameters: decaying BN's gamma/beta only
shrinks the normalised activations and hurts accuracy (Jia et al. 2018, "Highly Scalable...").
"""

import keras

from app.core.registry import Registry

OPTIMIZERS = Registry("optimizer")


def peak_rate(optim, batch_size):
  """The peak learning rate at `batch_size`: optim.learning_rate scaled by the linear scaling rule
  (Goyal et al. 2017) to batch_size / optim.reference_batch_size, or as given when that is 0."""
  scale = batch_size / optim.reference_batch_size if optim.reference_batch_size else 1.0
  return optim.learning_rate * scale


def _common(optim):
  accumulate = optim.gradient_accumulation_steps
  return {
      "weight_decay": optim.weight_decay or None,
      "clipnorm": optim.clipnorm or None,
      "clipvalue": optim.clipvalue or None,
      "gradient_accumulation_steps": accumulate if accumulate > 1 else None,
      "use_ema": optim.ema,
      "ema_momentum": optim.ema_momentum,
  }


@OPTIMIZERS.register("sgd")
def sgd(rate, optim):
  return keras.optimizers.SGD(rate, momentum=optim.momentum, nesterov=optim.nesterov, **_common(optim))


@OPTIMIZERS.register("adam")
def adam(rate, optim):
  return keras.optimizers.Adam(rate, beta_1=optim.momentum, **_common(optim))


@OPTIMIZERS.register("adamw")
def adamw(rate, optim):
  common = _common(optim)
  common["weight_decay"] = optim.weight_decay  # AdamW: 0 means none, never Keras's 0.004 default
  return keras.optimizers.AdamW(rate, beta_1=optim.momentum, **common)


@OPTIMIZERS.register("rmsprop")
def rmsprop(rate, optim):
  return keras.optimizers.RMSprop(rate, momentum=optim.momentum, **_common(optim))


@OPTIMIZERS.register("adagrad")
def adagrad(rate, optim):
  return keras.optimizers.Adagrad(rate, **_common(optim))


@OPTIMIZERS.register("nadam")
def nadam(rate, optim):
  return keras.optimizers.Nadam(rate, beta_1=optim.momentum, **_common(optim))


@OPTIMIZERS.register("lion")
def lion(rate, optim):
  return keras.optimizers.Lion(rate, beta_1=optim.momentum, **_common(optim))


@OPTIMIZERS.register("lamb")
def lamb(rate, optim):
  """LAMB (You et al. 2020): Adam with a per-layer trust ratio, for very large batches."""
  return keras.optimizers.Lamb(rate, beta_1=optim.momentum, **_common(optim))


def build_optimizer(optim, rate):
  optimizer = OPTIMIZERS.get(optim.name)(rate, optim)
  if optim.weight_decay:
    # Keras matches these as substrings of variable paths: conv/dense biases and BN gamma/beta.
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
  return optimizer
