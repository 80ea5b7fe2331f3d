"""Wide ResNets (Zagoruyko & Komodakis 2016): WRN-d-k, depth d = 6n + 4, widening factor k.

WRN-16-4 (2.7M parameters) and WRN-28-10 (36.5M; 96.0% on CIFAR-10 in the paper) are named
variants. The paper's dropout between the two convs of a block is left out: model.dropout is the
classifier's, as in every family.
"""

import functools

import keras

from app.core.errors import UsageError
from app.models.preact_resnet import preact_stages
from app.models.registry import MODELS, classifier_head, require_input_size

STEM_WIDTH = 16  # the 3x3 conv before the first stage is 16 channels for every k


@MODELS.register("wide_resnet")
def build_wide_resnet(input_shape, num_classes, *, width=0, depth=0, dropout=0.0,
                      bn_momentum=0.9, activation="relu"):
  """Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016): depth d = 6n + 4, width w = 16k.

  conv(16), three stages of pre-activation blocks at w, 2w, 4w with w = 16k the width of the
  first stage (depth 16, w=64: WRN-16-4, by default)."""
  width, depth = width or 64, depth or 16
  if depth < 10 or (depth - 4) % 6:
    raise UsageError(f"wide_resnet depth must be 6n + 4 (10, 16, 22, 28, 40, ...); received {depth}")
  require_input_size(input_shape, 4, "wide_resnet")  # two stride-2 stages
  blocks = (depth - 4) // 6
  factor = f"{width // STEM_WIDTH}" if width % STEM_WIDTH == 0 else f"{width / STEM_WIDTH:g}"
  inputs = keras.Input(input_shape, name="image")
  x = keras.layers.Conv2D(STEM_WIDTH, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
  x = preact_stages(x, (width, 2 * width, 4 * width), (blocks,) * 3, activation, bn_momentum)
  return keras.Model(inputs, classifier_head(x, num_classes, dropout),
                     name=f"wrn{depth}_{factor}".replace(".", "p"))


MODELS.register("wrn16_4", functools.partial(build_wide_resnet, depth=16, width=4 * STEM_WIDTH))
MODELS.register("wrn28_10", functools.partial(build_wide_resnet, depth=28, width=10 * STEM_WIDTH))
