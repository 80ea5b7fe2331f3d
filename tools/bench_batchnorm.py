r"""Training throughput with Keras's BatchNormalization vs ours (TF's fused kernel), per precision.

  .venv/bin/python tools/bench_batchnorm.py --model=vgg --width=16 --image_size=28 --channels=1

Both variants are the same registered model; the Keras variant is a clone with each of our
BatchNormalization layers swapped for keras.layers.BatchNormalization. Synthetic in-memory data,
one warm-up epoch off the clock, then `--epochs` timed epochs; the figures are ratios within one
run (the machine is noisy), printed as a Markdown table for docs/BENCHMARKS.md.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from app.models import MODELS  # pylint: disable=g-import-not-at-top,wrong-import-position
from app.models.layers import BatchNormalization  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_string("model", "vgg", "Registered model family.")
flags.DEFINE_integer("width", 16, "model.width")
flags.DEFINE_integer("image_size", 28, "Square input side.")
flags.DEFINE_integer("channels", 1, "Input channels.")
flags.DEFINE_integer("batch_size", 256, "Batch size.")
flags.DEFINE_integer("images", 6144, "Synthetic images per epoch.")
flags.DEFINE_integer("epochs", 2, "Timed epochs per variant.")
flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Precision policies to compare.")
FLAGS = flags.FLAGS


def with_keras_batchnorm(model):
  swap = lambda layer: (keras.layers.BatchNormalization.from_config(layer.get_config())
                        if isinstance(layer, BatchNormalization) else
                        layer.__class__.from_config(layer.get_config()))
  return keras.models.clone_model(model, clone_function=swap)


def images_per_second(model, dataset):
  model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "categorical_crossentropy")
  model.fit(dataset, epochs=1, verbose=0)  # warm-up: tracing and compilation off the clock
  start = time.perf_counter()
  model.fit(dataset, epochs=FLAGS.epochs, verbose=0)
  return FLAGS.epochs * FLAGS.images / (time.perf_counter() - start)


def main(_):
  shape = (FLAGS.image_size, FLAGS.image_size, FLAGS.channels)
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (FLAGS.images, *shape)).astype("float32")
  y = keras.utils.to_categorical(rng.integers(0, 10, FLAGS.images), 10)
  dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(FLAGS.batch_size).cache().prefetch(4)
  print(f"| precision | keras BN img/s | fused BN img/s | fused / keras |  "
        f"({FLAGS.model} width {FLAGS.width}, {shape}, batch {FLAGS.batch_size})")
  print("|---|---:|---:|---:|")
  for precision in FLAGS.precisions:
    keras.mixed_precision.set_global_policy(precision)
    ours = MODELS.get(FLAGS.model)(shape, 10, width=FLAGS.width)
    theirs = images_per_second(with_keras_batchnorm(ours), dataset)
    fused = images_per_second(ours, dataset)
    print(f"| {precision} | {theirs:.0f} | {fused:.0f} | {fused / theirs:.2f} |", flush=True)


if __name__ == "__main__":
  app.run(main)
