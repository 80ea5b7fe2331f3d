r"""Is training input bound? A recipe's model trained on its real data pipeline vs the same model
on synthetic batches that cost the input nothing, in one run.

  unzip -q ../shared/datasets/cifar10-jpg.zip -d /tmp
  .venv/bin/python tools/bench_input_bound.py --config=configs/cifar10.py \
      --config.data.data_dir=/tmp/cifar10-jpg

Real: the recipe's full pipeline (decoded into memory, shuffled, augmented on the host, prefetched).
Synthetic: one batch of random pixels held in memory and repeated. Both train the same compiled
model for --steps per round; rounds alternate real / synthetic (--rounds each, after one warm-up
round each that includes tracing) and the median images/s of each is compared: a ratio near 1.0
means the CPU cores the input pipeline shares with the model cost training nothing.
"""

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import cli  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

cli.define_config_flag(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "configs", "cifar10.py"))
flags.DEFINE_integer("steps", 60, "Training steps (batches) per timed round.")
flags.DEFINE_integer("rounds", 3, "Timed rounds of each kind, alternating.")


def _round(model, dataset, steps, batch_size):
  start = time.perf_counter()
  model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
  return steps * batch_size / (time.perf_counter() - start)


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from app import accel, fitting  # pylint: disable=g-import-not-at-top
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.data import augment, pipeline, sources  # pylint: disable=g-import-not-at-top
  from app.models import build_model  # pylint: disable=g-import-not-at-top
  config = config_lib.resolve(flags.FLAGS.config)
  steps, batch = flags.FLAGS.steps, config.train.batch_size
  accel.set_precision(config.runtime)
  data = pipeline.build(sources.load(config.data), config.data, batch, config.seed)
  model = build_model(config.model, data.image_shape, len(data.class_names), data.mean,
                      data.variance,
                      augment.parse(config.data.augment_on_device, on_device=True).layers())
  fitting.compile_model(model, config, data.steps_per_epoch, config.optim.peak_learning_rate)
  real = data.train.repeat()
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (batch, *data.image_shape)).astype(np.float32)
  labels = np.eye(len(data.class_names), dtype=np.float32)[rng.integers(0, len(data.class_names), batch)]
  synthetic = tf.data.Dataset.from_tensors((images, labels)).repeat()
  _round(model, real, steps, batch)  # warm-up: tracing, first pass of the pipeline
  _round(model, synthetic, steps, batch)
  rates = {"real": [], "synthetic": []}
  for _ in range(flags.FLAGS.rounds):
    rates["real"].append(_round(model, real, steps, batch))
    rates["synthetic"].append(_round(model, synthetic, steps, batch))
  real_rate, synthetic_rate = (statistics.median(rates[k]) for k in ("real", "synthetic"))
  print(f"| recipe | data | images/s (median of {flags.FLAGS.rounds} x {steps} steps) | "
        "each round | real / synthetic |")
  print("|---|---|---:|---|---:|")
  for kind, rate in (("real", real_rate), ("synthetic", synthetic_rate)):
    print(f"| {config.name} ({config.model.name}, batch {batch}, {config.runtime.mixed_precision}) "
          f"| {kind}{' (' + (config.data.augment or 'no augmentation') + ')' if kind == 'real' else ''} "
          f"| {rate:,.0f} | {', '.join(f'{r:,.0f}' for r in rates[kind])} "
          f"| {real_rate / synthetic_rate if kind == 'real' else 1.0:.3f} |")


if __name__ == "__main__":
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)
