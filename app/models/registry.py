"""MODELS: name -> builder(input_shape, num_classes, *, width, depth, dropout, bn_momentum,
activation) -> keras.Model taking normalised float images and returning class probabilities.

Builders are pure Keras 3 (keras.layers, keras.ops). `width=0` / `depth=0` mean the family's
default. The classifier ends in a float32 softmax, so mixed precision never rounds probabilities.
"""

import keras

from app.models.layers import BatchNormalization

from app.registry import Registry

MODELS = Registry("model")


def classifier_head(x, num_classes, dropout):
  """Global average pool -> dropout -> dense -> float32 softmax, shared by every family."""
  if len(x.shape) == 4:
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)  # (B, H, W, C) -> (B, C)
  if dropout:
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
  x = keras.layers.Dense(num_classes, name="logits")(x)
  return keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def conv_bn_act(x, filters, activation, bn_momentum, name, kernel_size=3, strides=1):
  x = keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                          name=f"{name}_conv")(x)
  x = BatchNormalization(momentum=bn_momentum, name=f"{name}_bn")(x)
  return keras.layers.Activation(activation, name=f"{name}_act")(x)
