"""Distribution strategy from the config: which devices model.fit runs on, and why."""

import tensorflow as tf
from absl import logging


def strategy_from_config(runtime):
  """runtime.strategy -> (tf.distribute.Strategy, a one-line reason for the log and the report)."""
  gpus = tf.config.list_logical_devices("GPU")
  name = runtime.strategy
  if name == "auto":
    if len(gpus) > 1:
      name, reason = "mirrored", f"auto: {len(gpus)} GPUs found, mirroring across them"
    elif gpus:
      name, reason = "one_device", "auto: one GPU found"
    else:
      name, reason = "default", "auto: no GPU found, training on the CPU"
  else:
    reason = f"--strategy={name}"
  if name == "default":
    strategy = tf.distribute.get_strategy()
  elif name == "one_device":
    strategy = tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  else:  # mirrored; app.config.validate admits nothing else
    strategy = tf.distribute.MirroredStrategy()
  reason += f" ({type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s))"
  logging.info("strategy: %s", reason)
  return strategy, reason
