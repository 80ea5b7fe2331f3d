r"""Is training input bound? A recipe's model trained on its real data pipeline vs the same model
on synthetic batches that cost the input nothing, in one run.

  unzip -q ../shared/datasets/cifar10-jpg.zip -d /tmp
  .venv/bin/python tools/bench_input_bound.py --config=configs/cifar10.py \
      --config.data.data_dir=/tmp/cifar10-jpg

Real: the recipe's full pipeline (decoded into memory, shuffled, augmented on the host, prefetched).
Synthetic: one batch of random pixels held in memory and repeated. Both train the same compiled
model for --steps per round; rounds alternate real / synthetic (--rounds each, after one warm-up
round each that includes tracing) and compared three ways: median and best images per wall
second, and images per CPU-second of the process (all threads; immune to the VM being throttled,
and on a CPU-only machine exactly the share of the cores the input pipeline takes). A ratio near
1.0 means the input pipeline costs training nothing.
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
flags.DEFINE_integer("rounds", 9, "Timed rounds of each kind, alternating.")


def _round(model, dataset, steps, batch_size):
  """(images per wall second, images per CPU second of this process, all threads)."""
  start, cpu_start = time.perf_counter(), time.process_time()
  model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
  images = steps * batch_size
  return images / (time.perf_counter() - start), images / (time.process_time() - cpu_start)


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from app import accel  # pylint: disable=g-import-not-at-top
  from app.train import fitting  # pylint: disable=g-import-not-at-top
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.data import augment, pipeline, sources  # pylint: disable=g-import-not-at-top
  from app.models import build_model  # pylint: disable=g-import-not-at-top
  config = config_lib.resolve(flags.FLAGS.config)
  steps, batch = flags.FLAGS.steps, config.train.batch_size
  accel.set_precision(config.runtime)
  data = pipeline.build(sources.load(config.data), config.data, batch, config.seed)
  model = build_model(config.model, data.image_shape, len(data.class_names), data.mean,
                      data.variance,
                      augment.build(config.derived.augment_on_device, on_device=True).layers())
  fitting.compile_model(model, config, data.steps_per_epoch, config.optim.peak_learning_rate)
  real = data.train.repeat()
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (batch, *data.image_shape)).astype(np.float32)
  labels = np.eye(len(data.class_names), dtype=np.float32)[rng.integers(0, len(data.class_names), batch)]
  synthetic = tf.data.Dataset.from_tensors((images, labels)).repeat()
  _round(model, real, steps, batch)  # warm-up: tracing, first pass of the pipeline
  _round(model, synthetic, steps, batch)
  rates = {"real": [], "synthetic": []}
  cpu = {"real": [], "synthetic": []}
  for _ in range(flags.FLAGS.rounds):
    for kind, dataset in (("real", real), ("synthetic", synthetic)):
      wall, per_cpu = _round(model, dataset, steps, batch)
      rates[kind].append(wall)
      cpu[kind].append(per_cpu)
  median = {k: statistics.median(v) for k, v in rates.items()}
  best = {k: max(v) for k, v in rates.items()}
  per_cpu = {k: statistics.median(v) for k, v in cpu.items()}
  print(f"| recipe | data | images/s, median of {flags.FLAGS.rounds} x {steps} steps | best | "
        "images per CPU-second | real / synthetic: median | best | per CPU-second | each round |")
  print("|---|---|---:|---:|---:|---:|---:|---:|---|")
  for kind in ("real", "synthetic"):
    label = f"real ({config.data.augment or 'no augmentation'})" if kind == "real" else kind
    print(f"| {config.name} ({config.model.name}, batch {batch}, {config.runtime.mixed_precision}) "
          f"| {label} | {median[kind]:,.0f} | {best[kind]:,.0f} | {per_cpu[kind]:,.0f} "
          f"| {median[kind] / median['synthetic']:.3f} | {best[kind] / best['synthetic']:.3f} "
          f"| {per_cpu[kind] / per_cpu['synthetic']:.3f} "
          f"| {', '.join(f'{r:,.0f}' for r in rates[kind])} |")

if __name__ == "__main__":
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)
