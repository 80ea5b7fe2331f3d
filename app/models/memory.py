"""The memory that training a built model needs at least, checked against the machine's
(app/core/memory.py) before the first step, so a width, image size or batch too large to train is
one line naming the flag to lower instead of a ResourceExhaustedError traceback (or the OOM
killer) in the first step; and building weights that cannot fit at all is that line too."""

import contextlib
import math

import keras
import tensorflow as tf

from app.core import memory
from app.core.errors import UsageError
from app.models.stats import leaf_layers

_DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float64": 8}  # others: 4 (float32, int32)


def training_bytes(model, batch_size):
  """(weight bytes, activation bytes) a training step of `model` on `batch_size` images holds at
  least: the float32 weights and the trainable ones' gradients; every layer's output for the
  batch at its compute dtype (mixed precision: 2 bytes), which backpropagation keeps. Optimizer
  slots, workspaces and the input pipeline come on top."""
  weights = 4 * (model.count_params() + sum(math.prod(w.shape) for w in model.trainable_weights))
  per_image = 0
  for layer in leaf_layers(model):
    for output in keras.tree.flatten(layer.output):
      if None not in output.shape[1:]:
        per_image += math.prod(output.shape[1:]) * _DTYPE_BYTES.get(output.dtype, 4)
  return weights, per_image * batch_size


def require_trainable(model, batch_size):
  """UsageError when training_bytes(model, batch_size) exceed the machine's memory, naming the
  flags that shrink the larger part."""
  weights, activations = training_bytes(model, batch_size)
  fix = ("lower --batch_size or --config.data.image_size" if activations >= weights else
         "lower --config.model.width (or --config.data.image_size, for families that flatten)")
  shape = "x".join(str(side) for side in model.input_shape[1:])
  memory.require_fits(
      weights + activations,
      f"training {model.name} ({model.count_params():,} parameters) on batches of {batch_size} "
      f"{shape} images (weights and gradients {memory.shown(weights)}, activations "
      f"{memory.shown(activations)})", fix)


@contextlib.contextmanager
def weights_within_memory(model_config, image_shape):
  """Building inside: weights too large to allocate (TensorFlow's allocator refuses them, on the
  CPU or a GPU) become one UsageError naming the width."""
  try:
    yield
  except (tf.errors.ResourceExhaustedError, MemoryError):
    shape = "x".join(str(side) for side in image_shape)
    width = model_config.width or "the family's default"
    raise UsageError(
        f"the weights of {model_config.name} at width {width} on {shape} images do not fit in "
        "memory; lower --config.model.width (or --config.data.image_size, for families that "
        "flatten)") from None
