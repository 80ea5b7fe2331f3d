"""Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks"):
BN-act-conv ordering, identity shortcuts kept clean. PreAct ResNet-18 for CIFAR (the layout of
kuangliu/pytorch-cifar, 11.2M parameters) and the shared block that Wide ResNets use too."""

import functools

import keras

from app.core.errors import UsageError
from app.models.layers import BatchNormalization
from app.models.registry import MODELS, classifier_head, require_input_size

STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}  # basic blocks per stage (He et al. Table 1)


def preact_block(x, filters, strides, activation, bn_momentum, name):
  """BN-act-conv3x3-BN-act-conv3x3 plus the shortcut: the input itself, or where the shape
  changes a 1x1 projection of the pre-activated input."""
  preact = BatchNormalization(momentum=bn_momentum, name=f"{name}_preact_bn")(x)
  preact = keras.layers.Activation(activation, name=f"{name}_preact_act")(preact)
  shortcut = x
  if strides != 1 or x.shape[-1] != filters:
    shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False,
                                   name=f"{name}_proj_conv")(preact)
  y = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                          name=f"{name}_a_conv")(preact)
  y = BatchNormalization(momentum=bn_momentum, name=f"{name}_a_bn")(y)
  y = keras.layers.Activation(activation, name=f"{name}_a_act")(y)
  y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
  return keras.layers.Add(name=f"{name}_add")([y, shortcut])


def preact_stages(x, stage_widths, stage_blocks, activation, bn_momentum):
  """Stages of pre-activation blocks, stride 2 at the start of every stage after the first,
  closed by the BN-act the last block leaves out."""
  for stage, (filters, blocks) in enumerate(zip(stage_widths, stage_blocks)):
    for block in range(blocks):
      strides = 2 if stage and not block else 1
      x = preact_block(x, filters, strides, activation, bn_momentum, f"stage{stage}_block{block}")
  x = BatchNormalization(momentum=bn_momentum, name="final_bn")(x)
  return keras.layers.Activation(activation, name="final_act")(x)


@MODELS.register("preact_resnet")
def build_preact_resnet(input_shape, num_classes, *, width=0, depth=0, dropout=0.0,
                        bn_momentum=0.9, activation="relu"):
  """Pre-activation ResNet-18/34 (He et al. 2016b), CIFAR layout; 11.2M parameters at 18.

  A 3x3 conv(w), four stages at w, 2w, 4w, 8w (w=64) of 2-2-2-2 (depth 18, the default) or
  3-4-6-3 (34) blocks, global average pooling and the classifier."""
  width, depth = width or 64, depth or 18
  if depth not in STAGE_BLOCKS:
    raise UsageError(f"preact_resnet depth must be one of {sorted(STAGE_BLOCKS)}; received {depth}")
  require_input_size(input_shape, 8, f"preact_resnet{depth}")  # three stride-2 stages
  inputs = keras.Input(input_shape, name="image")
  x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
  x = preact_stages(x, [width * 2**stage for stage in range(4)], STAGE_BLOCKS[depth], activation,
                    bn_momentum)
  return keras.Model(inputs, classifier_head(x, num_classes, dropout),
                     name=f"preact_resnet{depth}")


MODELS.register("preact_resnet18", functools.partial(build_preact_resnet, depth=18))
