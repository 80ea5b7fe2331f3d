"""Augmentation ops, named in a config string: "flip|crop(pad=4)|mixup(alpha=0.2)".

Each op runs on whole batches with per-image randomness, either in the host tf.data pipeline
(`config.data.augment`, on float32 images in 0..255 with one-hot labels) or inside the model on
the accelerator (`config.data.augment_on_device`, as Keras preprocessing layers that are identity
at inference, so the export is unaffected). Batch-level ops are one vectorised op per batch
instead of one per image, which keeps small-image pipelines off the critical path (the speedruns
augment whole batches for the same reason). Keras 3's own layers are used where they exist.
"""

import ast
import dataclasses
import functools
from typing import Callable, Optional

import keras
import tensorflow as tf

from app.core.errors import UsageError
from app.core.registry import Registry

AUGMENTATIONS = Registry("augmentation")


# === Our batch ops (Keras has no per-image vectorised flip/pad-crop for tf.data) ===


def _uniform(shape, seed, minval=0, maxval=None, dtype=tf.float32, salt=0):
  """tf.random.uniform, or its stateless twin when a [2] `seed` is given (replayable batches)."""
  if seed is None:
    return tf.random.uniform(shape, minval, maxval, dtype=dtype)
  seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), salt)
  return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype=dtype)


def flip(images, seed=None):
  """Mirror a random half of the images left-right (one gather of mirrored column indices: ~1.7x
  faster on uint8 batches than selecting between the batch and its reverse)."""
  batch, width = tf.shape(images)[0], tf.shape(images)[2]
  mirror = _uniform([batch], seed) < 0.5
  columns = tf.range(width)
  columns = tf.where(mirror[:, None], width - 1 - columns[None, :], columns[None, :])
  return tf.gather(images, columns, axis=2, batch_dims=1)


FILLS = {"zero": "CONSTANT", "reflect": "REFLECT"}  # crop's border fills -> tf.pad modes


def crop(images, pad=4, seed=None, mirror=False, fill="zero"):
  """Random translation by up to `pad` pixels: each image is a random window of itself padded by
  `pad` (fill="zero": black borders; "reflect": mirrored edge pixels, as airbench pads, so no
  window shows an artificial edge), taken with one gather over the flattened pixels. With
  `mirror=True` a random half of the windows is also mirrored left-right (flip and crop fused:
  2.5x faster than the two ops one after the other on a 256 x 32 x 32 x 3 uint8 batch)."""
  batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
  channels = images.shape[-1]
  if fill not in FILLS:
    raise ValueError(f"fill must be one of {', '.join(FILLS)}; received {fill!r}")
  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode=FILLS[fill])
  top = _uniform([batch], seed, 0, 2 * pad + 1, dtype=tf.int32, salt=1)
  left = _uniform([batch], seed, 0, 2 * pad + 1, dtype=tf.int32, salt=2)
  columns = tf.broadcast_to(tf.range(width)[None, :], [batch, width])
  if mirror:
    flipped = _uniform([batch], seed, salt=3) < 0.5
    columns = tf.where(flipped[:, None], width - 1 - columns, columns)
  rows = top[:, None] + tf.range(height)[None, :]  # (B, H)
  columns = left[:, None] + columns  # (B, W)
  index = rows[:, :, None] * (width + 2 * pad) + columns[:, None, :]  # (B, H, W) in the padded
  pixels = tf.reshape(padded, [batch, -1, channels])
  windows = tf.gather(pixels, tf.reshape(index, [batch, -1]), axis=1, batch_dims=1)
  return tf.reshape(windows, [batch, height, width, channels])


@dataclasses.dataclass
class Op:
  """One augmentation: `host(images, labels, seed) -> (images, labels)` for tf.data, and the
  Keras layer that does the same inside a model (None: host only). Ops of ours use `seed` (a [2]
  tensor, or None) for stateless draws that a resumed run replays; Keras layers draw from their
  own seed generators."""
  name: str
  host: Callable
  layer: Optional[Callable] = None
  mixes_labels: bool = False
  any_dtype: bool = False  # runs on uint8 images too (4x less memory traffic than float32)
  pad: int = 0  # crop's padding and border fill, for fusing it with flip
  fill: str = "zero"


