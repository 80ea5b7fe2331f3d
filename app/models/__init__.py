"""The model factory: MODELS (every family registered on import), build_model() and the
data-dependent initialisation hook init_from_data()."""

import functools
import inspect

from app.core import console

# `python -m app.models` imports this package before its command (app/cli/models.py, which would
# hide TensorFlow's start-up notes as every command does) runs: Keras brings TensorFlow in here.
console.quiet_tensorflow()

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position

# Importing a family's module registers it (and its named variants) in MODELS.
from app.models import (airbench, applications, preact_resnet, resnet, resnet9,  # noqa: F401
                        simple_cnn, vgg, wide_resnet)
from app.models.layers import (MIRROR_TRANSLATE_WEIGHTS, FlipConcat, MirrorTranslateConcat,
                               PairMean, ViewMean)
from app.models.registry import FAMILY_OPTIONS, MODELS
from app.models.whitening import init_from_data  # noqa: F401  (re-exported for training.py)


def build_model(model_config, image_shape, num_classes, mean, variance, augment_layers=()):
  """A registered family behind an input layer that normalises raw 0..255 pixels in the graph,
  so training, evaluation and the exported model all take the same raw images.

  `augment_layers` (config.data.augment_on_device) run on the raw images first; they are
  identity at inference, so evaluation and the export see the images unchanged.
  `model_config.tta="flip"` averages every inference prediction (validation, test, predict, the
  export) with the mirror image's, inside the model (FlipConcat / PairMean): twice the
  inference cost, training unchanged; "flip_translate" also with the image and its mirror moved
  by one pixel both ways (MirrorTranslateConcat / ViewMean, airbench's level 2): six times.

  width/depth of 0 are left out, so the family's (or the named variant's) default applies; the
  FAMILY_OPTIONS keys go only to the builders that take them."""
  build = MODELS.get(model_config.name)
  sizes = {key: model_config[key] for key in ("width", "depth") if model_config[key]}
  options = {key: model_config[key] for key in FAMILY_OPTIONS if takes(model_config.name, key)}
  network = build(
      tuple(image_shape), num_classes, dropout=model_config.dropout,
      bn_momentum=model_config.bn_momentum, activation=model_config.activation, **sizes, **options)
  inputs = x = keras.Input(tuple(image_shape), name="image")
  for layer in augment_layers:
    x = layer(x)
  x = keras.layers.Normalization(mean=list(mean), variance=list(variance), name="normalize")(x)
  if model_config.tta:
    make_views, mean = TTA[model_config.tta]
    x = make_views(name=f"tta_{model_config.tta}")(x)
  outputs = network(x)
  if model_config.tta:
    outputs = mean(name="tta_mean", dtype="float32")(outputs)
  return keras.Model(inputs, outputs, name=network.name)


# model.tta -> (the layer stacking each image's views along the batch, the one averaging their
# predictions again); the layer names stay those of checkpoints saved before the table.
TTA = {
    "flip": (FlipConcat, PairMean),
    "flip_translate": (MirrorTranslateConcat,
                       functools.partial(ViewMean, MIRROR_TRANSLATE_WEIGHTS)),
}


def takes(name, option):
  """Whether model `name`'s builder takes the keyword `option` (one of FAMILY_OPTIONS)."""
  return option in inspect.signature(MODELS.get(name)).parameters


def load_model(path):
  """Loads a `.keras` checkpoint of ours (safe mode: no arbitrary code), registering our custom
  layers and learning-rate schedules first so its compile state deserialises."""
  from app.optim import schedules  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  return keras.saving.load_model(path, safe_mode=True)
