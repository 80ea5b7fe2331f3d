"""ImageNet families from keras.applications (MobileNetV2, MobileNetV3, EfficientNetB0) as
backbones under our classifier head: the models transfer learning (app/transfer.py) starts from.

Weights come only from a local file (model.weights / --weights): a `backbone.weights.h5` that a
previous run of ours saved, or keras.applications' own "no top" .h5 download placed on disk by
hand. Nothing is ever downloaded (weights="imagenet" is never passed).

Preprocessing. Every family of ours takes images standardised per channel by build_model's
`normalize` layer (the training set's mean and variance). The stem here turns them into what the
backbone was trained on: it maps them to 0..255 pixels with ImageNet's per-channel mean and std,
(x * std_imagenet + mean_imagenet) * 255, i.e. the pixels of an image whose colour statistics
are ImageNet's, and then applies the backbone's own preprocessing (MobileNetV2: to [-1, 1];
MobileNetV3 and EfficientNet carry theirs inside). So a backbone sees inputs distributed as in
its pretraining whatever the data set's colours, and weights saved by one run of ours suit the
next even when its images differ. Grayscale images are repeated to 3 channels; images smaller
than 32 pixels (keras.applications' minimum) are upsampled to 32.
"""

import functools
import math
import re
import warnings

import keras

from app.core.errors import UsageError
from app.models.layers import BatchNormalization
from app.models.registry import MODELS, classifier_head, require_input_size

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # per RGB channel, of pixels / 255
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONE_MIN_SIDE = 32  # keras.applications refuses smaller inputs
SMALLEST_SIDE = 16  # below this the stem would upsample more than 2x: too little to see

# name -> (keras.applications constructor, first-stage channels at alpha 1 (width = alpha times
# this; None: fixed width), whether the backbone lacks its own preprocessing layer)
APPLICATIONS = {
    "mobilenet_v2": (keras.applications.MobileNetV2, 32, True),  # Sandler et al. 2018
    "mobilenet_v3_small": (keras.applications.MobileNetV3Small, 16, False),  # Howard et al. 2019
    "mobilenet_v3_large": (keras.applications.MobileNetV3Large, 16, False),
    "efficientnet_b0": (keras.applications.EfficientNetB0, None, False),  # Tan & Le 2019
}


def _imagenet_pixels(inputs):
  """(B, H, W, C) standardised images -> (B, H', W', 3) pixels with ImageNet's statistics."""
  x = inputs
  height, width, channels = inputs.shape[1:]
  if channels == 1:
    x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])  # (B, H, W, 1) -> (B, H, W, 3)
  if min(height, width) < BACKBONE_MIN_SIDE:
    scale = BACKBONE_MIN_SIDE / min(height, width)
    x = keras.layers.Resizing(math.ceil(height * scale), math.ceil(width * scale),
                              name="upsample")(x)
  return keras.layers.Rescaling(scale=[255.0 * s for s in IMAGENET_STD],
                                offset=[255.0 * m for m in IMAGENET_MEAN], name="to_pixels")(x)


def _with_our_batchnorm(backbone, bn_momentum):
  """A copy of `backbone` whose batch-norm layers are ours (TF's fused kernel: ~1.9x faster
  training under mixed_bfloat16 on CPU, see app/models/layers.py) at `bn_momentum`. Layer names
  and order are kept, so weight files load into either."""

  def clone(layer):
    if isinstance(layer, keras.layers.BatchNormalization):
      return BatchNormalization.from_config({**layer.get_config(), "momentum": bn_momentum})
    return layer.__class__.from_config(layer.get_config())

  return keras.models.clone_model(backbone, clone_function=clone)


_SKIPPED = re.compile(r"[Ss]kipping|could not be loaded|retain their")


def _first_line_of(error):
  """The useful sentence of a Keras weight-loading error, on one line."""
  text = " ".join(str(error).split())
  shapes = re.search(r"name=([\w/.-]+).*?variable\.shape=(\([^)]*\)), Received: value\.shape="
                     r"(\([^)]*\))", text)
  if shapes:
    return (f"layer {shapes.group(1)} has weights of shape {shapes.group(2)}, the file "
            f"{shapes.group(3)}")
  counts = re.search(r"Layer '[^']+' expected \d+ variables, but received \d+ variables", text)
  if counts:
    return counts.group(0)
  return text[:200]


def load_backbone_weights(backbone, path, model_name):
  """Loads `path` (a Keras 3 .weights.h5, or a keras.applications legacy .h5) into `backbone`;
  any mismatch of architecture or shape is a UsageError naming the first difference.

  Keras raises on a mismatch, but first warns once per layer it skips (a hundred lines); those
  warnings are held back, and one that arrives without an error is itself a mismatch (a layer
  would keep its random weights)."""
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
      backbone.load_weights(path)
      problem = next((w.message for w in caught if _SKIPPED.search(str(w.message))), None)
    except (ValueError, OSError) as e:
      problem = e
  if problem is not None:
    raise UsageError(
        f"weights file {path} does not fit the {model_name} backbone ({_first_line_of(problem)}); "
        "pass a backbone.weights.h5 saved by a run with the same --model and "
        f"--config.model.width, or keras.applications' no-top weights for {model_name}")
  for warning in caught:  # anything else Keras had to say
    warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def build_application(input_shape, num_classes, *, application, width=0, depth=0, dropout=0.0,
                      bn_momentum=0.9, activation="relu", weights=""):
  """A keras.applications ImageNet backbone (random or local-file weights) under our head.

  The backbone has no top; the stem adapts any image size and channel count (module docstring).

  width scales the backbone (alpha = width / its first-stage channels) where the family has a
  width multiplier; `depth` and `activation` do not apply (the backbone keeps its own);
  bn_momentum applies to all its batch-norm layers; `weights` is a local weights file."""
  del depth, activation
  constructor, unit_width, own_preprocessing_missing = APPLICATIONS[application]
  require_input_size(input_shape, SMALLEST_SIDE, application)
  inputs = keras.Input(input_shape, name="image")
  x = _imagenet_pixels(inputs)
  if own_preprocessing_missing:  # keras.applications.mobilenet_v2.preprocess_input: to [-1, 1]
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_backbone_range")(x)
  options = {"alpha": width / unit_width} if unit_width and width else {}
  backbone = _with_our_batchnorm(
      constructor(input_shape=tuple(x.shape[1:]), include_top=False, weights=None,
                  name="backbone", **options), bn_momentum)
  if weights:
    load_backbone_weights(backbone, weights, application)
  x = backbone(x)  # (B, H/32, W/32, features)
  return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=application)


for _name in APPLICATIONS:
  MODELS.register(_name, functools.partial(build_application, application=_name))


def backbone_of(model):
  """The keras.applications backbone inside a build_model() model, or None."""
  for layer in model.layers:
    if layer.name == "backbone":
      return layer
    if isinstance(layer, keras.Model):
      found = backbone_of(layer)
      if found is not None:
        return found
  return None
