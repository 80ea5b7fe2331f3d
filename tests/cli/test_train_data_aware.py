"""End to end: app.train on a folder of photos with no --config runs the data-aware recipe
(configs/data_aware.py) within --time_budget, named after the data."""

import json

import numpy as np
import yaml
from PIL import Image

from tests import commands


def _photos(root, per_class=12):
  rng = np.random.default_rng(1)
  sizes = [(60, 80), (96, 72), (75, 100), (120, 90)]  # photos of several sizes, both orientations
  for label, tint in (("cats", 0), ("dogs", 1)):
    (root / "train" / label).mkdir(parents=True)
    for index in range(per_class):
      height, width = sizes[index % len(sizes)]
      pixels = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
      pixels[..., tint] += 120  # a colour the classes differ by
      Image.fromarray(pixels).save(root / "train" / label / f"{index}.jpg")
  return root


def test_budgeted_data_aware_run_fits_its_budget_and_is_named_after_the_data(tmp_path):
  """With the range test's rate (learning_rate_from=auto) inside the budget too."""
  folder = _photos(tmp_path / "pets")
  run_dir, exports, budget = tmp_path / "run", tmp_path / "exports", 40.0
  # A small net (kept: the command line's) so that tracing leaves the 40 s some epochs (on 2 busy cores).
  result = commands.run("app.train", "--dataset=folder", f"--data_dir={folder}",
                        "--model=simple_cnn", "--config.model.width=8",
                        "--config.optim.learning_rate_from=auto",
                        f"--time_budget={budget:g}s", f"--output_dir={run_dir}",
                        f"--export_dir={exports}", timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  choices = json.loads((run_dir / "data_aware.json").read_text())
  chosen = {choice["key"]: choice["value"] for choice in choices["chosen"]}
  # The command line's family, and none of the profile's model keys with it.
  assert chosen["name"] == "pets" and not [key for key in chosen if key.startswith("model.")]
  assert chosen["data.image_size"] == 64  # <= the photos' median shorter side (75)
  metrics = json.loads((run_dir / "metrics.json").read_text())
  assert metrics["export_path"] == str(exports / "pets" / "1")
  plan = metrics["time_budget"]
  assert plan["budget_seconds"] == budget and plan["planned_epochs"] >= 2
  # The bound (issue 18: within 10%), on the command's own clock, export included.
  assert plan["actual_seconds"] == metrics["run_seconds"] <= 1.1 * budget and plan["within_budget"]
  saved = yaml.safe_load((run_dir / "config.yaml").read_text())
  suggested = json.loads((run_dir / "lr_find.json").read_text())["suggested_learning_rate"]
  assert saved["optim"]["learning_rate"] == suggested > 0
  assert saved["train"]["epochs"] == plan["planned_epochs"] == metrics["epochs_completed"] or \
      metrics["stopped_by_time_budget"]
  assert json.loads((run_dir / "time_budget.json").read_text())["planned_epochs"] == \
      plan["planned_epochs"]
