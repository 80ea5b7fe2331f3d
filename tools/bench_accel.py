r"""Training throughput and utilization of one model under every acceleration setting, in one run,
and what --accel=auto picks from the same measurements.

  unzip -q ../shared/datasets/cifar10-jpg.zip -d /tmp
  .venv/bin/python tools/bench_accel.py --config=configs/cifar10.py --config.model.name=resnet9 \
      --config.data.data_dir=/tmp/cifar10-jpg --config.data.limit=10000

First the machine's peak: 3x3 convolutions of ResNet-9's stage shapes (64 to 512 channels)
timed in float32 and bfloat16 (TensorFlow, forward), the fastest shape counting. Then each setting (precision x XLA x
steps_per_execution, and channels_last forced for the plain settings) trains the recipe's model on the recipe's real data pipeline with
app/train/accel_probe.py's measurement (fresh model, same batches, warm-up off the clock). Utilization
= 3 x forward FLOPs per image (forward + backward) x images/s / the peak of that precision.
Settings the device cannot run are listed with the reason; with --emulated, mixed_bfloat16 is
timed even where the device has no bfloat16 instructions (what asking for it costs there). Prints
Markdown for docs/BENCHMARKS.md.
"""

import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import cli  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

cli.define_config_flag(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "configs", "cifar10.py"))
flags.DEFINE_boolean("peak_only", False, "Measure and print the convolution peak only.")
flags.DEFINE_boolean("emulated", False,
                     "Also time mixed_bfloat16 where the device has no bfloat16 instructions "
                     "(emulated: what --mixed_precision=mixed_bfloat16 costs there; --accel=auto "
                     "never picks it). Its rows say 'emulated'.")


def main(argv):
  del argv
  from app import accel, distribute  # pylint: disable=g-import-not-at-top
  from app.train import accel_probe  # pylint: disable=g-import-not-at-top
  from app.accel import conv_peak  # pylint: disable=g-import-not-at-top
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.data import checks, pipeline, sources  # pylint: disable=g-import-not-at-top
  from app.models import build_model  # pylint: disable=g-import-not-at-top
  from app.models.stats import flops_per_image  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  config = config_lib.resolve(flags.FLAGS.config)
  strategy, _ = distribute.strategy_from_config(config.runtime, config.derived.strategy,
                                                config.derived.strategy_reason)
  peaks = {"float32": conv_peak(tf.float32), "mixed_bfloat16": conv_peak(tf.bfloat16)}
  if flags.FLAGS.peak_only:
    print(f"Peak (3x3 conv, forward): float32 {peaks['float32']:.0f} GFLOP/s, bfloat16 "
          f"{peaks['mixed_bfloat16']:.0f} GFLOP/s")
    return
  source, _ = checks.check_source(sources.load(config.data), config.data, config.seed)
  data = pipeline.for_run(source, config)
  flops = flops_per_image(build_model(config.model, data.image_shape, len(data.class_names),
                                      data.mean, data.variance))
  supported = accel.supported_precisions()
  measured = {}

  def measure_once(cfg, settings, data_source, strat, steps, fold=None):
    key = tuple(sorted(settings.items()))
    if key not in measured:
      try:
        measured[key] = accel_probe.measure_setting(cfg, settings, data_source, strat, steps, fold)
      except Exception as e:  # pylint: disable=broad-except
        measured[key] = e
    if isinstance(measured[key], Exception):
      raise measured[key]
    return measured[key]

  rows = []
  grid = [(p, jit, spe, False) for p, jit, spe in itertools.product(
      ("float32", "mixed_bfloat16", "mixed_float16"), (False, True),
      (1, accel_probe.STEPS_PER_EXECUTION))]
  grid += [(p, False, 1, True) for p in ("float32", "mixed_bfloat16")]  # NHWC forced
  for precision, jit, spe, channels_last in grid:
    settings = {"mixed_precision": precision, "jit_compile": jit, "steps_per_execution": spe,
                "channels_last": channels_last, "batch_size": config.train.batch_size}
    emulated = flags.FLAGS.emulated and precision == "mixed_bfloat16" and supported[precision]
    if supported[precision] and not emulated:
      if not jit and spe == 1:  # one row per precision the device cannot run
        rows.append((dict(settings, jit_compile="-", steps_per_execution="-", channels_last="-"),
                     None,
                     f"not run: {supported[precision]}"))
      continue
    try:
      rate, _ = measure_once(config, settings, source, strategy,
                             config.runtime.accel_probe_steps)
      rows.append((settings, rate, f"emulated: {supported[precision]}" if emulated else ""))
    except Exception as e:  # pylint: disable=broad-except
      rows.append((settings, None, f"failed: {str(e).splitlines()[0][:100]}"))
    print(rows[-1], flush=True)
  chosen, _ = accel_probe.probe(config, source, strategy, measure=measure_once)
  baseline = rows[0][1]  # float32, no XLA, one step per execution, TF's layout choice
  print(f"\nPeak (3x3 conv, forward): float32 {peaks['float32']:.0f} GFLOP/s, bfloat16 "
        f"{peaks['mixed_bfloat16']:.0f} GFLOP/s. Model: {config.model.name}, "
        f"{flops / 1e6:.0f} MFLOPs forward per image, batch {config.train.batch_size}.\n")
  print("| precision | XLA | steps/exec | channels_last | images/s | vs float32 | utilization | "
        "note |")
  print("|---|---|---:|---|---:|---:|---:|---|")
  for settings, rate, note in rows:
    peak = peaks.get(settings["mixed_precision"])
    cells = (f"{rate:,.0f} | {rate / baseline:.2f}x | {3 * flops * rate / 1e9 / peak:.0%}"
             if rate else "- | - | -")
    print(f"| {settings['mixed_precision']} | {settings['jit_compile']} | "
          f"{settings['steps_per_execution']} | {settings['channels_last']} | {cells} | {note} |")
  print(f"\n--accel=auto chose: {', '.join(f'{k}={v}' for k, v in chosen.items())}")


if __name__ == "__main__":
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)
