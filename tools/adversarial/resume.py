"""Adversarial cases: resume (see tools/adversarial/__init__.py). Issue 19's items 6 (killed during
the final evaluation or the export), 7 (a step backup on an epoch's last batch), 9 (a resumed
run's clock) and 10 (killed exports' staging folders), through real `python -m app.<command>`
processes killed at exact points by the testing hook app/core/crash_points.py (SIGKILL)."""

import csv
import glob
import json
import os
import sys

from tools.adversarial.common import Case, command, TINY, same_weights

TWO_EPOCHS = (*TINY[:2], "--epochs=2", *TINY[3:])  # 230 training images: 4 steps an epoch
WITH_EXPORT = tuple(f for f in TWO_EPOCHS if not f.startswith("--config.export.enabled"))
KILLED = -9


def _crash(point, **more):
  return dict(CONVTRAIN_CRASH_AT=point, **more)


def _last_line(text):
  lines = [line for line in text.strip().splitlines() if line.strip()]
  return lines[-1][:160] if lines else ""


def _metrics(run_dir):
  with open(os.path.join(run_dir, "metrics.json")) as f:
    return json.load(f)


def _history(run_dir):
  with open(os.path.join(run_dir, "history.csv"), newline="") as f:
    rows = list(csv.reader(f))
  return rows[0], rows[1:]


def _killed_then_again(work, point, flags):
  """Runs app.train with `flags` killed at `point`, then the same command again; returns
  (run dir, the rerun's result, None), or (run dir, result, why not) when either went wrong."""
  run_dir = os.path.join(work, "killed")
  killed = command("app.train", *flags, f"--output_dir={run_dir}", env=_crash(point))
  if killed.returncode != KILLED:
    return run_dir, killed, f"the kill at {point} did not happen (exit status " \
        f"{killed.returncode}: {_last_line(killed.stderr)})"
  again = command("app.train", *flags, f"--output_dir={run_dir}")
  if again.returncode != 0:
    return run_dir, again, f"the rerun exited with {again.returncode}: {_last_line(again.stderr)}"
  return run_dir, again, None


def _same_test_figures(run_dir, work, flags):
  """(held, detail): the run's test loss is the uninterrupted run's (the same weights)."""
  reference = os.path.join(work, "reference")
  result = command("app.train", *flags, f"--output_dir={reference}")
  if result.returncode != 0:
    return False, "the uninterrupted run failed: " + _last_line(result.stderr)
  ours, theirs = _metrics(run_dir)["test_loss"], _metrics(reference)["test_loss"]
  return abs(ours - theirs) <= 1e-6, f"test loss {ours:.6f}, uninterrupted {theirs:.6f}"


def killed_in_final_evaluation(work):
  run_dir, _, problem = _killed_then_again(work, "evaluate", TWO_EPOCHS)
  if problem:
    return False, problem
  held, detail = _same_test_figures(run_dir, work, TWO_EPOCHS)
  return held, "finished without training again; " + detail


def killed_in_export(work):
  exports = os.path.join(work, "exports")
  flags = (*WITH_EXPORT, f"--export_dir={exports}")
  run_dir, _, problem = _killed_then_again(work, "export", flags)
  if problem:
    return False, problem
  left = sorted(os.path.relpath(p, exports) for p in glob.glob(os.path.join(exports, "*", "*")))
  if left != ["fashion_mnist/1"]:
    return False, f"the export dir holds {left}, not one version"
  held, detail = _same_test_figures(run_dir, work, flags[:-1] + (f"--export_dir={work}/other",))
  return held, "exported once; " + detail


def search_trial_killed_in_final_evaluation(work):
  search_dir = os.path.join(work, "search")
  flags = ("app.tune", f"--search_dir={search_dir}", "--tuner=random", "--max_trials=1",
           "--config.data.limit=256", "--config.train.epochs=1", "--config.model.width=4",
           "--config.train.batch_size=64", "--search_time_budget_seconds=600",
           "--config.search.space=optim.learning_rate=log(0.01, 0.1)")
  killed = command(*flags, env=_crash("evaluate", CONVTRAIN_CRASH_PARENT="1"))
  if killed.returncode != KILLED:
    return False, f"the kill did not happen (exit status {killed.returncode})"
  again = command(*flags)
  if again.returncode != 0:
    return False, f"the search's rerun exited with {again.returncode}: {_last_line(again.stderr)}"
  with open(os.path.join(search_dir, "trials", "0", "result.json")) as f:
    result = json.load(f)
  return result["status"] == "COMPLETED", f"trial 0: {result['status']} {result['reason'] or ''}"


