"""--accel=auto: measure the acceleration switches on the run's own model, data and devices, and
train with the fastest setting whose loss stays with float32's.

Every candidate trains a fresh copy of the model (same seed, same initial weights) on the same
batches of the run's training pipeline, at the same small constant rate (PROBE_RATE_FRACTION of
the peak, so the float32 reference is stable): a warm-up call (tracing, XLA compilation) and then
`runtime.accel_probe_steps` timed steps (whole executions of steps_per_execution=8). A
candidate is rejected when the mean loss of its timed steps departs from the float32 reference's
by more than `runtime.accel_tolerance` (relative), or is not finite, or when it fails. A reference
whose loss is not finite leaves the config's own settings. The search is greedy, one switch at a
time from the float32 baseline: precision (precision_candidates: the policies the device computes
natively, never mixed_float16 on a CPU), then XLA, then steps_per_execution, then channels_last,
then a doubled batch (only when the recipe scales the learning rate with the batch,
optim.reference_batch_size > 0; its loss is on other batches, so it is judged by the scaling rule,
not compared). The table of what was measured is written to the run directory as
accel_probe.md / .json.
"""

import math
import time

import keras
import ml_collections
from absl import logging

from app import accel, distribute
from app.core import files
from app.data import augment, pipeline
from app.optim.optimizers import peak_rate
from app.train import fitting

STEPS_PER_EXECUTION = 8
# The probe's rate: a twentieth of the peak, constant (no warmup). At the peak the float32
# reference itself went bad in 32 steps (simple_cnn, SGD 0.2, 1000 Fashion-MNIST images: loss
# 4.65 while mixed_bfloat16 reached 1.52 and XLA 1.29 on the same batches), and every setting
# that changes the numerics was rejected against it. At peak/20 every setting's loss agreed with
# float32's within 0.4% (simple_cnn on 600, 1000 and 2048 images, vgg on 600; 2026-12-01, this
# 2-core VM) while still falling (2.3 -> 1.5), so a setting that breaks training still departs.
# At peak/10 XLA was 6.1% off on 600 images.
PROBE_RATE_FRACTION = 0.05


def _settings(runtime, batch_size):
  return {"mixed_precision": runtime.mixed_precision, "jit_compile": bool(runtime.jit_compile),
          "steps_per_execution": int(runtime.steps_per_execution),
          "channels_last": bool(runtime.channels_last), "batch_size": int(batch_size)}


def _with(config, settings):
  copy = ml_collections.ConfigDict(config.to_dict())
  for key in ("mixed_precision", "jit_compile", "steps_per_execution", "channels_last"):
    copy.runtime[key] = settings[key]
  copy.train.batch_size = settings["batch_size"]
  return copy


def precision_candidates():
  """{policy: None to probe it, or why it is skipped} for the policies beyond float32: those the
  devices compute natively (app.accel.supported_precisions: mixed_float16 on GPUs of compute
  capability >= 7.0 only, never on a CPU, whatever its flags say)."""
  return {policy: why_not for policy, why_not in accel.supported_precisions().items()
          if policy != "float32"}


