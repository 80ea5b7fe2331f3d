r"""Time-to-accuracy of recipes, side by side with the keras-io reference, in one run.

  .venv/bin/python tools/benchmark.py --recipes=configs/fashion_mnist.py --seeds=3 \
      --targets=0.899,0.916,0.925 --write=docs/BENCHMARKS.md

For each recipe and seed, `python -m app.train --config=RECIPE --seed=S` (no export; extra flags
with --train_args) and, for each seed, tools/keras_io_convnet.py (--reference_epochs). Reported
per target: the wall seconds from the start of training (tracing and compilation included) to
the first evaluation at or above the target — each run validates on the test split at its
recipe's cadence, train.validation_every_epochs (configs/cifar10_93.py: once, at the end; add
--train_args=--config.train.validation_every_epochs=1 for a curve of every epoch), with
--config.data.validation_split=0, the speedrun convention: metrics.json labels it, and nothing
selects on it; trained on the whole training split — as the median over seeds with min-max, or
how many seeds reached it; the final test accuracy (mean ± std); training images/s; forward
FLOPs per image; utilization = 3 x FLOPs x images/s / the machine's convolution peak in the
recipe's precision (measured here, app.accel.conv_peak); and the reference's time over the
recipe's, per target both reached. Prints Markdown; --write appends it, with the command, the
machine and the date, to a file.
"""

import csv
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import cli  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_list("recipes", ["configs/fashion_mnist.py"], "Recipe files to time.")
flags.DEFINE_integer("seeds", 3, "Seeds per recipe (0, 1, ...).")
flags.DEFINE_list("targets", ["0.899", "0.916", "0.939"], "Test accuracies to time, as fractions.")
flags.DEFINE_string("train_args", "", "Extra app.train flags for every recipe run (quoted).")
flags.DEFINE_integer("reference_epochs", 12, "Epochs of the keras-io reference; 0 = skip it.")
flags.DEFINE_string("reference_args", "", "Extra tools/keras_io_convnet.py flags (quoted).")
flags.DEFINE_string("runs_dir", "/tmp/benchmark-runs", "Where the runs' directories go.")
flags.DEFINE_string("run_name", "", "Folder under --runs_dir for this benchmark's runs (default: "
                    "a UTC timestamp). Runs that finished there before (metrics.json written) "
                    "are reused, not trained again: a killed benchmark picks up where it "
                    "stopped, and --seeds=3 after --seeds=1 trains seeds 1 and 2 only.")
flags.DEFINE_string("write", "", "Append the report to this Markdown file.")


def _run(command):
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  if result.returncode != 0:
    lines = result.stderr.strip().splitlines()
    cli.fail(f"{' '.join(command[:4])} ... failed: {lines[-1] if lines else result.returncode}")


def recipe_run(recipe, seed, run_dir):
  """Trains one recipe seed (unless `run_dir` holds a finished run: --run_name); returns
  {"curve": [(seconds, accuracy)], "final", "ips", "config"}."""
  if not os.path.isfile(os.path.join(run_dir, "metrics.json")):
    _run([sys.executable, "-m", "app.train", f"--config={recipe}", f"--seed={seed}",
          f"--output_dir={run_dir}", "--config.export.enabled=False",
          "--config.data.validation_split=0", *shlex.split(flags.FLAGS.train_args)])
  with open(os.path.join(run_dir, "history.csv")) as f:
    curve = [(float(row["elapsed_seconds"]), float(row["val_accuracy"]))
             for row in csv.DictReader(f)
             if row.get("val_accuracy") not in (None, "", "NA")]  # NA: an epoch not evaluated
  with open(os.path.join(run_dir, "metrics.json")) as f:
    metrics = json.load(f)
  if metrics.get("validation_split", "test") != "test":  # runs from before the key: on test
    cli.fail(f"{run_dir} validated on {metrics['validation_split']}, not the test split: its "
             "curve is no time-to-test-accuracy; drop validation_split from --train_args")
  return {"curve": curve, "final": metrics["test_accuracy"],
          "ips": metrics["train_images_per_second"], "run_dir": run_dir}


def reference_run(seed, path):
  if not os.path.isfile(path):  # reused when --run_name names a benchmark that wrote it
    _run([sys.executable, "tools/keras_io_convnet.py", f"--epochs={flags.FLAGS.reference_epochs}",
          f"--seed={seed}", f"--output={path}", *shlex.split(flags.FLAGS.reference_args)])
  with open(path) as f:
    record = json.load(f)
  return {"curve": [(e["elapsed_seconds"], e["test_accuracy"]) for e in record["epochs"]],
          "final": record["epochs"][-1]["test_accuracy"], "ips": record["images_per_second"]}


def time_to(curve, target):
  """Seconds to the first evaluation at or above `target`, or None."""
  return next((seconds for seconds, accuracy in curve if accuracy >= target), None)


