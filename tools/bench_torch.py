r"""Training throughput of the airbench94 net: our Keras code against PyTorch, in one run (issue 22).

  python3.11 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch==2.13.0+cpu
  .venv/bin/python tools/bench_torch.py --torch_python=/tmp/torch-venv/bin/python \
      --rounds=3 --variants=default,threads=2x1,gelu=tanh,gelu=sigmoid

Each measurement is a fresh process training `--steps` steps of batch `--batch_size` on
synthetic 32x32x3 batches after `--warmup` untimed ones (tracing, oneDNN's first-call kernel
choice): the Keras side builds and compiles the model exactly as configs/cifar10_93.py's runs do
(app.models.build_model, app.train.fitting.compile_model: airbench width 64, GELU, dirac, BN
without scale, mixed_bfloat16, SGD Nesterov, label smoothing 0.2), the PyTorch side is
tools/torch_airbench.py (airbench94's own net, bfloat16 autocast, channels_last, 2 threads) in a
virtualenv of its own: PyTorch is a benchmark-only dependency. The processes alternate
(PyTorch, Keras variant 1, variant 2, ..., then again) so drift on this noisy 2-core machine
hits all alike; the table gives each one's median images/s over the rounds and its ratio to
PyTorch's median, as Markdown for docs/BENCHMARKS.md.

Keras variants (the leads issue 22 lists), comma-separated:
  default          the recipe's model as it trains today
  threads=IxO      tf.config.threading: I intra-op and O inter-op threads
  gelu=tanh        GELU's tanh approximation (keras.activations.gelu(approximate=True))
  gelu=sigmoid     x * sigmoid(1.702 x)
  onednn=off       TF_ENABLE_ONEDNN_OPTS=0
  xla=on           runtime.jit_compile=True (XLA)
Variants combine with '+': threads=2x1+gelu=tanh.
"""

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string("torch_python", "", "A Python with PyTorch (its own virtualenv); empty: "
                    "no PyTorch side.")
flags.DEFINE_list("variants", ["default"], "Keras variants to measure (see the docstring).")
flags.DEFINE_integer("rounds", 3, "Rounds; each measures every side once, in turn.")
flags.DEFINE_integer("batch_size", 1024, "Batch size (configs/cifar10_93.py's: 1024).")
flags.DEFINE_integer("steps", 12, "Timed training steps per measurement.")
flags.DEFINE_integer("warmup", 3, "Untimed steps before them.")
flags.DEFINE_string("precision", "mixed_bfloat16", "mixed_bfloat16 or float32 (both sides).")
flags.DEFINE_string("side", "", "Internal: measure one Keras variant in this process.")
FLAGS = flags.FLAGS


def _parse_variant(variant):
  """'threads=2x1+gelu=tanh' -> {'threads': '2x1', 'gelu': 'tanh'}; 'default' -> {}."""
  parts = {}
  for part in variant.split("+"):
    if part != "default":
      key, _, value = part.partition("=")
      if key not in ("threads", "gelu", "onednn", "xla") or not value:
        raise app.UsageError(f"unknown variant part {part!r}; see --help")
      parts[key] = value
  return parts


def _gelu(form):
  import keras  # pylint: disable=g-import-not-at-top
  if form == "tanh":
    return lambda x: keras.activations.gelu(x, approximate=True)
  if form == "sigmoid":
    return lambda x: x * keras.ops.sigmoid(1.702 * x)
  raise app.UsageError(f"gelu={form}: tanh or sigmoid")


