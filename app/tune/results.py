"""What a search leaves in its directory, rewritten after every trial (so an interrupted search
has it too): leaderboard.csv and leaderboard.md (every trial, best first, failed ones last) and
best_recipe.py, a recipe file that `python -m app.train --config=` takes as it is; and the
TensorBoard HParams dashboard's experiment and trial sessions (app/tune/hparams.py)."""

import csv
import io
import json
import math
import os

import ml_collections

from app.core import files
from app.tune import hparams
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


def _trial_config(plan, chosen):
  """(the config the trial's app.train ran before resolving: the recipe as written, the search's
  overrides, the trial's values, the lengths in epochs scaled to its train.epochs as app.train
  scales them (app.config.scale_lengths); {key: value} of those scaled lengths)."""
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.core.run_dir import flatten  # pylint: disable=g-import-not-at-top
  as_written = config_lib.load_recipe(plan.recipe)
  trial = ml_collections.ConfigDict(as_written.to_dict())
  for key, value in {**plan.overrides, **chosen}.items():
    config_lib.set_key(trial, key, value)
  before = flatten(trial.to_dict())
  config_lib.scale_lengths(trial, as_written)
  return trial, {key: value for key, value in flatten(trial.to_dict()).items()
                 if value != before[key]}


def best_recipe_text(plan, trial):
  """A recipe of every value the best trial trained with, written out (the searched recipe's,
  the search's command-line overrides, the trial's values, the lengths its app.train scaled), so
  it needs no other file: moved, or sent with or without its search directory, it loads as it
  is. It starts from the schema (configs/default.py, the app's own), so a key the schema gains
  later holds its default."""
  from app.core.run_dir import flatten  # pylint: disable=g-import-not-at-top
  chosen = trial_values(plan, trial.hyperparameters.values)
  config, scaled = _trial_config(plan, chosen)
  values = flatten(config.to_dict())
  groups = [("The searched recipe's values", {}), ("The search's command-line overrides", {}),
            ("The best trial's values", {}),
            ("The lengths in epochs its app.train scaled to its train.epochs "
             "(app.config.scale_lengths)", {})]
  for key, value in values.items():
    group = 3 if key in scaled else 2 if key in chosen else 1 if key in plan.overrides else 0
    groups[group][1][key] = value
  lines = [
      f'r"""The best configuration of the search in {plan.search_dir}:',
      f"trial {trial.trial_id}, {plan.objective.name} {trial.score:.4g}, searched from "
      f"{os.path.basename(plan.recipe)}.",
      "",
      "  python -m app.train --config=best_recipe.py   # from its folder; or pass its path",
      "",
      "Every value is written out below (this file reads no other), so it can be moved or sent",
      "on its own. It trains and validates as the base recipe does (data.validation_split of the",
      f"training split held out; the trials held out {plan.search.validation_split} of it); "
      "written by",
      "python -m app.tune.",
      '"""',
      "",
      "from configs import default",
      "",
      "",
      "def get_config():",
      "  config = default.get_config()  # the schema: every key, with its default",
  ]
  for comment, group in groups:
    if group:
      lines.append(f"  # {comment}")
      lines += [f"  config.{key} = {value!r}" for key, value in group.items()]
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
  hparams.write(plan, trials, _metric)  # TensorBoard's HParams dashboard (app/tune/hparams.py)
