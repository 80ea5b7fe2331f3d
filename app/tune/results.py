"""What a search leaves in its directory, rewritten after every trial (so an interrupted search
has it too): leaderboard.csv and leaderboard.md (every trial, best first, failed ones last) and
best_recipe.py, a recipe file that `python -m app.train --config=` takes as it is."""

import csv
import io
import json
import math
import os

import ml_collections

from app.core import files
from app.tune.trials import HYPERBAND_KEYS, trial_values, write_json

_COMPLETED = "COMPLETED"


def _metric(trial, name):
  if not trial.metrics.exists(name):
    return None
  return trial.metrics.get_last_value(name)


def _reason(search_dir, trial):
  """Why a trial failed: KerasTuner's message (a lone search), else the trial's result.json (a
  distributed search: KerasTuner does not send the message to the chief)."""
  lines = (trial.message or "").strip().splitlines()
  if lines:
    return lines[-1].split(": ", 1)[-1]
  path = os.path.join(search_dir, "trials", trial.trial_id, "result.json")
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f).get("reason") or ""
  return ""


def rows(trials, objective, search_dir):
  """One dict per trial, best first: completed trials by score, then the rest by id."""
  def order(trial):
    done = trial.status == _COMPLETED and trial.score is not None and math.isfinite(trial.score)
    score = trial.score if done else 0.0
    return (not done, -score if objective.direction == "max" else score, trial.trial_id)

  table = []
  for rank, trial in enumerate(sorted(trials, key=order), 1):
    values = {k: v for k, v in trial.hyperparameters.values.items()
              if not k.startswith(HYPERBAND_KEYS) or k == "tuner/epochs"}
    table.append({
        "rank": rank, "trial": trial.trial_id, "status": trial.status,
        objective.name: trial.score if trial.status == _COMPLETED else None,
        "val_accuracy": _metric(trial, "val_accuracy"),
        "train_seconds": _metric(trial, "train_seconds"),
        **values,
        "reason": _reason(search_dir, trial) if trial.status != _COMPLETED else "",
    })
  return table


def _cell(value):
  if isinstance(value, float):
    return f"{value:.4g}"
  return "" if value is None else str(value)


def write_leaderboard(search_dir, table):
  columns = list(dict.fromkeys(k for row in table for k in row if k != "reason")) + ["reason"]
  text = io.StringIO()
  writer = csv.DictWriter(text, columns)
  writer.writeheader()
  writer.writerows(table)
  files.write_text(os.path.join(search_dir, "leaderboard.csv"), text.getvalue())
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(_cell(row.get(c)).replace("|", "\\|") for c in columns) + " |"
            for row in table]
  files.write_text(os.path.join(search_dir, "leaderboard.md"), "\n".join(lines) + "\n")


def _scaled_lengths(plan, chosen):
  """{key: value} of the length keys the trial's app.train scaled (its train.epochs differing
  from the recipe's), so the best recipe trains what the trial trained."""
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.core.run_dir import flatten  # pylint: disable=g-import-not-at-top
  as_written = config_lib.load_recipe(plan.recipe)
  trial = ml_collections.ConfigDict(as_written.to_dict())
  for key, value in {**plan.overrides, **chosen}.items():
    config_lib.set_key(trial, key, value)
  before = flatten(trial.to_dict())
  config_lib.scale_lengths(trial, as_written)
  return {key: value for key, value in flatten(trial.to_dict()).items() if value != before[key]}


def best_recipe_text(plan, trial):
  """A recipe that loads the searched recipe by its path (so it works from any directory app.train
  runs in), applies the search's command-line overrides, then the best trial's values."""
  chosen = trial_values(plan, trial.hyperparameters.values)
  lines = [
      f'r"""The best configuration of the search in {os.path.abspath(plan.search_dir)}:',
      f"trial {trial.trial_id}, {plan.objective.name} {trial.score:.4g}.",
      "",
      f"  python -m app.train --config={os.path.abspath(plan.search_dir)}/best_recipe.py",
      "",
      "It trains and validates as the base recipe does (data.validation_split of the training",
      f"split held out; the trials held out {plan.search.validation_split} of it); written by",
      "python -m app.tune.",
      '"""',
      "",
      "import importlib.util",
      "",
      f"BASE_RECIPE = {plan.recipe!r}",
      "",
      "",
      "def get_config():",
      '  spec = importlib.util.spec_from_file_location("base_recipe", BASE_RECIPE)',
      "  base = importlib.util.module_from_spec(spec)",
      "  spec.loader.exec_module(base)",
      "  config = base.get_config()",
  ]
  if plan.overrides:
    lines.append("  # The search's command-line overrides")
    lines += [f"  config.{k} = {v!r}" for k, v in plan.overrides.items()]
  lines.append("  # The best trial's values")
  lines += [f"  config.{k} = {v!r}" for k, v in chosen.items()]
  scaled = _scaled_lengths(plan, chosen)
  if scaled:
    lines.append("  # The lengths in epochs its app.train scaled to its train.epochs "
                 "(app.config.scale_lengths)")
    lines += [f"  config.{k} = {v!r}" for k, v in scaled.items()]
  lines.append("  return config")
  return "\n".join(lines) + "\n"


def write(plan, trials):
  """Leaderboard and, once a trial has completed, best_recipe.py and best_trial.json."""
  trials = list(trials)
  table = rows(trials, plan.objective, plan.search_dir)
  write_leaderboard(plan.search_dir, table)
  best = [t for t in trials if t.trial_id == (table[0]["trial"] if table else None)]
  if best and best[0].status == _COMPLETED:
    files.write_text(os.path.join(plan.search_dir, "best_recipe.py"), best_recipe_text(plan, best[0]))
    write_json(os.path.join(plan.search_dir, "best_trial.json"), table[0])
