"""What the model sees: a grid of augmented training images, host and device ops applied."""

import numpy as np
import tensorflow as tf

from app.core import plots
from app.data import augment
from app.data import sources


def augmentation_preview(config, path, count=32, repeats=1):
  """Writes a PNG grid of the first `count` training images after the recipe's augmentation
  (each image `repeats` times, so the randomness shows); returns the path."""
  source = sources.load(config.data)
  from app.data import pipeline  # pylint: disable=g-import-not-at-top
  examples = source.train.subset(np.repeat(np.arange(min(count, len(source.train))), repeats))
  images, labels = next(iter(pipeline.ordered_batches(
      examples, source.image_shape, len(examples), cache=False)))
  images = tf.cast(images, tf.float32)
  labels = tf.one_hot(labels, len(source.class_names))
  tf.random.set_seed(config.seed)
  images, labels = augment.build(config.derived.augment)(images, labels)
  for layer in augment.build(config.derived.augment_on_device, on_device=True).layers():
    images = layer(images, training=True)
  titles = []
  for label in labels.numpy():
    top = np.argsort(label)[::-1][:2]
    titles.append(" + ".join(f"{source.class_names[k]} {label[k]:.2f}" for k in top if label[k] > 0.01)
                  if label.max() < 0.999 else source.class_names[top[0]])
  plots.image_grid(np.clip(images.numpy(), 0, 255).astype(np.uint8), titles, path, columns=8,
                   suptitle=f"augment={config.data.augment!r}  "
                   f"on device={config.data.augment_on_device!r}")
  return path