def measure_keras(variant):
  """One Keras measurement in this process -> {"images_per_second", "step_seconds"}."""
  parts = _parse_variant(variant)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if "threads" in parts:
    intra, inter = (int(n) for n in parts["threads"].split("x"))
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
  import keras  # pylint: disable=g-import-not-at-top
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.models import build_model  # pylint: disable=g-import-not-at-top
  from app.train import fitting  # pylint: disable=g-import-not-at-top
  from configs import cifar10_93  # pylint: disable=g-import-not-at-top
  config = cifar10_93.get_config()
  config.train.batch_size, config.runtime.mixed_precision = FLAGS.batch_size, FLAGS.precision
  config.data.data_dir = REPO  # not read: the batches are synthetic
  config.runtime.jit_compile = parts.get("xla") == "on"
  config = config_lib.resolve(config)
  keras.mixed_precision.set_global_policy(FLAGS.precision)
  shape = (32, 32, 3)
  model = build_model(config.model, shape, 10, np.full(3, 120.0), np.full(3, 4000.0), [],
                      batch_size=FLAGS.batch_size)
  if "gelu" in parts:
    form = _gelu(parts["gelu"])
    for layer in model.layers:
      if isinstance(layer, keras.layers.Activation) and "gelu" in layer.activation.__name__:
        layer.activation = form
  fitting.compile_model(model, config, 50000 // FLAGS.batch_size, config.optim.peak_learning_rate)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (FLAGS.batch_size, *shape)).astype("float32")
  labels = keras.utils.to_categorical(rng.integers(0, 10, FLAGS.batch_size), 10)
  batches = tf.data.Dataset.from_tensors((images, labels)).repeat()
  seconds = []

  class StepClock(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
      self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
      seconds.append(time.perf_counter() - self.start)

  model.fit(batches, epochs=1, steps_per_epoch=FLAGS.warmup + FLAGS.steps, verbose=0,
            callbacks=[StepClock()])
  timed = seconds[FLAGS.warmup:]
  return {"images_per_second": FLAGS.batch_size * len(timed) / sum(timed),
          "step_seconds": [round(s, 4) for s in timed]}


def _run(command, env=None):
  result = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, **(env or {})))
  lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
  if result.returncode or not lines:
    raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
  return json.loads(lines[-1])


def _keras_command(variant):
  return [sys.executable, os.path.abspath(__file__), f"--side={variant}",
          f"--batch_size={FLAGS.batch_size}", f"--steps={FLAGS.steps}",
          f"--warmup={FLAGS.warmup}", f"--precision={FLAGS.precision}"]


def main(argv):
  del argv
  if FLAGS.side:
    print(json.dumps(measure_keras(FLAGS.side)), flush=True)
    return
  for variant in FLAGS.variants:
    _parse_variant(variant)  # refused before any measurement
  sides = ([("PyTorch (airbench94's net)", [
      FLAGS.torch_python, os.path.join(REPO, "tools", "torch_airbench.py"),
      f"--batch_size={FLAGS.batch_size}", f"--steps={FLAGS.steps}", f"--warmup={FLAGS.warmup}",
      "--precision=" + ("bfloat16" if FLAGS.precision == "mixed_bfloat16" else "float32")],
      None)] if FLAGS.torch_python else [])
  for variant in FLAGS.variants:
    env = {"TF_ENABLE_ONEDNN_OPTS": "0"} if _parse_variant(variant).get("onednn") == "off" else {}
    sides.append((f"Keras: {variant}", _keras_command(variant), env))
  rates = {name: [] for name, _, _ in sides}
  for round_index in range(FLAGS.rounds):
    for name, command, env in sides:
      rates[name].append(_run(command, env)["images_per_second"])
      print(f"round {round_index + 1}: {name}: {rates[name][-1]:.0f} images/s", file=sys.stderr,
            flush=True)
  reference = statistics.median(rates[sides[0][0]])
  print(f"| side | median images/s | / {sides[0][0]} | rounds |  (batch {FLAGS.batch_size}, "
        f"{FLAGS.precision}, {FLAGS.steps} timed steps after {FLAGS.warmup})")
  print("|---|---:|---:|---|")
  for name, _, _ in sides:
    median = statistics.median(rates[name])
    print(f"| {name} | {median:.0f} | {median / reference:.2f} | "
          f"{', '.join(f'{r:.0f}' for r in rates[name])} |")


if __name__ == "__main__":
  app.run(main)