def step_backup_on_an_epoch_s_last_batch(work):
  flags = (*TWO_EPOCHS, "--config.train.backup_every_steps=4")
  run_dir, again, problem = _killed_then_again(work, "batch_end:4", flags)  # epoch 1's last
  if problem or "ran out of data" in again.stderr:
    return False, problem or "Keras ran out of data: " + _last_line(again.stderr)
  header, rows = _history(run_dir)
  if len(rows) != 2 or any(len(row) != len(header) for row in rows):
    return False, f"history.csv has {len(rows)} rows of widths {[len(r) for r in rows]}"
  reference = os.path.join(work, "reference")
  result = command("app.train", *flags, f"--output_dir={reference}")
  if result.returncode != 0:
    return False, "the uninterrupted run failed: " + _last_line(result.stderr)
  return same_weights(run_dir, reference)


def an_earlier_version_s_last_step_backup(work):
  """A backup state.json saying an epoch's every step is done, as earlier versions wrote it."""
  flags = (*TWO_EPOCHS, "--config.train.backup_every_steps=2")
  run_dir = os.path.join(work, "killed")
  killed = command("app.train", *flags, f"--output_dir={run_dir}", env=_crash("batch_end:3"))
  if killed.returncode != KILLED:
    return False, f"the kill did not happen (exit status {killed.returncode})"
  state_path = os.path.join(run_dir, "backup", "state.json")
  with open(state_path) as f:
    state = json.load(f)
  with open(state_path, "w") as f:
    json.dump(dict(state, batches_done=4), f)
  again = command("app.train", *flags, f"--output_dir={run_dir}")
  if again.returncode != 0:
    return False, f"the rerun exited with {again.returncode}: {_last_line(again.stderr)}"
  header, rows = _history(run_dir)
  widths_ok = all(len(row) == len(header) for row in rows)
  return widths_ok and "taken on the last step" in again.stderr, \
      f"resumed at epoch 2; history.csv rows {len(rows)}, widths {'ok' if widths_ok else 'wrong'}"


def resumed_clock_goes_on(work):
  run_dir, _, problem = _killed_then_again(work, "epoch_end:1", TWO_EPOCHS)
  if problem:
    return False, problem
  header, rows = _history(run_dir)
  clocks = [float(row[header.index("elapsed_seconds")]) for row in rows]
  train_seconds = _metrics(run_dir)["train_seconds"]
  held = clocks[1] > clocks[0] and train_seconds >= clocks[1]
  return held, f"elapsed_seconds per epoch {clocks[0]:.1f}, {clocks[1]:.1f}; train_seconds " \
      f"{train_seconds:.1f}"


def resumed_time_budget_counts_the_killed_time(work):
  budget = 8.0
  flags = (*TINY[:2], "--epochs=200", *TINY[3:], f"--config.train.time_budget_seconds={budget}")
  run_dir, _, problem = _killed_then_again(work, "epoch_end:3", flags)
  if problem:
    return False, problem
  metrics = _metrics(run_dir)
  header, rows = _history(run_dir)
  clocks = [float(row[header.index("elapsed_seconds")]) for row in rows]
  held = (metrics["stopped_by_time_budget"] and clocks == sorted(clocks)
          and budget <= metrics["train_seconds"] < budget + 3)
  return bool(held), f"{clocks[2]:.1f} s when killed after epoch 3, epoch 4 at {clocks[3]:.1f} " \
      f"s; train_seconds {metrics['train_seconds']:.1f} of a {budget:g} s budget"


def killed_export_leaves_no_staging_folder(work):
  run_dir, exports = os.path.join(work, "run"), os.path.join(work, "exports")
  trained = command("app.train", *TINY, f"--output_dir={run_dir}")
  if trained.returncode != 0:
    return False, "training failed: " + _last_line(trained.stderr)
  export = ("app.export", f"--run_dir={run_dir}", f"--export_dir={exports}")
  killed = command(*export, env=_crash("export"))
  hidden = glob.glob(os.path.join(exports, "*", ".export-*"))
  if killed.returncode != KILLED or not hidden:
    return False, f"the kill did not leave a staging folder (exit status {killed.returncode})"
  again = command(*export)
  if again.returncode != 0:
    return False, f"the next export exited with {again.returncode}: {_last_line(again.stderr)}"
  left = sorted(os.listdir(os.path.dirname(hidden[0])))
  return left == ["1"], f"after the next export: {left}"


CASES = [
    Case(6, "killed_in_final_evaluation", killed_in_final_evaluation),
    Case(6, "killed_in_export", killed_in_export),
    Case(6, "search_trial_killed_in_final_evaluation", search_trial_killed_in_final_evaluation),
    Case(7, "step_backup_on_an_epoch_s_last_batch", step_backup_on_an_epoch_s_last_batch),
    Case(7, "an_earlier_version_s_last_step_backup", an_earlier_version_s_last_step_backup),
    Case(9, "resumed_clock_goes_on", resumed_clock_goes_on),
    Case(9, "resumed_time_budget_counts_the_killed_time",
         resumed_time_budget_counts_the_killed_time),
    Case(10, "killed_export_leaves_no_staging_folder", killed_export_leaves_no_staging_folder),
]

if __name__ == "__main__":
  sys.exit("run through tools/replay_adversarial.py --only=resume")
