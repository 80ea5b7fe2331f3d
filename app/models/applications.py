"""ImageNet families from keras.applications (MobileNetV2, MobileNetV3, EfficientNetB0) as
backbones under our classifier head: the models transfer learning (app/train/transfer.py) starts
from.

Weights (model.weights / --weights): "imagenet" takes keras.applications' own "no top" ImageNet
file for the family and width, downloaded once by keras.utils.get_file into the Keras cache
($KERAS_HOME/models, default ~/.keras/models) exactly as keras.applications(weights="imagenet")
names, fetches and checks it; a path takes a local file instead (a `backbone.weights.h5` that a
previous run of ours saved, or one of those keras.applications files). Nothing is downloaded
unless "imagenet" is asked for, and a failed download is one UsageError naming the cache path.

Preprocessing. Every family of ours takes images standardised per channel by build_model's
`normalize` layer (the training set's mean and variance). The stem here turns them into what the
backbone was trained on: it maps them to 0..255 pixels with ImageNet's per-channel mean and std,
(x * std_imagenet + mean_imagenet) * 255, i.e. the pixels of an image whose colour statistics
are ImageNet's, and then applies the backbone's own preprocessing (MobileNetV2: to [-1, 1];
MobileNetV3 and EfficientNet carry theirs inside). So a backbone sees inputs distributed as in
its pretraining whatever the data set's colours, and weights saved by one run of ours suit the
next even when its images differ. Grayscale images are repeated to 3 channels; images smaller
than 32 pixels (keras.applications' minimum) are upsampled to 32.
EfficientNet's ImageNet file holds ImageNet's std where its Normalization layer expects a
variance, so keras.applications adds a Rescaling by 1/sqrt(std) when it loads the file itself
(tensorflow/tensorflow#49930); with "imagenet" that factor goes into the layer's variance
instead (variance * std), the same arithmetic, kept by the backbone.weights.h5 a run saves.
"""

import functools
import math
import os
import re
import warnings

import keras
from absl import logging

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

