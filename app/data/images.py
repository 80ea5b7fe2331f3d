"""Encoded image bytes -> uint8 pixels of the training shape: the one decode and resize that the
input pipeline, the TFDS source, the data check and the serving graph share, so a served image
goes through the code a training image went through.

Resize policies (data.resize) for an image whose size differs from the training size:
  "resize"  stretch to (height, width), bilinear
  "crop"    scale the shorter side to fit, then take the centre
  "pad"     scale the longer side to fit, then pad with zeros (letterbox)
Resized pixels are clipped to 0..255 and rounded; an image of the training size passes untouched.
"""

import tensorflow as tf


def decode(encoded, channels=0):
  """Encoded JPEG/PNG/BMP/GIF bytes -> uint8 (H, W, channels), the first frame of a GIF;
  channels=0 keeps the file's own. Raises tf.errors.InvalidArgumentError on undecodable bytes."""
  return tf.io.decode_image(encoded, channels=channels, expand_animations=False)


def to_channels(image, channels):
  """A uint8 (..., C) image of 1, 3 or 4 channels -> `channels` (1 or 3): RGB(A) -> grayscale,
  grayscale -> RGB, RGBA -> RGB (alpha dropped)."""
  if image.shape[-1] != channels:
    if channels == 1:
      image = tf.image.rgb_to_grayscale(image[..., :3])
    elif image.shape[-1] == 1:
      image = tf.image.grayscale_to_rgb(image)
    else:
      image = image[..., :3]  # RGBA -> RGB
  return image


def _scale(images, height, width, policy):
  """float32 [batch,] (height, width, C) by `policy` (the module docstring), not yet rounded."""
  if policy == "pad":
    return tf.image.resize_with_pad(tf.cast(images, tf.float32), height, width)
  if policy == "crop":
    shape = tf.cast(tf.shape(images)[-3:-1], tf.float32)
    scale = tf.reduce_max([height / shape[0], width / shape[1]])
    size = tf.cast(tf.math.ceil(shape * scale), tf.int32)
    return tf.image.resize_with_crop_or_pad(tf.image.resize(images, size), height, width)
  return tf.image.resize(images, [height, width])


def resize(images, height, width, policy="resize"):
  """[batch,] (h, w, C) images, uint8 or float32 0..255 -> [batch,] (height, width, C) of the same
  dtype, by `policy`, clipped to 0..255 and rounded; images already (height, width) pass
  untouched (so they serve exactly what the model computes)."""
  size = tf.shape(images)[-3:-1]
  same = tf.logical_and(size[0] == height, size[1] == width)
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
