"""The CIFAR ResNets of He et al. 2016 ("Deep Residual Learning", section 4.2): depth = 6n + 2.

resnet20/32/56 are the paper's 0.27M / 0.46M / 0.85M-parameter nets (Table 6). The paper's
shortcuts are identity with zero padding ("option A"); ours project with a 1x1 conv-BN where the
shape changes (two places, +1% parameters).
"""

import functools

import keras

from app.core.errors import UsageError
from app.models.layers import BatchNormalization
from app.models.registry import MODELS, classifier_head, conv_bn_act, require_input_size


def residual_block(x, filters, strides, activation, bn_momentum, name):
  """Two 3x3 conv-BN layers plus the shortcut (1x1 conv-BN projection where the shape changes)."""
  shortcut = x
  x = conv_bn_act(x, filters, activation, bn_momentum, f"{name}_a", strides=strides)
  x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(x)
  x = BatchNormalization(momentum=bn_momentum, name=f"{name}_b_bn")(x)
  if strides != 1 or shortcut.shape[-1] != filters:
    shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False,
                                   name=f"{name}_proj_conv")(shortcut)
    shortcut = BatchNormalization(momentum=bn_momentum, name=f"{name}_proj_bn")(shortcut)
  x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
  return keras.layers.Activation(activation, name=f"{name}_out")(x)


@MODELS.register("resnet")
def build_resnet(input_shape, num_classes, *, width=0, depth=0, dropout=0.0, bn_momentum=0.9,
                 activation="relu"):
  """CIFAR ResNet-depth (He et al. 2016), depth 6n + 2 (20 by default), widths w, 2w, 4w (w=16)."""
  width, depth = width or 16, depth or 20
  if depth < 8 or (depth - 2) % 6:
    raise UsageError(f"resnet depth must be 6n + 2 (8, 14, 20, 32, 56, ...); received {depth}")
  require_input_size(input_shape, 4, f"resnet{depth}")  # two stride-2 stages
  blocks = (depth - 2) // 6
  inputs = keras.Input(input_shape, name="image")
  x = conv_bn_act(inputs, width, activation, bn_momentum, "stem")
  for stage, filters in enumerate((width, 2 * width, 4 * width)):
    for block in range(blocks):
      strides = 2 if stage and not block else 1
      x = residual_block(x, filters, strides, activation, bn_momentum, f"stage{stage}_block{block}")
  return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=f"resnet{depth}")


for _depth in (20, 32, 56):
  MODELS.register(f"resnet{_depth}", functools.partial(build_resnet, depth=_depth))
