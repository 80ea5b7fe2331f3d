"""The keras-io "simple MNIST convnet" (keras.io/examples/vision/mnist_convnet): the baseline."""

import keras

from app.models.registry import MODELS, classifier_head, require_input_size


@MODELS.register("simple_cnn")
def build_simple_cnn(input_shape, num_classes, *, width=0, depth=0, dropout=0.5, bn_momentum=0.9,
                     activation="relu"):
  """The keras-io MNIST convnet: conv(w)-pool-conv(2w)-pool-flatten-dropout-dense (w=32).

  No batch norm.

  `depth` and `bn_momentum` do not apply (the net has no batch norm and fixed depth).
  """
  del depth, bn_momentum
  width = width or 32
  require_input_size(input_shape, 10, "simple_cnn")  # two valid 3x3 convs and 2x2 pools: 10 -> 1
  inputs = keras.Input(input_shape, name="image")
  x = keras.layers.Conv2D(width, 3, activation=activation, name="conv1")(inputs)
  x = keras.layers.MaxPooling2D(name="pool1")(x)
  x = keras.layers.Conv2D(2 * width, 3, activation=activation, name="conv2")(x)
  x = keras.layers.MaxPooling2D(name="pool2")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  return keras.Model(inputs, classifier_head(x, num_classes, dropout), name="simple_cnn")
