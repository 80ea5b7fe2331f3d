"""Batch-level augmentation ops for the host pipeline, named in a config string.

`config.data.augment = "flip|crop(pad=4)"` builds [flip, crop(pad=4)], applied in order to each
uint8 batch (B, H, W, C). Ops work on whole batches with per-image randomness: one vectorised op
per batch instead of one per image, which is what keeps small-image pipelines off the critical
path (the speedruns augment whole batches for the same reason).
"""

import ast

import tensorflow as tf

from app.errors import UsageError
from app.registry import Registry

AUGMENTATIONS = Registry("augmentation")


@AUGMENTATIONS.register("flip")
def flip(images):
  """Mirror a random half of the images left-right."""
  mirror = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
  return tf.where(mirror, tf.reverse(images, axis=[2]), images)


@AUGMENTATIONS.register("crop")
def crop(images, pad=4):
  """Random translation by up to `pad` pixels: zero-pad each side, take a random crop per image."""
  batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
  padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
  top = tf.random.uniform([batch], 0, 2 * pad + 1, dtype=tf.int32)
  left = tf.random.uniform([batch], 0, 2 * pad + 1, dtype=tf.int32)
  rows = top[:, None] + tf.range(height)[None, :]  # (B, H)
  cols = left[:, None] + tf.range(width)[None, :]  # (B, W)
  images = tf.gather(padded, rows, axis=1, batch_dims=1)  # (B, H, W + 2 pad, C)
  return tf.gather(images, cols, axis=2, batch_dims=1)  # (B, H, W, C)


def parse(spec):
  """'flip|crop(pad=4)' -> a function applying those ops in order to a batch of images."""
  ops = []
  for term in filter(None, (t.strip() for t in spec.split("|"))):
    try:
      call = ast.parse(term, mode="eval").body
      if isinstance(call, ast.Name):
        name, kwargs = call.id, {}
      elif isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not call.args:
        name = call.func.id
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
      else:
        raise ValueError
    except (SyntaxError, ValueError):
      raise UsageError(
          f"cannot read augmentation {term!r}; write ops as name or name(key=value), joined by "
          "'|', e.g. 'flip|crop(pad=4)'") from None
    fn = AUGMENTATIONS.get(name)
    try:
      fn(tf.zeros([1, 8, 8, 1], tf.uint8), **kwargs)  # reject wrong keywords now, not mid-epoch
    except TypeError as e:
      raise UsageError(f"augmentation {term!r}: {e}") from None
    ops.append((fn, kwargs))

  def apply(images):
    for fn, kwargs in ops:
      images = fn(images, **kwargs)
    return images

  return apply
