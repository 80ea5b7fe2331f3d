"""The model factory: MODELS (every family registered on import), build_model() and the
data-dependent initialisation hook init_from_data()."""

import functools
import inspect
import os
import re
import zipfile

from app.core import console
from app.core.errors import UsageError

# `python -m app.models` imports this package before its command (app/cli/models.py, which would
# hide TensorFlow's start-up notes as every command does) runs: Keras brings TensorFlow in here.
console.quiet_tensorflow()

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position

# Importing a family's module registers it (and its named variants) in MODELS.
from app.models import (airbench, applications, memory, preact_resnet, resnet,  # noqa: F401
                        resnet9, simple_cnn, vgg, wide_resnet)
from app.models.layers import (MIRROR_TRANSLATE_WEIGHTS, FlipConcat, MirrorTranslateConcat,
                               PairMean, ViewMean)
from app.models.registry import FAMILY_OPTIONS, MODELS
from app.models.whitening import init_from_data  # noqa: F401  (re-exported for training.py)


def build_model(model_config, image_shape, num_classes, mean, variance, augment_layers=(),
                batch_size=0):
  """A registered family behind an input layer that normalises raw 0..255 pixels in the graph,
  so training, evaluation and the exported model all take the same raw images.

  `augment_layers` (config.data.augment_on_device) run on the raw images first; they are
  identity at inference, so evaluation and the export see the images unchanged.
  `model_config.tta="flip"` averages every inference prediction (validation, test, predict, the
  export) with the mirror image's, inside the model (FlipConcat / PairMean): twice the
  inference cost, training unchanged; "flip_translate" also with the image and its mirror moved
  by one pixel both ways (MirrorTranslateConcat / ViewMean, airbench's level 2): six times.

  width/depth of 0 are left out, so the family's (or the named variant's) default applies; the
  FAMILY_OPTIONS keys go only to the builders that take them.

  Sizes are bounded by memory (app/models/memory.py): weights that cannot be allocated, and with
  `batch_size` (a run's global batch; 0 = not checked) a training step that cannot fit, are one
  UsageError naming the flag to lower."""
  build = MODELS.get(model_config.name)
  sizes = {key: model_config[key] for key in ("width", "depth") if model_config[key]}
  options = {key: model_config[key] for key in FAMILY_OPTIONS if takes(model_config.name, key)}
  with memory.weights_within_memory(model_config, image_shape):
    network = build(
        tuple(image_shape), num_classes, dropout=model_config.dropout,
        bn_momentum=model_config.bn_momentum, activation=model_config.activation, **sizes,
        **options)
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
  model = keras.Model(inputs, outputs, name=network.name)
  if batch_size:
    memory.require_trainable(model, batch_size)
  return model


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
  """Loads a `.keras` checkpoint of ours in Keras's safe mode (a file holding Python code, such
  as a Lambda layer, is refused rather than run), registering our custom layers and learning-rate
  schedules first so its compile state deserialises. Every `.keras` file the application reads
  comes through here: a missing, foreign, crafted or damaged one is one UsageError."""
  from app.optim import schedules  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  if not os.path.isfile(path):
    raise UsageError(f"checkpoint {path} does not exist; pass a .keras file or --checkpoint=best")
  if not path.endswith(".keras") or not zipfile.is_zipfile(path):
    raise UsageError(f"{path} is not a .keras model file; pass a checkpoint written by app.train "
                     "(checkpoints/best.keras)")
  try:
    return keras.saving.load_model(path, safe_mode=True)
  # A crafted file makes Keras raise what its deserialiser happens to meet: ValueError (safe mode,
  # a bad config), TypeError (an unknown class, a call it will not make), KeyError, OSError (h5),
  # zipfile.BadZipFile, ... All of them are the file's fault, none may become a traceback.
  except Exception as e:  # pylint: disable=broad-except
    if "safe_mode" in str(e):
      raise UsageError(
          f"refusing to load {path}: it holds Python code (e.g. a Lambda layer) that safe mode "
          "will not deserialize; rebuild the model without Lambda layers") from None
    # Keras wraps an unknown class in a generic first line; the class it could not find is deeper.
    unknown = re.search(r"Could not locate (?:class|function) '[^']*'", str(e))
    reason = unknown.group(0) if unknown else (str(e).strip().splitlines() or [""])[0][:160]
    raise UsageError(f"cannot load {path} as a Keras model of this application "
                     f"({type(e).__name__}: {reason}); pass an intact checkpoint written by "
                     "app.train") from None
