"""FLOPs per image of a built model: the figure benchmarks divide throughput by.

FLOPs are 2 x the multiply-adds of the Conv2D, DepthwiseConv2D, Dense and PatchWhitening layers,
read from the layers' shapes (the convention of the ResNet and MobileNet papers, which quote
multiply-adds). Batch norm, activations, pooling, resizing and additions are left out: they are
memory-bound and a few percent of the count. Nested models (the ImageNet backbones) are entered.
"""

import math

import keras

from app.models.whitening import PatchWhitening


def _multiply_adds(layer):
  """Multiply-adds of one image through `layer`; 0 for the layers not counted."""
  if isinstance(layer, keras.layers.DepthwiseConv2D):  # a Conv2D subclass in some versions
    kernel = layer.kernel.shape  # (kh, kw, C_in, depth_multiplier)
    return math.prod(layer.output.shape[1:]) * kernel[0] * kernel[1]
  if isinstance(layer, (keras.layers.Conv2D, PatchWhitening)):
    kernel = layer.kernel.shape  # (kh, kw, C_in / groups, C_out)
    return math.prod(layer.output.shape[1:]) * kernel[0] * kernel[1] * kernel[2]
  if isinstance(layer, keras.layers.Dense):
    return math.prod(layer.output.shape[1:]) * layer.kernel.shape[0]
  return 0


def leaf_layers(model):
  """The layers of `model`, nested models (the ImageNet backbones, build_model's network)
  entered."""
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      yield from leaf_layers(layer)
    else:
      yield layer


def flops_per_image(model):
  """2 x multiply-adds of one forward pass of one image (see the module docstring)."""
  return 2 * sum(_multiply_adds(layer) for layer in leaf_layers(model))