def _images_only(fn):
  return lambda images, labels, seed=None: (fn(images), labels)


def _seeded(fn):
  return lambda images, labels, seed=None: (fn(images, seed=seed), labels)


def _keras_op(name, layer):
  """A Keras preprocessing layer as an op: the same layer object serves host and device."""
  return Op(name, _images_only(lambda images: layer(images, training=True)), lambda: layer)


@AUGMENTATIONS.register("flip")
def _flip():
  return Op("flip", _seeded(flip), lambda: keras.layers.RandomFlip("horizontal"), any_dtype=True)


@AUGMENTATIONS.register("crop")
def _crop(pad=4, fill="zero"):
  """Translation by up to `pad` pixels with zero or reflected fill (host only; on device use
  translate)."""
  return Op("crop", _seeded(lambda images, seed: crop(images, pad=pad, seed=seed, fill=fill)),
            any_dtype=True, pad=pad, fill=fill)


@AUGMENTATIONS.register("rotate")
def _rotate(factor=0.05):
  """Rotation by up to factor x 360 degrees."""
  return _keras_op("rotate", keras.layers.RandomRotation(factor, fill_mode="constant"))


@AUGMENTATIONS.register("zoom")
def _zoom(factor=0.1):
  """Zoom in or out by up to `factor` of the size."""
  return _keras_op("zoom", keras.layers.RandomZoom(factor, fill_mode="constant"))


@AUGMENTATIONS.register("translate")
def _translate(factor=0.1):
  """Shift by up to `factor` of the height and width."""
  return _keras_op("translate", keras.layers.RandomTranslation(factor, factor,
                                                               fill_mode="constant"))


@AUGMENTATIONS.register("color_jitter")
def _color_jitter(brightness=0.2, contrast=0.2, saturation=0.0, hue=0.0):
  """Brightness, contrast, saturation and hue jitter (saturation and hue need RGB)."""
  return _keras_op("color_jitter", keras.layers.RandomColorJitter(
      value_range=(0, 255), brightness_factor=brightness or None,
      contrast_factor=contrast or None, saturation_factor=saturation or None,
      hue_factor=hue or None))


@AUGMENTATIONS.register("erase")
def _erase(factor=0.5, scale=(0.02, 0.2)):
  """Random erasing / cutout (Zhong et al. 2017): a random box of `scale` of the area, on a
  `factor` fraction of the images, filled with noise."""
  return _keras_op("erase", keras.layers.RandomErasing(factor=factor, scale=scale,
                                                       value_range=(0, 255)))


@AUGMENTATIONS.register("randaugment")
def _randaugment(num_ops=2, factor=0.5):
  """RandAugment (Cubuk et al. 2020): `num_ops` random ops per image at magnitude `factor`."""
  return _keras_op("randaugment", keras.layers.RandAugment(value_range=(0, 255), num_ops=num_ops,
                                                           factor=factor))


def _mixing_op(name, layer):
  def host(images, labels, seed=None):
    del seed  # Keras's layer draws from its own seed generator
    mixed = layer({"images": images, "labels": labels}, training=True)
    return mixed["images"], mixed["labels"]

  return Op(name, host, None, mixes_labels=True)


@AUGMENTATIONS.register("mixup")
def _mixup(alpha=0.2):
  """MixUp (Zhang et al. 2018): convex blends of image pairs and of their labels."""
  return _mixing_op("mixup", keras.layers.MixUp(alpha=alpha))


@AUGMENTATIONS.register("cutmix")
def _cutmix(factor=1.0):
  """CutMix (Yun et al. 2019): a box of one image pasted into another; labels by area."""
  return _mixing_op("cutmix", keras.layers.CutMix(factor=factor))


