"""Encoded image bytes -> uint8 pixels of the training shape: the one decode and resize that the
input pipeline, the TFDS source, the data check and the serving graph share, so a served image
goes through the code a training image went through.

Resize policies (data.resize) for an image whose size differs from the training size:
  "resize"  stretch to (height, width), bilinear
  "crop"    scale the shorter side to fit, then take the centre
  "pad"     scale the longer side to fit, then pad with zeros (letterbox)
Resized pixels are clipped to 0..255 and rounded; an image of the training size passes untouched.
Evaluation and serving may keep less than the whole centre (data.eval_crop, evaluation_policy):
  "crop(F)" scale the shorter side to (training side) / F, then take the centre: the share F of
            it (timm's crop_pct, ImageNet's 0.875), so that objects appear at about the size a
            random-resized crop showed them in training; an image of the training size is
            cropped and scaled too

Also here: image files' sizes read from their headers, no pixels decoded (stored_sizes: what a
folder's size as stored is chosen from), and the memory bound of a batch of images of a size
(require_batch_fits), checked before anything decodes at that size.
"""

import contextlib

import tensorflow as tf

from app.core import memory


def decode(encoded, channels=0):
  """Encoded JPEG/PNG/BMP/GIF bytes -> uint8 (H, W, channels), the first frame of a GIF;
  channels=0 keeps the file's own. Raises tf.errors.InvalidArgumentError on undecodable bytes."""
  # Decoded with the file's own channels, then converted here: TensorFlow's decoders do not all
  # convert (decode_bmp takes channels 0, 3 or 4, a GIF is always RGB: channels=1 failed on
  # both), and one conversion gives every format the same pixels.
  image = tf.io.decode_image(encoded, expand_animations=False)
  return to_channels(image, channels) if channels else image


def to_channels(image, channels):
  """A uint8 (..., C) image of 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels ->
  `channels` (1 or 3), alpha dropped: RGB -> grayscale, grayscale -> RGB. C may be unknown until
  run time (a file decoded with its own channels)."""
  if image.shape[-1] is None:
    known = lambda c: to_channels(tf.ensure_shape(image, image.shape[:-1] + [c]), channels)
    return tf.switch_case(tf.shape(image)[-1] - 1, [lambda c=c: known(c) for c in (1, 2, 3, 4)])
  if image.shape[-1] in (2, 4):
    image = image[..., :-1]  # alpha dropped
  if image.shape[-1] == channels:
    return image
  if channels == 1:
    return tf.image.rgb_to_grayscale(image)
  return tf.image.grayscale_to_rgb(image)


def evaluation_policy(resize, eval_crop=1.0):
  """The policy evaluation and serving resize by: `resize` (data.resize), or "crop(F)" for
  data.resize="crop" and data.eval_crop F < 1 (the module docstring)."""
  return f"crop({eval_crop:g})" if resize == "crop" and eval_crop < 1 else resize


def parse_policy(policy):
  """(name, share of the centre kept): "crop(0.9)" -> ("crop", 0.9), "pad" -> ("pad", 1.0)."""
  if policy.startswith("crop(") and policy.endswith(")"):
    return "crop", float(policy[len("crop("):-1])
  return policy, 1.0


