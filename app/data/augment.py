"""Augmentation ops, named in a config string: "flip|crop(pad=4)|mixup(alpha=0.2)".

Each op runs on whole batches with per-image randomness, either in the host tf.data pipeline
(`config.data.augment`, on float32 images in 0..255 with one-hot labels) or inside the model on
the accelerator (`config.data.augment_on_device`, as Keras preprocessing layers that are identity
at inference, so the export is unaffected). Batch-level ops are one vectorised op per batch
instead of one per image, which keeps small-image pipelines off the critical path (the speedruns
augment whole batches for the same reason). Keras 3's own layers are used where they exist.
"""

import ast
import contextlib
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


def flip(images, seed=None, mirror=True):
  """Mirror a random half of the images left-right (one gather of mirrored column indices: ~1.7x
  faster on uint8 batches than selecting between the batch and its reverse). `mirror`: True for
  a random half, or a [batch] bool tensor that says which (alternating_mirror)."""
  batch, width = tf.shape(images)[0], tf.shape(images)[2]
  if isinstance(mirror, bool):
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
  2.5x faster than the two ops one after the other on a 256 x 32 x 32 x 3 uint8 batch); a
  [batch] bool tensor `mirror` says which windows instead (alternating_mirror)."""
  batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
  channels = images.shape[-1]
  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode=FILLS[fill])
  top = _uniform([batch], seed, 0, 2 * pad + 1, dtype=tf.int32, salt=1)
  left = _uniform([batch], seed, 0, 2 * pad + 1, dtype=tf.int32, salt=2)
  columns = tf.broadcast_to(tf.range(width)[None, :], [batch, width])
  if isinstance(mirror, bool):
    mirror = _uniform([batch], seed, salt=3) < 0.5 if mirror else None
  if mirror is not None:
    columns = tf.where(mirror[:, None], width - 1 - columns, columns)
  rows = top[:, None] + tf.range(height)[None, :]  # (B, H)
  columns = left[:, None] + columns  # (B, W)
  index = rows[:, :, None] * (width + 2 * pad) + columns[:, None, :]  # (B, H, W) in the padded
  pixels = tf.reshape(padded, [batch, -1, channels])
  windows = tf.gather(pixels, tf.reshape(index, [batch, -1]), axis=1, batch_dims=1)
  return tf.reshape(windows, [batch, height, width, channels])


def alternating_mirror(example_ids, epoch, seed):
  """Which images alternating flip mirrors (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds",
  airbench's derandomised flip): a fixed random half of the training images, drawn from the run's
  `seed` and each image's index in the training split (`example_ids`, int64 [batch]), is mirrored
  in the even epochs and the other half in the odd ones, so every two epochs in a row show each
  image both ways where random flips show a quarter of them one way twice. A function of
  (seed, index, epoch) alone: a resumed epoch replays it."""
  low32 = lambda x: tf.bitwise.bitwise_and(x, 0xFFFFFFFF)
  mixed = low32(tf.cast(example_ids, tf.int64) + low32(tf.cast(seed, tf.int64) * 0x9E3779B9))
  for _ in range(2):  # a 32-bit integer hash's rounds, in int64 (each product < 2^60)
    mixed = low32(tf.bitwise.bitwise_xor(mixed, tf.bitwise.right_shift(mixed, 16)) * 0x45D9F3B)
  mixed = tf.bitwise.bitwise_xor(mixed, tf.bitwise.right_shift(mixed, 16))
  first_half = tf.equal(tf.bitwise.bitwise_and(mixed, 1), 1)
  return tf.not_equal(first_half, tf.equal(tf.math.floormod(tf.cast(epoch, tf.int64), 2), 1))


@dataclasses.dataclass
class Op:
  """One augmentation: `host(images, labels, seed, identity) -> (images, labels)` for tf.data, and
  the Keras layer that does the same inside a model (None: host only). Ops of ours use `seed` (a
  [2] tensor, or None) for stateless draws that a resumed run replays; Keras layers draw from
  their own seed generators. `identity` (Augmenter.__call__) is read by alternating flip only."""
  name: str
  host: Callable
  layer: Optional[Callable] = None
  mixes_labels: bool = False
  any_dtype: bool = False  # runs on uint8 images too (4x less memory traffic than float32)
  alternate: bool = False  # flip(alternate=True): mirrors by alternating_mirror(*identity)
  pad: int = 0  # crop's padding and border fill, for fusing it with flip and check_image_shape
  fill: str = "zero"
  needs_rgb: bool = False  # color_jitter's saturation and hue: no meaning on grayscale images


def _images_only(fn):
  return lambda images, labels, seed=None, identity=None: (fn(images), labels)


def _seeded(fn):
  return lambda images, labels, seed=None, identity=None: (fn(images, seed=seed), labels)


def _keras_op(name, layer):
  """A Keras preprocessing layer as an op: the same layer object serves host and device."""
  return Op(name, _images_only(lambda images: layer(images, training=True)), lambda: layer)


def _mirror_of(identity):
  """alternating_mirror's mask for a batch's `identity` (example ids, epoch, run seed), or True
  (a random half, as plain flip) where the batch has none (previews, evaluation-side calls)."""
  return True if identity is None else alternating_mirror(*identity)


@AUGMENTATIONS.register("flip")
def _flip(alternate=False):
  """Left-right mirroring of a random half of the images; alternate=True: alternating flip (host
  only: it needs each image's index and the epoch, which the training pipeline gives)."""
  if not isinstance(alternate, bool):
    raise ValueError(f"alternate must be True or False; received {alternate!r}")
  if alternate:
    return Op("flip", lambda images, labels, seed=None, identity=None: (
        flip(images, seed, mirror=_mirror_of(identity)), labels), any_dtype=True, alternate=True)
  return Op("flip", _seeded(flip), lambda: keras.layers.RandomFlip("horizontal"), any_dtype=True)


@AUGMENTATIONS.register("crop")
def _crop(pad=4, fill="zero"):
  """Translation by up to `pad` pixels with zero or reflected fill (host only; on device use
  translate). Reflect needs pad < the images' side: Augmenter.check_image_shape."""
  if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
    raise ValueError(f"pad must be a whole number of pixels >= 0; received {pad!r}")
  if fill not in FILLS:
    raise ValueError(f"fill must be one of {', '.join(FILLS)}; received {fill!r}")
  return Op("crop", _seeded(lambda images, seed: crop(images, pad=pad, seed=seed, fill=fill)),
            any_dtype=True, pad=pad, fill=fill)


def resized_crop(images, scale=(0.35, 1.0), ratio=(0.75, 4 / 3), seed=None):
  """Inception-style random-resized crop (Szegedy et al. 2015; torchvision's RandomResizedCrop):
  each image is a random box of `scale` of its area and aspect ratio in `ratio` (log-uniform),
  resized back to the image's size, all boxes in one tf.image.crop_and_resize call. The box is
  shrunk to fit inside the image when the drawn shape does not (no retry loop: one vectorised
  draw per batch)."""
  batch = tf.shape(images)[0]
  height, width = tf.shape(images)[1], tf.shape(images)[2]
  area = _uniform([batch], seed, scale[0], scale[1], salt=4)
  log_ratio = _uniform([batch], seed, tf.math.log(ratio[0]), tf.math.log(ratio[1]), salt=5)
  aspect = tf.exp(log_ratio) * tf.cast(height, tf.float32) / tf.cast(width, tf.float32)
  box_height = tf.minimum(tf.sqrt(area / aspect), 1.0)  # fractions of the image's sides
  box_width = tf.minimum(tf.sqrt(area * aspect), 1.0)
  top = _uniform([batch], seed, salt=6) * (1.0 - box_height)
  left = _uniform([batch], seed, salt=7) * (1.0 - box_width)
  boxes = tf.stack([top, left, top + box_height, left + box_width], axis=1)
  cropped = tf.image.crop_and_resize(tf.cast(images, tf.float32), boxes, tf.range(batch),
                                     tf.stack([height, width]))
  return tf.cast(tf.round(tf.clip_by_value(cropped, 0, 255)), images.dtype) \
      if images.dtype.is_integer else cropped


@AUGMENTATIONS.register("resized_crop")
def _resized_crop(scale=0.35, ratio=0.75):
  """A random box of [scale, 1] of the area, aspect ratio in [ratio, 1 / ratio], resized back:
  the photo recipes' main augmentation (host only). data.resize=crop keeps the aspect ratio for
  the stored image, so the crop zooms into it and evaluation sees its centre."""
  if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
    raise ValueError(f"scale must be in (0, 1] (the smallest share of the area); received {scale!r}")
  if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
    raise ValueError(f"ratio must be in (0, 1] (aspect ratios from it to 1 / it); received {ratio!r}")
  return Op("resized_crop", _seeded(lambda images, seed: resized_crop(
      images, (float(scale), 1.0), (float(ratio), 1.0 / float(ratio)), seed=seed)),
            any_dtype=True)


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


def _jitter_factor(name, value, most):
  if not 0 <= value <= most:
    raise ValueError(f"{name} must be in [0, {most}] (its largest change; 0 = off); received "
                     f"{value}")
  return value


@AUGMENTATIONS.register("color_jitter")
def _color_jitter(brightness=0.2, contrast=0.2, saturation=0.0, hue=0.0):
  """Brightness, contrast, saturation and hue jitter, in that order, each value the largest
  change (0 = off), drawn per image: brightness shifts every pixel by up to that fraction of the
  0..255 range (0.2: +-51 levels); contrast scales each channel's spread around its mean, and
  saturation the HSV saturation, by a factor in [1 - value, 1 + value]; hue turns the hue circle
  by up to that fraction of a turn (at most 0.5). Saturation and hue need RGB. Contrast,
  saturation and hue mean what torchvision's ColorJitter means; brightness there scales."""
  brightness = _jitter_factor("brightness", brightness, 1)
  contrast = _jitter_factor("contrast", contrast, 1)
  saturation = _jitter_factor("saturation", saturation, 1)
  hue = _jitter_factor("hue", hue, 0.5)
  # Keras's factors mean other things (keras/src/layers/preprocessing/image_preprocessing/,
  # Keras 3.15): RandomContrast's single float c draws from [1, 1 + c] (never lowers contrast),
  # so it gets (c, c) = [1 - c, 1 + c]; RandomSaturation multiplies by f / (1 - f) for f drawn
  # from its factor (0.5 = unchanged; a single float s draws from [-s, s]: grey, issue 20), so
  # [1 - s, 1 + s] is f in [(1 - s) / (2 - s), (1 + s) / (2 + s)]; RandomHue turns by half its
  # factor, so it gets 2 x hue. RandomBrightness's factor is ours. The four layers in a row, not
  # RandomColorJitter: RandomSaturation clips the saturation to its value_range, so it needs
  # (0, 1) (a saturation of 1.2 x 1 gave pixels of -27) where the others need (0, 255).
  layers = [
      brightness and keras.layers.RandomBrightness(brightness, value_range=(0, 255)),
      contrast and keras.layers.RandomContrast((contrast, contrast), value_range=(0, 255)),
      saturation and keras.layers.RandomSaturation(
          ((1 - saturation) / (2 - saturation), (1 + saturation) / (2 + saturation)),
          value_range=(0, 1)),
      hue and keras.layers.RandomHue(2 * hue, value_range=(0, 255))]
  op = _keras_op("color_jitter", keras.Sequential(
      [layer for layer in layers if layer] or [keras.layers.Identity()]))
  op.needs_rgb = bool(saturation or hue)
  return op


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
  def host(images, labels, seed=None, identity=None):
    del seed, identity  # Keras's layer draws from its own seed generator
    mixed = layer({"images": images, "labels": labels}, training=True)
    return mixed["images"], mixed["labels"]

  return Op(name, host, None, mixes_labels=True)


@AUGMENTATIONS.register("mixup")
def _mixup(alpha=0.2):
  """MixUp (Zhang et al. 2018): convex blends of image pairs and of their labels, the weights
  drawn from Beta(alpha, alpha)."""
  if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
    # Keras's MixUp takes any alpha, and Beta(alpha, alpha) of alpha <= 0 is NaN: a NaN loss
    raise ValueError(f"alpha must be a number > 0 (e.g. 0.2); received {alpha!r}")
  return _mixing_op("mixup", keras.layers.MixUp(alpha=alpha))


@AUGMENTATIONS.register("cutmix")
def _cutmix(factor=1.0):
  """CutMix (Yun et al. 2019): a box of one image pasted into another; labels by area."""
  return _mixing_op("cutmix", keras.layers.CutMix(factor=factor))


@contextlib.contextmanager
def _float32_policy():
  """Keras layers built inside compute in float32 whatever the global policy (a run sets
  mixed_bfloat16 before it builds its pipeline and model). Built under mixed_bfloat16, MixUp and
  CutMix failed ("Input 'y' of 'Mul' Op has type bfloat16 that does not match type float32": they
  mix float32 labels with bfloat16 weights) and every other layer rounded 0..255 pixels to
  bfloat16's 8 significant bits (by up to 0.5). Scoping the global policy, not passing dtype=,
  reaches the layers that RandAugment builds inside itself. In a model
  the layers stay float32 too: they see the raw pixels before the normalising layer, as the host
  ops do, and cost little beside the convolutions. Keras keeps the policy per thread."""
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("float32")
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def _make_op(name, kwargs):
  """The registered op `name` built with `kwargs`, its Keras layers computing in float32."""
  with _float32_policy():
    return AUGMENTATIONS.get(name)(**kwargs)


class Augmenter:
  """The ops of one config string, applied in order."""

  def __init__(self, ops):
    self.ops = ops

  def __call__(self, images, labels=None, seed=None, identity=None):
    """(images, labels) -> augmented float32 (images, labels); images only when labels is None.
    uint8 images stay uint8 through the leading ops that take any dtype (flip, crop) and become
    float32 before the first that needs it. A [2] `seed` makes our ops' draws a function of it
    (each op folds in its position). `identity`: (example ids [batch], epoch, run seed) of a
    training batch, for flip(alternate=True); without it that op flips a random half."""
    for position, op in enumerate(self.ops):
      if not op.any_dtype:
        images = tf.cast(images, tf.float32)
      op_seed = None if seed is None else tf.random.experimental.stateless_fold_in(
          tf.cast(seed, tf.int64), position)
      images, new_labels = op.host(images, labels, op_seed, identity)
      labels = labels if labels is None else new_labels
    images = tf.cast(images, tf.float32)
    return images if labels is None else (images, labels)

  def layers(self):
    """The Keras layers that apply these ops inside a model (device-side augmentation), computing
    in float32 as every op does (_float32_policy: a factory such as flip's makes its layer here)."""
    with _float32_policy():
      return [op.layer() for op in self.ops]

  def check_image_shape(self, shape):
    """Raises UsageError when an op cannot run on (height, width, channels) images (None: not
    known yet): crop's reflect fill mirrors the image inside its border, so it needs
    pad < the shorter side (tf.pad's MirrorPad fails in the first training step otherwise; zero
    fill takes any pad); color_jitter's saturation and hue need RGB (Keras's RandomSaturation
    and RandomHue fail on one channel with a traceback)."""
    height, width, channels = shape
    side = min(height, width) if height and width else None
    for op in self.ops:
      if op.needs_rgb and channels == 1:
        raise UsageError(
            f"augmentation {op.name} with saturation or hue needs RGB images, and these have one "
            "channel; drop saturation and hue from it, or pass --config.data.channels=3")
      if op.fill == "reflect" and side is not None and op.pad >= side:
        raise UsageError(
            f"augmentation crop(pad={op.pad}, fill='reflect') needs pad < the images' shorter "
            f"side, {side} pixels ({height}x{width}); pass pad <= {side - 1}, or fill='zero'")


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
    try:  # every factory checks its keywords, so a wrong one fails now, not mid-epoch
      op = _make_op(name, kwargs)  # an unknown name: the registry's UsageError, passed on
    except (TypeError, ValueError) as e:
      raise UsageError(f"augmentation {term!r}: {e}") from None
    if on_device and op.layer is None:
      why = ("mixes labels" if op.mixes_labels else
             "needs each image's index and the epoch" if op.alternate else
             "has no Keras layer (on device: translate)")
      raise UsageError(f"augmentation {name!r} {why}, so it runs in the host pipeline; move it "
                       "from --config.data.augment_on_device to --config.data.augment")
    terms.append([name, kwargs])
    ops.append(op)
  return terms, ops


def parse_terms(spec, on_device=False, image_size=0, channels=0):
  """'flip|crop(pad=4)' -> [[name, {keyword: value}], ...], checked as parse() checks them and,
  given the images' side `image_size` (data.image_size; 0 = not known yet: the pipeline checks),
  by Augmenter.check_image_shape (`channels`: data.channels, 0 = as stored, not known yet).
  app.config.resolve() keeps the result in config.derived; build() makes the Augmenter from it."""
  terms, ops = _checked_ops(spec, on_device)
  Augmenter(ops).check_image_shape((image_size or None, image_size or None, channels or None))
  return terms


def build(terms, on_device=False):
  """parse_terms()'s checked terms -> an Augmenter (new ops: Keras layers are not shared between
  the Augmenters, nor between the models, built from the same terms)."""
  ops = [_make_op(name, kwargs) for name, kwargs in terms]
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
      flipping = next(op for op in ops[position:position + 2] if op.name == "flip")
      pad, fill = cropping.pad, cropping.fill
      if flipping.alternate:
        host = lambda images, labels, seed=None, identity=None, pad=pad, fill=fill: (crop(
            images, pad=pad, seed=seed, fill=fill, mirror=_mirror_of(identity)), labels)
      else:
        host = _seeded(functools.partial(crop, pad=pad, mirror=True, fill=fill))
      fused.append(Op("flip+crop", host, any_dtype=True, alternate=flipping.alternate, pad=pad,
                      fill=fill))
      position += 2
    else:
      fused.append(ops[position])
      position += 1
  return fused
