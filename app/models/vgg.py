"""VGG-style nets with batch norm (Simonyan & Zisserman 2015; Ioffe & Szegedy 2015)."""

import keras

from app.models.registry import MODELS, classifier_head, conv_bn_act, require_input_size


@MODELS.register("vgg")
def build_vgg(input_shape, num_classes, *, width=0, depth=0, dropout=0.0, bn_momentum=0.9,
              activation="relu", kernel_size=0, batch_norm=True):
  """VGG-style net with batch norm: three stages of conv-BN-act at widths w, 2w, 4w (w=32).

  Each stage has `depth` conv-BN-act layers (2 by default), with a 2x2 max-pool between stages,
  then global average pooling and the classifier. `kernel_size`: the convs' side (0 = 3);
  `batch_norm=False`: convs with biases and no batch norm."""
  width, depth, kernel_size = width or 32, depth or 2, kernel_size or 3
  require_input_size(input_shape, 4, "vgg")  # two 2x2 max-pools
  inputs = keras.Input(input_shape, name="image")
  x = inputs
  for stage, filters in enumerate((width, 2 * width, 4 * width)):
    if stage:
      x = keras.layers.MaxPooling2D(name=f"stage{stage}_pool")(x)
    for layer in range(depth):
      x = conv_bn_act(x, filters, activation, bn_momentum, name=f"stage{stage}_{layer}",
                      kernel_size=kernel_size, batch_norm=batch_norm)
  return keras.Model(inputs, classifier_head(x, num_classes, dropout), name="vgg")