def _scale(images, height, width, policy):
  """float32 [batch,] (height, width, C) by `policy` (the module docstring), not yet rounded.

  Scaled sizes and offsets are worked out in integers (what tf.image.resize_with_pad and the
  float ceil used before meant): in float32, 37 / (37 / 12) floors to 11 or 12 depending on the
  graph it runs in (the training pipeline and a SavedModel disagreed on pad's pixels for
  21 x 37 -> 12 x 12), and crop scaled 5 x 25 to 13 x 61, not 12 x 60, for 12 x 12."""
  h, w = tf.unstack(tf.shape(images)[-3:-1])
  policy, kept = parse_policy(policy)
  if policy == "pad":  # fit inside: the binding side at its target, the other floored (>= 1)
    size = [tf.clip_by_value(h * width // w, 1, height),
            tf.clip_by_value(w * height // h, 1, width)]
    top = tf.maximum(0, (height * w - h * width) // (2 * w))
    left = tf.maximum(0, (width * h - w * height) // (2 * h))
    return tf.image.pad_to_bounding_box(tf.image.resize(images, size), top, left, height, width)
  if policy == "crop":  # cover: the binding side at its target, the other rounded up
    # (kept < 1: the target grown to height / kept, width / kept, its centre then taken)
    cover_h, cover_w = int(round(height / kept)), int(round(width / kept))
    size = [tf.maximum(cover_h, -(-h * cover_w // w)), tf.maximum(cover_w, -(-w * cover_h // h))]
    return tf.image.resize_with_crop_or_pad(tf.image.resize(images, size), height, width)
  return tf.image.resize(images, [height, width])


def resize(images, height, width, policy="resize"):
  """[batch,] (h, w, C) images, uint8 or float32 0..255 -> [batch,] (height, width, C) of the same
  dtype, by `policy`, clipped to 0..255 and rounded; images already (height, width) pass
  untouched (so they serve exactly what the model computes), unless the policy keeps a share of
  the centre ("crop(F)")."""
  size = tf.shape(images)[-3:-1]
  same = tf.logical_and(size[0] == height, size[1] == width)
  if parse_policy(policy)[1] < 1:  # a share of the centre: every image is cropped and scaled
    same = tf.constant(False)
  resized = lambda: tf.cast(tf.round(tf.clip_by_value(
      _scale(images, height, width, policy), 0, 255)), images.dtype)
  shape = images.shape
  images = tf.cond(same, lambda: images, resized)
  images.set_shape(shape[:-3].concatenate([height, width]).concatenate(shape[-1:]))
  return images


def fit(image, image_shape, policy="resize"):
  """A decoded uint8 (H, W, C) image of any size and 1, 3 or 4 channels -> uint8 `image_shape`
  (channels converted, resized by `policy` only when its size differs)."""
  height, width, channels = image_shape
  image = to_channels(image, channels)
  image.set_shape([None, None, channels])
  return resize(image, height, width, policy)


def decode_and_fit(encoded, image_shape, policy="resize"):
  """Encoded image bytes -> uint8 `image_shape` (`decode`, then `fit`)."""
  return fit(decode(encoded, image_shape[-1]), image_shape, policy)


def fit_arrays(images, image_shape, policy="resize", batch_size=4096):
  """uint8 numpy (N, H, W, C) images (an IDX file's) -> uint8 numpy (N, *image_shape) by `fit`,
  in batches; returned unchanged when they already have that shape."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  if images.shape[1:] == tuple(image_shape) and parse_policy(policy)[1] == 1:
    return images
  height, width, channels = image_shape
  memory.require_fits(len(images) * height * width * channels,
                      f"{len(images)} images resized to {height}x{width}x{channels} in memory",
                      "lower --config.data.image_size")
  out = np.empty((len(images), *image_shape), np.uint8)
  for start in range(0, len(images), batch_size):
    batch = to_channels(tf.constant(images[start:start + batch_size]), channels)
    out[start:start + batch_size] = resize(batch, height, width, policy).numpy()
  return out


def require_batch_fits(image_shape, batch_size, as_stored=False):
  """UsageError unless one batch of `batch_size` float32 images of `image_shape` fits in the
  machine's memory (app/core/memory.py), the least a training step holds; `as_stored`: the shape
  is the images' own (no data.image_size), so the fix is to set one."""
  height, width, channels = image_shape
  fix = ("pass --config.data.image_size=SIDE to resize them" if as_stored else
         "lower --config.data.image_size") + " (or lower --batch_size)"
  memory.require_fits(batch_size * height * width * channels * 4,
                      f"one batch of {batch_size} float32 images of {height}x{width}x{channels}"
                      + (" (their size as stored)" if as_stored else ""), fix)


@contextlib.contextmanager
def _any_pixel_count():
  """Pillow refuses to open images of more than 2 x Image.MAX_IMAGE_PIXELS pixels (its
  decompression-bomb guard); a header is read here, never the pixels, and a huge image must be
  measured to be refused by size (require_batch_fits), so the guard is off inside."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
  try:
    yield Image
  finally:
    Image.MAX_IMAGE_PIXELS = previous


def stored_sizes(paths):
  """[(height, width) or None] of image files, read from their headers without decoding any
  pixels (Pillow opens lazily): what a folder's size as stored is chosen from. None: the file
  cannot be opened as an image (the data check, app/data/checks.py, names such files)."""
  sizes = []
  with _any_pixel_count() as image_module:
    for path in paths:
      try:
        with image_module.open(path) as image:
          width, height = image.size
        sizes.append((int(height), int(width)))
      except Exception:  # pylint: disable=broad-except  # anything: the file is not an image
        sizes.append(None)
  return sizes
