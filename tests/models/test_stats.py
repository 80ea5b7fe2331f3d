"""app/models/stats.py: FLOPs per image from layer shapes, checked by hand and against papers."""

import pytest

from app.models import MODELS
from app.models.stats import flops_per_image


def test_simple_cnn_flops_by_hand():
  # conv1 26x26 outputs x 3x3x1 x 32, conv2 11x11 x 3x3x32 x 64, dense 1600 x 10: multiply-adds.
  multiply_adds = 26 * 26 * 9 * 32 + 11 * 11 * 9 * 32 * 64 + 5 * 5 * 64 * 10
  assert flops_per_image(MODELS.get("simple_cnn")((28, 28, 1), 10)) == 2 * multiply_adds


def test_depthwise_convolutions_count_one_filter_per_channel():
  import keras  # pylint: disable=g-import-not-at-top
  inputs = keras.Input((8, 8, 4))
  outputs = keras.layers.DepthwiseConv2D(3, padding="same")(inputs)
  assert flops_per_image(keras.Model(inputs, outputs)) == 2 * 8 * 8 * 4 * 9


# Multiply-adds per image in the papers: He et al. 2016 (ResNet-20 on CIFAR, as commonly
# quoted: 40.8M), Sandler et al. 2018 Table 3 (MobileNetV2 1.0 at 224: 300M), Tan & Le 2019
# Table 2 (EfficientNet-B0: 0.39B).
PUBLISHED_MULTIPLY_ADDS = {
    "resnet20": (40.8e6, (32, 32, 3), 10),
    "mobilenet_v2": (300e6, (224, 224, 3), 1000),
    "efficientnet_b0": (390e6, (224, 224, 3), 1000),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_MULTIPLY_ADDS))
def test_flops_match_the_published_multiply_adds(name):
  published, shape, classes = PUBLISHED_MULTIPLY_ADDS[name]
  flops = flops_per_image(MODELS.get(name)(shape, classes))
  assert abs(flops / 2 - published) / published < 0.02, (name, flops)