def _flops_and_precision(run_dir):
  from app.core.run_dir import RunDir  # pylint: disable=g-import-not-at-top
  from app.models import load_model  # pylint: disable=g-import-not-at-top
  from app.models.stats import flops_per_image  # pylint: disable=g-import-not-at-top
  config = RunDir(run_dir).load_config()
  model = load_model(os.path.join(run_dir, "checkpoints", "last.keras"))
  return flops_per_image(model), config.runtime.mixed_precision


def summarize(name, results, targets, peaks=None, flops=None, precision=None):
  """One table row per target set: a dict of formatted cells."""
  row = {"name": name}
  for target in targets:
    times = [time_to(r["curve"], target) for r in results]
    reached = [t for t in times if t is not None]
    row[target] = (f"{statistics.median(reached):.0f} s ({min(reached):.0f}–{max(reached):.0f})"
                   + (f", {len(reached)}/{len(times)} seeds" if len(reached) < len(times) else "")
                   if reached else f"not reached (0/{len(times)})")
    row[("median", target)] = statistics.median(reached) if len(reached) == len(times) else None
  finals = [100 * r["final"] for r in results]
  row["final"] = f"{statistics.mean(finals):.2f} ± {statistics.pstdev(finals):.2f}%"
  ips = statistics.mean(r["ips"] for r in results)
  row["ips"] = f"{ips:,.0f}"
  if flops and peaks:
    peak = peaks["mixed_bfloat16" if precision == "mixed_bfloat16" else "float32"]
    row["flops"] = f"{flops / 1e6:.1f}"
    row["utilization"] = f"{3 * flops * ips / 1e9 / peak:.0%} of {peak:.0f} GFLOP/s"
  return row


def report(rows, targets, reference):
  head = ["run"] + [f"to {100 * t:.1f}%" for t in targets] + [
      "final test acc.", "train img/s", "MFLOPs/img", "utilization"]
  if reference:
    head.append("speed-up vs reference (per target)")
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for row in rows:
    cells = [row["name"]] + [row[t] for t in targets] + [
        row["final"], row["ips"], row.get("flops", "-"), row.get("utilization", "-")]
    if reference:
      ratios = []
      for t in targets:
        ours, theirs = row[("median", t)], reference[("median", t)]
        ratios.append(f"{theirs / ours:.1f}x" if ours and theirs else "-")
      cells.append(", ".join(ratios))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv):
  del argv
  from app.accel import conv_peak  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  try:
    targets = sorted(float(t) for t in FLAGS.targets)
  except ValueError:
    cli.fail(f"--targets={','.join(FLAGS.targets)} must be accuracies like 0.916,0.939")
  if not targets or not all(0 < t < 1 for t in targets):
    cli.fail("--targets must be fractions between 0 and 1, e.g. 0.916,0.939")
  if FLAGS.seeds < 1:
    cli.fail("--seeds must be 1 or more")
  for recipe in FLAGS.recipes:
    if not os.path.isfile(os.path.join(REPO, recipe)):
      cli.fail(f"recipe {recipe} not found; pass files under configs/, e.g. configs/fashion_mnist.py")
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
  base = os.path.join(FLAGS.runs_dir, FLAGS.run_name or stamp)
  peaks = {"float32": conv_peak(tf.float32), "mixed_bfloat16": conv_peak(tf.bfloat16)}
  rows, reference = [], None
  os.makedirs(base, exist_ok=True)
  if FLAGS.reference_epochs:
    results = [reference_run(seed, os.path.join(base, f"reference-{seed}.json"))
               for seed in range(FLAGS.seeds)]
    reference = summarize(f"keras-io convnet, {FLAGS.reference_epochs} epochs", results, targets)
    rows.append(reference)
  for recipe in FLAGS.recipes:
    name = os.path.splitext(os.path.basename(recipe))[0]
    results = [recipe_run(recipe, seed, os.path.join(base, f"{name}-{seed}"))
               for seed in range(FLAGS.seeds)]
    flops, precision = _flops_and_precision(results[0]["run_dir"])
    rows.append(summarize(recipe, results, targets, peaks, flops, precision))
  table = report(rows, targets, reference)
  command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "tools/benchmark.py",
                                              *sys.argv[1:]])
  machine = (f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python "
             f"{platform.python_version()}, TensorFlow {tf.__version__}; conv peak float32 "
             f"{peaks['float32']:.0f} / bfloat16 {peaks['mixed_bfloat16']:.0f} GFLOP/s")
  text = (f"\n## Time to accuracy, {datetime.date.today().isoformat()} (tools/benchmark.py)\n\n"
          f"```sh\n{command}\n```\n\nMachine: {machine}. Seeds: {FLAGS.seeds} per run; times "
          "are medians (min–max).\n\n" + table + "\n")
  print(text)
  if FLAGS.write:
    with open(FLAGS.write, "a") as f:
      f.write(text)


if __name__ == "__main__":
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)
