"""The model factory: MODELS (every family registered on import) and build_model()."""

import keras

from app.models import resnet, simple_cnn, vgg  # noqa: F401  (registers the families)
from app.models.registry import MODELS


def build_model(model_config, image_shape, num_classes, mean, variance):
  """A registered family behind an input layer that normalises raw 0..255 pixels in the graph,
  so training, evaluation and the exported model all take the same raw images."""
  build = MODELS.get(model_config.name)
  network = build(
      tuple(image_shape), num_classes, width=model_config.width, depth=model_config.depth,
      dropout=model_config.dropout, bn_momentum=model_config.bn_momentum,
      activation=model_config.activation)
  inputs = keras.Input(tuple(image_shape), name="image")
  x = keras.layers.Normalization(mean=list(mean), variance=list(variance), name="normalize")(inputs)
  return keras.Model(inputs, network(x), name=network.name)


def load_model(path):
  """Loads a `.keras` checkpoint of ours (safe mode: no arbitrary code), registering our custom
  layers and learning-rate schedules first so its compile state deserialises."""
  from app.optim import schedules  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  return keras.saving.load_model(path, safe_mode=True)
