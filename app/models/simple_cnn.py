"""The keras-io "simple MNIST convnet" (keras.io/examples/vision/mnist_convnet): the baseline."""

import keras

from app.models.registry import MODELS, classifier_head, require_input_size


@MODELS.register("simple_cnn")
def build_simple_cnn(input_shape, num_classes, *, width=0, depth=0, dropout=0.5, bn_momentum=0.9,
                     activation="relu", kernel_size=0):
  """The keras-io MNIST convnet: conv(w)-pool-conv(2w)-pool-flatten-dropout-dense (w=32).

  No batch norm.

  `depth` and `bn_momentum` do not apply (the net has no batch norm and fixed depth).
  `kernel_size`: the convs' side (0 = 3).
  """
  del depth, bn_momentum
  width, kernel_size = width or 32, kernel_size or 3
  # Two valid k x k convs, each followed by a 2x2 pool: 3k + 1 pixels leave one (k=3: 10 -> 1).
  require_input_size(input_shape, 3 * kernel_size + 1, "simple_cnn")
  inputs = keras.Input(input_shape, name="image")
  x = keras.layers.Conv2D(width, kernel_size, activation=activation, name="conv1")(inputs)
  x = keras.layers.MaxPooling2D(name="pool1")(x)
  x = keras.layers.Conv2D(2 * width, kernel_size, activation=activation, name="conv2")(x)
  x = keras.layers.MaxPooling2D(name="pool2")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  return keras.Model(inputs, classifier_head(x, num_classes, dropout), name="simple_cnn")