IMAGENET = "imagenet"  # model.weights: keras.applications' ImageNet weights, via the Keras cache
# keras.applications' no-top ImageNet files, as its constructors (keras 3.15.1,
# keras/src/applications/{mobilenet_v2,mobilenet_v3,efficientnet}.py) hand them to
# keras.utils.get_file; tests/models/test_imagenet_weights.py checks them against the installed
# Keras. name -> (where the files are, the alphas that have one, the square sides that have
# their own (any other size gets the 224 one, as keras.applications does), the file name of
# (alpha, side), md5 by alpha (None: Keras checks none)).
_KERAS_APPLICATIONS = "https://storage.googleapis.com/tensorflow/keras-applications/"
IMAGENET_FILES = {
    "mobilenet_v2": (
        _KERAS_APPLICATIONS + "mobilenet_v2/", (0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
        (96, 128, 160, 192, 224),
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{side}_no_top.h5", None),
    "mobilenet_v3_small": (
        _KERAS_APPLICATIONS + "mobilenet_v3/", (0.75, 1.0), (224,),
        "weights_mobilenet_v3_small_224_{alpha}_float_no_top_v2.h5",
        {0.75: "ebdb5cc8e0b497cd13a7c275d475c819", 1.0: "d3e8ec802a04aa4fc771ee12a9a9b836"}),
    "mobilenet_v3_large": (
        _KERAS_APPLICATIONS + "mobilenet_v3/", (0.75, 1.0), (224,),
        "weights_mobilenet_v3_large_224_{alpha}_float_no_top_v2.h5",
        {0.75: "40af19a13ebea4e2ee0c676887f69a2e", 1.0: "07fb09a5933dd0c8eaafa16978110389"}),
    "efficientnet_b0": (
        "https://storage.googleapis.com/keras-applications/", (1.0,), (224,),
        "efficientnetb0_notop.h5", {1.0: "50bc09e76180e00e4465e1a485ddc09d"}),
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


def imagenet_alpha(application, width):
  """The width multiplier of `application` at config.model.width `width` (0: the family's
  default), refused (UsageError) where keras.applications has no ImageNet file for it."""
  _, unit_width, _ = APPLICATIONS[application]
  alpha = width / unit_width if unit_width and width else 1.0
  alphas = IMAGENET_FILES[application][1]
  if alpha not in alphas:
    # an integer width never reaches MobileNetV2's 0.35, 1.3 or 1.4: those are not offered
    reachable = [a for a in alphas if float(a * unit_width).is_integer()]
    raise UsageError(
        f"keras.applications has no ImageNet weights for {application} at "
        f"--config.model.width={width} (alpha {alpha:g}); pass --config.model.width="
        f"{' or '.join(f'{a * unit_width:g}' for a in reachable)} (alpha "
        f"{', '.join(f'{a:g}' for a in reachable)}; 0 = alpha 1), or weights of your own with "
        "--weights=PATH")
  return alpha


def keras_cache_dir():
  """The folder keras.utils.get_file caches in: $KERAS_HOME, else ~/.keras (/tmp/.keras where
  the home folder is read-only), as keras/src/backend/config.py picks it; read here at each call
  (Keras reads it once, at import) and passed to get_file, so the message of a failed download
  names the folder the download used."""
  if "KERAS_HOME" in os.environ:
    home = os.environ["KERAS_HOME"]
  else:
    base = os.path.expanduser("~")
    home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
  try:
    os.makedirs(os.path.expanduser(home), exist_ok=True)  # Keras makes it at import
  except OSError:
    pass  # read-only: get_file falls back to /tmp/.keras
  return home


def imagenet_weights_file(application, alpha, side):
  """The path of keras.applications' no-top ImageNet file for `application` at `alpha` and
  square images of `side` (0: not square), downloaded into the Keras cache unless there (and,
  where Keras keeps an md5 for it, intact). A failed download is one UsageError naming the cache
  path and the ways around it."""
  origin, _, sides, name_format, md5s = IMAGENET_FILES[application]
  file_name = name_format.format(alpha=float(alpha), side=side if side in sides else 224)
  url, home = origin + file_name, keras_cache_dir()
  # keras.utils.get_file falls back to /tmp/.keras where the cache folder is read-only
  cache = os.path.join(home if os.access(home, os.W_OK) else "/tmp/.keras", "models", file_name)
  cached = os.path.exists(cache)
  try:
    return keras.utils.get_file(file_name, url, cache_dir=home, cache_subdir="models",
                                file_hash=md5s and md5s[alpha])
  except Exception as e:  # pylint: disable=broad-except: get_file raises a bare Exception
    reason = " ".join(str(e).split()).replace(f"URL fetch failure on {url}: ", "")[:200]
    found = (f"the copy in the Keras cache, {cache}, fails its md5 check" if cached else
             f"they are not in the Keras cache, {cache}")
    raise UsageError(
        f"the ImageNet weights of {application} could not be downloaded from {url} ({reason}) "
        f"and {found}; put the file from that URL there (KERAS_HOME sets the cache folder) or "
        "pass a local weights file with --weights=PATH") from None


def _fold_input_rescaling(backbone):
  """keras.applications' EfficientNet, loading its ImageNet file, adds Rescaling(1 / sqrt(std))
  after its Normalization layer (tensorflow/tensorflow#49930: the file holds ImageNet's std as
  the variance); multiplying that variance by std gives the same (x - mean) / std in the layer.
  The other families have no Normalization layer."""
  for layer in backbone.layers:
    if isinstance(layer, keras.layers.Normalization):
      layer.adapt_variance.assign(layer.adapt_variance * keras.ops.convert_to_tensor(IMAGENET_STD))
      layer.finalize_state()  # the layer computes with a copy of its variables made here


def build_application(input_shape, num_classes, *, application, width=0, depth=0, dropout=0.0,
                      bn_momentum=0.9, activation="relu", weights=""):
  """A keras.applications ImageNet backbone (random, ImageNet or local-file weights) under our
  head.

  The backbone has no top; the stem adapts any image size and channel count (module docstring).

  width scales the backbone (alpha = width / its first-stage channels) where the family has a
  width multiplier; `depth` and `activation` do not apply (the backbone keeps its own);
  bn_momentum applies to all its batch-norm layers; `weights` is "imagenet" (keras.applications'
  file, from the Keras cache or downloaded) or a local weights file."""
  del depth, activation
  constructor, unit_width, own_preprocessing_missing = APPLICATIONS[application]
  require_input_size(input_shape, SMALLEST_SIDE, application)
  inputs = keras.Input(input_shape, name="image")
  x = _imagenet_pixels(inputs)
  if own_preprocessing_missing:  # keras.applications.mobilenet_v2.preprocess_input: to [-1, 1]
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_backbone_range")(x)
  path = weights
  if weights == IMAGENET:  # first: a failed download costs no backbone build
    rows, cols = x.shape[1:3]
    path = imagenet_weights_file(application, imagenet_alpha(application, width),
                                 rows if rows == cols else 0)
    logging.info("%s: ImageNet weights from %s", application, path)
  options = {"alpha": width / unit_width} if unit_width and width else {}
  backbone = _with_our_batchnorm(
      constructor(input_shape=tuple(x.shape[1:]), include_top=False, weights=None,
                  name="backbone", **options), bn_momentum)
  if path:
    load_backbone_weights(backbone, path, application)
  if weights == IMAGENET:
    _fold_input_rescaling(backbone)
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