class Augmenter:
  """The ops of one config string, applied in order."""

  def __init__(self, ops):
    self.ops = ops

  def __call__(self, images, labels=None, seed=None):
    """(images, labels) -> augmented float32 (images, labels); images only when labels is None.
    uint8 images stay uint8 through the leading ops that take any dtype (flip, crop) and become
    float32 before the first that needs it. A [2] `seed` makes our ops' draws a function of it
    (each op folds in its position)."""
    for position, op in enumerate(self.ops):
      if not op.any_dtype:
        images = tf.cast(images, tf.float32)
      op_seed = None if seed is None else tf.random.experimental.stateless_fold_in(
          tf.cast(seed, tf.int64), position)
      images, new_labels = op.host(images, labels, op_seed)
      labels = labels if labels is None else new_labels
    images = tf.cast(images, tf.float32)
    return images if labels is None else (images, labels)

  def layers(self):
    """The Keras layers that apply these ops inside a model (device-side augmentation)."""
    return [op.layer() for op in self.ops]


def _parse_term(term):
  call = ast.parse(term, mode="eval").body
  if isinstance(call, ast.Name):
    return call.id, {}
  if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not call.args:
    return call.func.id, {k.arg: ast.literal_eval(k.value) for k in call.keywords}
  raise ValueError(term)


def _checked_ops(spec, on_device):
  """'flip|crop(pad=4)' -> ([[name, {keyword: value}], ...], [Op, ...]), each op built once:
  every name is an op, every keyword one it takes, and with `on_device` every op has a layer."""
  terms, ops = [], []
  for term in filter(None, (t.strip() for t in spec.split("|"))):
    try:
      name, kwargs = _parse_term(term)
    except (SyntaxError, ValueError):
      raise UsageError(
          f"cannot read augmentation {term!r}; write ops as name or name(key=value), joined by "
          "'|', e.g. 'flip|crop(pad=4)'") from None
    factory = AUGMENTATIONS.get(name)
    try:
      op = factory(**kwargs)
      if name in ("flip", "crop"):  # our tf ops: reject wrong keywords now, not mid-epoch
        op.host(tf.zeros([1, 8, 8, 3]), None)
    except (TypeError, ValueError) as e:
      raise UsageError(f"augmentation {term!r}: {e}") from None
    if on_device and op.layer is None:
      why = "mixes labels" if op.mixes_labels else "has no Keras layer (on device: translate)"
      raise UsageError(f"augmentation {name!r} {why}, so it runs in the host pipeline; move it "
                       "from --config.data.augment_on_device to --config.data.augment")
    terms.append([name, kwargs])
    ops.append(op)
  return terms, ops


def parse_terms(spec, on_device=False):
  """'flip|crop(pad=4)' -> [[name, {keyword: value}], ...], checked as parse() checks them.
  app.config.resolve() keeps the result in config.derived; build() makes the Augmenter from it."""
  return _checked_ops(spec, on_device)[0]


def build(terms, on_device=False):
  """parse_terms()'s checked terms -> an Augmenter (new ops: Keras layers are not shared between
  the Augmenters, nor between the models, built from the same terms)."""
  ops = [AUGMENTATIONS.get(name)(**kwargs) for name, kwargs in terms]
  return Augmenter(ops if on_device else _fuse_flip_crop(ops))


def parse(spec, on_device=False):
  """'flip|crop(pad=4)' -> an Augmenter. `on_device` refuses ops without a Keras layer."""
  ops = _checked_ops(spec, on_device)[1]
  return Augmenter(ops if on_device else _fuse_flip_crop(ops))


def _fuse_flip_crop(ops):
  """Adjacent flip and crop (either order) -> one op doing both in a single gather; the images
  it gives are distributed as the two ops' are (a mirrored window is a window of the mirror)."""
  fused, position = [], 0
  while position < len(ops):
    pair = {op.name for op in ops[position:position + 2]}
    if pair == {"flip", "crop"}:
      cropping = next(op for op in ops[position:position + 2] if op.name == "crop")
      fused.append(Op("flip+crop", _seeded(functools.partial(
          crop, pad=cropping.pad, mirror=True, fill=cropping.fill)), any_dtype=True))
      position += 2
    else:
      fused.append(ops[position])
      position += 1
  return fused
