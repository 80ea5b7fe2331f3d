"""What the model sees: a grid of augmented training images, host and device ops applied."""

import itertools

import numpy as np
import tensorflow as tf

from app.core import plots
from app.data import augment
from app.data import pipeline
from app.data import sources


def sample_across_classes(labels, count, seed):
  """`count` positions in `labels`, a seeded random order of each class taken in turn: a folder
  lists its images class by class, so its first images are all of one class (and mixup or
  cutmix could only mix that class with itself)."""
  rng = np.random.default_rng(seed)
  per_class = [rng.permutation(np.flatnonzero(labels == label)) for label in np.unique(labels)]
  in_turn = [i for row in itertools.zip_longest(*per_class) for i in row if i is not None]
  return np.array(in_turn[:count], dtype=np.int64)


def _title(label, class_names):
  """A one-hot label -> its class; a mixed one -> its two largest weights, 'cat 0.62 + dog 0.38'."""
  top = np.argsort(label)[::-1][:2]
  if label[top[0]] >= 0.999:
    return class_names[top[0]]
  return " + ".join(f"{class_names[k]} {label[k]:.2f}" for k in top if label[k] > 0.01)


def augmented_sample(config, count=32, repeats=1):
  """(uint8 images, titles): a seeded sample of `count` training images across the classes, each
  `repeats` times, decoded and resized as the training pipeline does it (data.resize), then
  augmented by the host ops and the device layers of the resolved `config`."""
  source = sources.load(config.data)
  train = source.train
  positions = sample_across_classes(train.labels, count, config.seed)
  examples = train.subset(np.repeat(positions, repeats))
  images, labels = next(iter(pipeline.ordered_batches(
      examples, source.image_shape, len(examples), cache=False, resize=config.data.resize)))
  host = augment.build(config.derived.augment)
  device = augment.build(config.derived.augment_on_device, on_device=True)
  for augmenter in (host, device):
    augmenter.check_image_shape(source.image_shape)
  tf.random.set_seed(config.seed)
  images, labels = host(images, tf.one_hot(labels, len(source.class_names)))
  for layer in device.layers():
    images = layer(images, training=True)
  titles = [_title(label, source.class_names) for label in labels.numpy()]
  return np.clip(np.round(images.numpy()), 0, 255).astype(np.uint8), titles


def augmentation_preview(config, path, count=32, repeats=1):
  """Writes a PNG grid of augmented_sample(config, count, repeats), titled by label (the mixed
  weights where mixup or cutmix mixed them); returns the path."""
  images, titles = augmented_sample(config, count, repeats)
  plots.image_grid(images, titles, path, columns=8,
                   suptitle=f"augment={config.data.augment!r}  "
                   f"on device={config.data.augment_on_device!r}")
  return path
