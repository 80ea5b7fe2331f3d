"""Acceleration switches: the mixed-precision policy (XLA and steps_per_execution go to compile)."""

import contextlib

import keras


def set_precision(runtime):
  keras.mixed_precision.set_global_policy(runtime.mixed_precision)


@contextlib.contextmanager
def float32_policy():
  """Builds inside this block use float32, e.g. the serving twin of a mixed-precision model."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("float32")
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)
