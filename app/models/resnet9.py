"""ResNet-9, David Page's DAWNBench CIFAR-10 entry (myrtle.ai, "How to train your ResNet", 2018):
94% test accuracy in 79 s on one V100 (26 s on 8); 6.5M parameters."""

import keras

from app.models.registry import MODELS, classifier_head, conv_bn_act, require_input_size


@MODELS.register("resnet9")
def build_resnet9(input_shape, num_classes, *, width=0, depth=0, dropout=0.0, bn_momentum=0.9,
                  activation="relu"):
  """ResNet-9 of the DAWNBench CIFAR-10 entries (Page 2018); 6.5M parameters.

  prep(w) -> layer1(2w, pool, residual) -> layer2(4w, pool) -> layer3(8w, pool, residual) ->
  global max pool -> dense, logits x 0.125; w=64 by default. `depth` does not apply."""
  del depth
  width = width or 64
  require_input_size(input_shape, 8, "resnet9")  # three 2x2 max-pools
  inputs = keras.Input(input_shape, name="image")
  x = conv_bn_act(inputs, width, activation, bn_momentum, "prep")
  for name, filters, residual in (("layer1", 2 * width, True), ("layer2", 4 * width, False),
                                  ("layer3", 8 * width, True)):
    x = conv_bn_act(x, filters, activation, bn_momentum, name)
    x = keras.layers.MaxPooling2D(name=f"{name}_pool")(x)
    if residual:
      y = conv_bn_act(x, filters, activation, bn_momentum, f"{name}_res1")
      y = conv_bn_act(y, filters, activation, bn_momentum, f"{name}_res2")
      x = keras.layers.Add(name=f"{name}_add")([x, y])
  # Page pools the final 4x4 map with MaxPool(4); a global max pool is that for 32x32 inputs and
  # keeps other sizes working. (B, H, W, C) -> (B, C)
  x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
  # Logits x 0.125 (Page's Mul(0.125)): keeps the early softmax soft at his high learning rates.
  return keras.Model(inputs, classifier_head(x, num_classes, dropout, logit_scale=0.125),
                     name="resnet9")
