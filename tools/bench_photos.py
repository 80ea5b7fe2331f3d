r"""Issue 18's benchmark: the plain command on a folder of photos against a recipe written by hand,
each under --time_budget, seeds interleaved so the machine's drift spreads over all of them.

  unzip -q ../shared/datasets/hymenoptera-photos.zip -d /tmp
  .venv/bin/python tools/bench_photos.py --data_dir=/tmp/hymenoptera --budgets=2m,5m \
      --seeds=0,1,2 --output=/tmp/bench_photos

Each run is `python -m app.train` in a process of its own, as a user runs it; the table gives,
per setting, the median and range over the seeds of the validation accuracy (the folder's val/,
where it has one: nothing selected on it, the exported weights are the last epoch's), the test
accuracy and the command's wall seconds (metrics.json run_seconds, start-up and export included)
against the budget. The hand recipe (HAND_RECIPE) is the one ../shared/datasets/README.md quotes,
0.77 on val/ in 83 s of training at 40 epochs: ResNet-9 width 16 at 128 px, centre crop,
flip + crop + brightness/contrast, batch 32, SGD 0.05.
"""

import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string("data_dir", "/tmp/hymenoptera", "The photo folder (class folders in train/).")
flags.DEFINE_list("budgets", ["2m", "5m"], "--time_budget values to run.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds, interleaved.")
flags.DEFINE_list("settings", ["plain", "hand"],
                  "plain (no flag but the budget), hand, and/or the name of a --variant.")
flags.DEFINE_multi_string(
    "variant", [], "NAME=FLAGS: a setting that runs the plain command with FLAGS added (split "
    "as a shell would), to measure one change to the data-aware recipe against it, e.g. "
    "--variant='ema=--config.optim.ema=True' --settings=plain,ema.")
flags.DEFINE_list("hand_budgets", ["5m"], "Budgets the hand recipe runs at (a subset of --budgets).")
flags.DEFINE_string("output", "/tmp/bench_photos", "Run dirs, exports and results.json go here.")
FLAGS = flags.FLAGS

HAND_RECIPE = ["--config=configs/default.py", "--model=resnet9", "--config.model.width=16",
               "--config.data.image_size=128", "--config.data.resize=crop",
               "--config.data.augment=flip|crop(pad=8)|color_jitter(brightness=0.2, contrast=0.2)",
               "--batch_size=32", "--optimizer=sgd", "--learning_rate=0.05",
               "--config.optim.schedule=onecycle", "--config.optim.warmup_fraction=0.05",
               "--config.optim.weight_decay=5e-4", "--config.train.label_smoothing=0.1",
               "--mixed_precision=auto"]  # mixed_bfloat16 where the CPU computes it


def _run(setting, budget, seed):
  name = f"{setting}-{budget}-seed{seed}"
  run_dir = os.path.join(FLAGS.output, "runs", name)
  command = [sys.executable, "-m", "app.train", "--dataset=folder", f"--data_dir={FLAGS.data_dir}",
             f"--time_budget={budget}", f"--seed={seed}", f"--output_dir={run_dir}",
             f"--export_dir={os.path.join(FLAGS.output, 'exports')}"]
  if setting == "hand":
    command[3:3] = HAND_RECIPE
  elif setting != "plain":
    command += _variants()[setting]
  started = time.perf_counter()
  result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
  wall = time.perf_counter() - started
  os.makedirs(os.path.join(FLAGS.output, "logs"), exist_ok=True)
  with open(os.path.join(FLAGS.output, "logs", f"{name}.log"), "w") as f:  # the run's own log
    f.write(result.stdout + result.stderr)
  if result.returncode:
    return {"name": name, "failed": result.stderr.strip().splitlines()[-1:], "wall_seconds": wall}
  with open(os.path.join(run_dir, "metrics.json")) as f:
    metrics = json.load(f)
  row = {"name": name, "setting": setting, "budget": budget, "seed": seed, "wall_seconds": wall,
         "run_seconds": metrics["run_seconds"],
         "validation_accuracy": metrics["validation_accuracy"],
         "validation_split": metrics["validation_split"], "test_accuracy": metrics["test_accuracy"],
         "test_split": metrics["test_split"], "epochs": metrics["epochs_completed"],
         "planned_epochs": metrics.get("time_budget", {}).get("planned_epochs"),
         "within_budget": metrics.get("time_budget", {}).get("within_budget"),
         "warnings": [w["code"] for w in metrics.get("warnings", [])]}
  print(json.dumps(row), flush=True)
  return row


def _variants():
  """{name: [flag, ...]} from --variant."""
  variants = {}
  for entry in FLAGS.variant:
    name, sep, added = entry.partition("=")
    if not sep or not re.fullmatch(r"\w[\w.-]*", name) or name in ("plain", "hand"):
      raise app.UsageError(f"--variant={entry!r}: write NAME=FLAGS, NAME not plain or hand")
    variants[name] = shlex.split(added)
  return variants


def _spread(values):
  return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main(argv):
  del argv
  unknown = set(FLAGS.settings) - {"plain", "hand", *_variants()}
  if unknown:
    raise app.UsageError(f"--settings: {', '.join(sorted(unknown))} named by no --variant")
  os.makedirs(FLAGS.output, exist_ok=True)
  rows = []
  for seed in FLAGS.seeds:
    for budget in FLAGS.budgets:
      for setting in FLAGS.settings:
        if setting == "hand" and budget not in FLAGS.hand_budgets:
          continue
        rows.append(_run(setting, budget, seed))
        with open(os.path.join(FLAGS.output, "results.json"), "w") as f:
          json.dump(rows, f, indent=2)
  print("| setting | budget | seeds | val accuracy, median (range) | test accuracy | run seconds "
        "| epochs | within budget |")
  print("|---|---|---:|---|---|---|---|---|")
  for budget in FLAGS.budgets:
    for setting in FLAGS.settings:
      done = [r for r in rows if r.get("setting") == setting and r.get("budget") == budget]
      if not done:
        continue
      print(f"| {setting} | {budget} | {len(done)} | "
            f"{_spread([r['validation_accuracy'] for r in done])} | "
            f"{_spread([r['test_accuracy'] for r in done])} | "
            f"{_spread([r['run_seconds'] for r in done]).replace('.000', '')} | "
            f"{', '.join(str(r['epochs']) for r in done)} | "
            f"{all(r['within_budget'] for r in done)} |")
  failed = [r for r in rows if "failed" in r]
  for row in failed:
    print(f"failed: {row['name']}: {row['failed']}")
  return 1 if failed else 0


if __name__ == "__main__":
  app.run(main)
