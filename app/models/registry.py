"""MODELS: name -> builder(input_shape, num_classes, *, width, depth, dropout, bn_momentum,
activation) -> keras.Model taking normalised float images and returning class probabilities.

Builders are pure Keras 3 (keras.layers, keras.ops). `width=0` / `depth=0` mean the family's
default. The classifier ends in a float32 softmax, so mixed precision never rounds probabilities.
A family may take extra keywords named in FAMILY_OPTIONS (airbench: `whitening`, `dirac`,
`bn_scale`, `bn_bias_lr_scale`; vgg: `kernel_size`, `batch_norm`; simple_cnn: `kernel_size`; the
keras.applications backbones: `weights`); build_model passes them to the builders that name them.
Named variants are partials (`resnet56 = partial(build_resnet, depth=56)`).
"""

import keras

from app.core.errors import UsageError
from app.models.layers import BatchNormalization
from app.core.registry import Registry

MODELS = Registry("model")

# Config keys (config.model.<key>) that only some builders take, as keyword arguments.
FAMILY_OPTIONS = ("whitening", "dirac", "bn_scale", "bn_bias_lr_scale", "kernel_size",
                  "batch_norm", "weights")


def classifier_head(x, num_classes, dropout, logit_scale=1.0):
  """Global average pool -> dropout -> dense -> float32 softmax, shared by every family.

  A (B, C) input skips the pooling (families that pool their own way). `logit_scale` multiplies
  the logits before the softmax (Page's ResNet-9: 0.125; airbench: 1/9)."""
  if len(x.shape) == 4:
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)  # (B, H, W, C) -> (B, C)
  if dropout:
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
  x = keras.layers.Dense(num_classes, name="logits")(x)
  if logit_scale != 1.0:
    x = keras.layers.Rescaling(logit_scale, name="logit_scale")(x)
  return keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def conv_bn_act(x, filters, activation, bn_momentum, name, kernel_size=3, strides=1,
                batch_norm=True):
  """conv -> BN -> activation (batch_norm=False: a conv with a bias, then the activation)."""
  x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                          use_bias=not batch_norm, name=f"{name}_conv")(x)
  if batch_norm:
    x = BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
  return keras.layers.Activation(activation, name=f"{name}_act")(x)


def require_input_size(input_shape, minimum, model_name):
  """UsageError unless images are at least `minimum` pixels a side: the smallest size whose
  feature maps survive the family's downsampling (or, for the ImageNet backbones, its stem)."""
  height, width = input_shape[:2]
  if min(height, width) < minimum:
    raise UsageError(
        f"input size {height}x{width} is too small for {model_name}, which needs at least "
        f"{minimum}x{minimum} pixels; pass --config.data.image_size={minimum} (or larger) or "
        "choose another --model")