def measure_setting(config, settings, source, strategy, steps, fold=None):
  """Trains a fresh model under `settings` on the probe batches of `source`, at the probe's rate;
  returns (images/s, mean loss of the timed steps)."""
  from app.models import build_model  # pylint: disable=g-import-not-at-top
  candidate = _with(config, settings)
  candidate.optim.schedule, candidate.optim.warmup_epochs = "constant", 0.0
  data = pipeline.for_run(source, candidate, fold)
  # The same batches for every candidate: whole executions of the largest steps_per_execution.
  warmup = 2 * STEPS_PER_EXECUTION
  timed = max(steps, 2 * STEPS_PER_EXECUTION) // STEPS_PER_EXECUTION * STEPS_PER_EXECUTION
  keras.utils.set_random_seed(config.seed)
  accel.set_precision(candidate.runtime)
  try:
    with strategy.scope():
      device_augmentation = augment.build(candidate.derived.augment_on_device, on_device=True)
      model = build_model(candidate.model, data.image_shape, len(data.class_names), data.mean,
                          data.variance, device_augmentation.layers())
      fitting.compile_model(model, candidate, data.steps_per_epoch,
                            PROBE_RATE_FRACTION * candidate.optim.peak_learning_rate)
    epochs = -(-(warmup + timed) // data.steps_per_epoch)  # the same batches for every candidate
    batches = pipeline.training_batches(data, 0, epochs).map(
        lambda images, labels: (images, labels))
    model.fit(batches.take(warmup), epochs=1, verbose=0)  # tracing and compilation
    start = time.perf_counter()
    history = model.fit(batches.skip(warmup).take(timed), epochs=1, verbose=0)
    seconds = time.perf_counter() - start
  finally:
    accel.set_precision(config.runtime)
  return timed * settings["batch_size"] / seconds, float(history.history["loss"][-1])


def probe(config, source, strategy, fold=None, measure=None):
  """Runs the search in the module docstring on the run's `source` (app.data.sources.Source;
  `fold` as in pipeline.build); returns (chosen settings, table rows). `measure` (default
  measure_setting, same arguments) times one setting: tools/bench_accel.py passes one that reuses
  its own measurements."""
  measure = measure or measure_setting
  runtime, steps = config.runtime, config.runtime.accel_probe_steps
  single_replica = strategy.num_replicas_in_sync == 1
  rows = []

  def run(settings, switch, reference_loss=None, comparable=True):
    row = dict(settings, switch=switch)
    try:
      row["images_per_second"], row["loss"] = measure(config, settings, source, strategy, steps,
                                                      fold)
    except Exception as e:  # pylint: disable=broad-except
      row.update(images_per_second=None, loss=None, accepted=False,
                 note=f"failed: {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}")
      rows.append(row)
      return row
    if not math.isfinite(row["loss"]):
      row["accepted"], row["note"] = False, f"loss {row['loss']} is not finite"
    elif reference_loss is None or not comparable:
      row["accepted"], row["note"] = True, "reference" if reference_loss is None else \
          "other batches: accepted by the learning-rate scaling rule"
    else:
      departure = abs(row["loss"] - reference_loss) / max(abs(reference_loss), 1e-12)
      row["loss_departure"] = departure
      row["accepted"] = departure <= runtime.accel_tolerance
      row["note"] = "" if row["accepted"] else \
          f"loss departs {departure:.1%} from float32's (> {runtime.accel_tolerance:.0%})"
    rows.append(row)
    return row

  base = dict(_settings(runtime, config.train.batch_size), mixed_precision="float32",
              jit_compile=False, steps_per_execution=1, channels_last=False)
  best = run(base, "float32 baseline")
  if best["images_per_second"] is None:
    raise RuntimeError(f"the float32 baseline failed in the --accel=auto probe: {best['note']}")
  if not best["accepted"]:  # nothing to judge the others by
    logging.warning("--accel=auto: the float32 reference's %s even at the probe's rate (%g); "
                    "training with the config's settings", best["note"],
                    PROBE_RATE_FRACTION * config.optim.peak_learning_rate)
    return settings_of(config), rows
  reference = best["loss"]

  def consider(change, switch, comparable=True):
    nonlocal best
    candidate = run(dict({k: best[k] for k in base}, **change), switch, reference, comparable)
    if candidate["accepted"] and candidate["images_per_second"] > best["images_per_second"]:
      best = candidate

  for policy, why_not in precision_candidates().items():
    if why_not:
      rows.append(dict(base, mixed_precision=policy, switch=policy, accepted=False,
                       images_per_second=None, loss=None, note=f"skipped: {why_not}"))
    else:
      consider({"mixed_precision": policy}, policy)
  if single_replica or distribute.has_gpu():  # XLA collectives exist on GPUs only
    consider({"jit_compile": True}, "XLA")
  if single_replica:  # Keras 3.15 fails steps_per_execution > 1 with several replicas
    consider({"steps_per_execution": STEPS_PER_EXECUTION}, f"steps_per_execution={STEPS_PER_EXECUTION}")
  consider({"channels_last": True}, "channels_last (NHWC forced)")
  if config.optim.reference_batch_size:
    consider({"batch_size": best["batch_size"] * 2}, "batch x2", comparable=False)
  chosen = {k: best[k] for k in base}
  logging.info("--accel=auto chose %s", chosen)
  return chosen, rows


def settings_of(config):
  """The switches a config trains with, as probe() returns its choice."""
  return _settings(config.runtime, config.train.batch_size)


def apply(config, chosen):
  """The config with the probe's choice in place (and the learning rate rescaled for the batch)."""
  copy = _with(config, chosen)
  copy.optim.peak_learning_rate = peak_rate(copy.optim, copy.train.batch_size)
  return copy


def write_table(rows, chosen, run):
  """accel_probe.json (rows and choice) and accel_probe.md (a table) in the run directory `run`
  (app.core.run_dir.RunDir)."""
  run.write_json("accel_probe.json", {"chosen": chosen, "measured": rows})
  lines = ["| setting | precision | XLA | steps/exec | channels_last | batch | images/s | "
           "timed loss | accepted | note |", "|---|---|---|---:|---|---:|---:|---:|---|---|"]
  for row in rows:
    rate = f"{row['images_per_second']:,.0f}" if row.get("images_per_second") else "-"
    loss = f"{row['loss']:.4f}" if row.get("loss") is not None else "-"
    lines.append(f"| {row['switch']} | {row['mixed_precision']} | {row['jit_compile']} | "
                 f"{row['steps_per_execution']} | {row['channels_last']} | {row['batch_size']} | "
                 f"{rate} | {loss} | "
                 f"{'yes' if row['accepted'] else 'no'} | {row.get('note', '')} |")
  lines.append("")
  lines.append(f"Chosen: {', '.join(f'{k}={v}' for k, v in chosen.items())}")
  files.write_text(run.file("accel_probe.md"), "\n".join(lines) + "\n")
