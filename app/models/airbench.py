"""The airbench CIFAR-10 net (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU",
2024; airbench94): frozen patch whitening, three conv groups, max-pooling head, logits / 9."""

import keras

from app.models.layers import BatchNormalization, PartialDirac
from app.models.registry import MODELS, classifier_head, require_input_size
from app.models.whitening import PatchWhitening


def conv_group(x, filters, convs, activation, bn_momentum, name, dirac=False, bn_scale=True,
               bn_bias_lr_scale=1.0):
  """conv -> 2x2 max-pool -> BN -> act, then (convs - 1) x (conv -> BN -> act): airbench's
  ConvGroup, which pools right after the first conv so the rest runs at a quarter of the cost.
  `dirac`: each conv starts as the identity on its first input channels (PartialDirac).
  `bn_scale`, `bn_bias_lr_scale`: the batch norms' learned scale, and their bias's rate factor."""
  for index in range(convs):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                            kernel_initializer=PartialDirac() if dirac else "glorot_uniform",
                            name=f"{name}_conv{index}")(x)
    if index == 0:
      x = keras.layers.MaxPooling2D(name=f"{name}_pool")(x)
    x = BatchNormalization(momentum=bn_momentum, scale=bn_scale, bias_lr_scale=bn_bias_lr_scale,
                           name=f"{name}_bn{index}")(x)
    x = keras.layers.Activation(activation, name=f"{name}_act{index}")(x)
  return x


@MODELS.register("airbench")
def build_airbench(input_shape, num_classes, *, width=0, depth=0, dropout=0.0, bn_momentum=0.9,
                   activation="relu", whitening=True, dirac=False, bn_scale=True,
                   bn_bias_lr_scale=1.0):
  """airbench94 (Jordan 2024): frozen patch whitening, three conv groups, max-pool head.

  2x2 patch whitening (frozen, from the data; whitening=False: a trained 2x2 conv instead),
  three conv groups at w, 4w, 4w (w=64) of `depth` convs each (2; airbench96 uses 3), global max
  pool, dense, logits / 9. airbench94 trains it with GELU and batch-norm momentum 0.6, its convs
  starting from the identity (dirac=True, PartialDirac), its batch norms without a learned scale
  (bn_scale=False) and their biases at 64 times the rate (bn_bias_lr_scale=64; in its ablations
  this took 94% from 22 to 17 epochs)."""
  width, depth = width or 64, depth or 2
  require_input_size(input_shape, 9, "airbench")  # a 2x2 valid conv, then three 2x2 max-pools
  inputs = keras.Input(input_shape, name="image")
  if whitening:
    x = PatchWhitening(patch_size=2, name="whiten")(inputs)
  else:
    x = keras.layers.Conv2D(8 * input_shape[-1], 2, name="whiten")(inputs)
  x = keras.layers.Activation(activation, name="whiten_act")(x)
  for index, filters in enumerate((width, 4 * width, 4 * width)):
    x = conv_group(x, filters, depth, activation, bn_momentum, f"group{index}", dirac, bn_scale,
                   bn_bias_lr_scale)
  x = keras.layers.GlobalMaxPooling2D(name="pool")(x)  # airbench: MaxPool2d(3) on the 3x3 map
  # Logits / 9 (airbench's scaling_factor): the softmax starts soft, as at their learning rates.
  return keras.Model(inputs, classifier_head(x, num_classes, dropout, logit_scale=1 / 9),
                     name="airbench")
