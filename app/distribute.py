"""Distribution strategy from the config: which devices model.fit runs on, and why."""

import tensorflow as tf
from absl import logging

from app.errors import UsageError


def split_cpu(count):
  """Presents the CPU as `count` logical devices, so MirroredStrategy can be tried and tested
  without GPUs. Must run before TensorFlow initialises its devices (the first op or device query)."""
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
  except RuntimeError:
    if len(tf.config.list_logical_devices("CPU")) != count:
      raise UsageError("runtime.cpu_devices must be set before TensorFlow starts; pass it on the "
                       "command line of a fresh process") from None


def strategy_from_config(runtime):
  """runtime.strategy -> (tf.distribute.Strategy, a one-line reason for the log and the report)."""
  if runtime.cpu_devices > 1:
    split_cpu(runtime.cpu_devices)
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
    # Over the GPUs when there are any, else over the (possibly split) CPU devices.
    devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
  reason += f" ({type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s))"
  logging.info("strategy: %s", reason)
  return strategy, reason
