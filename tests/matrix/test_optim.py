"""Matrix: every optimizer x {gradient accumulation, clipping, EMA, lookahead}, and every schedule
x {warmup, 1 epoch, 2 epochs}, each paired with both precisions (pairwise), each case a real
two-step-per-epoch run on Fashion-MNIST images whose history must be finite and whose logged rate
must follow the schedule's bounds."""

import csv
import os

import numpy as np
import pytest

from app.optim.optimizers import OPTIMIZERS
from app.optim.schedules import SCHEDULES
from tests.matrix.conftest import case_id, pairwise, run, tiny_config

EXTRAS = {  # the four extras; clipping alternates between its two forms
    "accumulation": {"optim.gradient_accumulation_steps": 2},
    "clipping": {"optim.clipnorm": 1.0},
    "ema": {"optim.ema": True},
    "lookahead": {"optim.lookahead_every": 2},
}
LENGTHS = {
    "warmup": {"train.epochs": 2, "optim.warmup_epochs": 0.5},
    "1_epoch": {"train.epochs": 1},
    "2_epochs": {"train.epochs": 2},
}
# Every optimizer x extra pair with both precisions (pairwise: 32 cases), and over the same runs
# every schedule x length pair (27 of them, taken in turn), so one run checks one of each.
SCHEDULE_LENGTHS = [(s, n) for s in SCHEDULES.names() for n in LENGTHS]
CASES = pairwise(optimizer=OPTIMIZERS.names(), extra=list(EXTRAS),
                 precision=("mixed_bfloat16", "float32"))
for number, case in enumerate(CASES):
  case["schedule"], case["length"] = SCHEDULE_LENGTHS[number % len(SCHEDULE_LENGTHS)]
  if case["extra"] == "clipping" and number % 2:
    case["extra"] = "clipvalue"
EXTRAS["clipvalue"] = {"optim.clipvalue": 0.5}


def test_every_schedule_length_pair_is_a_case():
  assert len(CASES) >= len(SCHEDULE_LENGTHS)
  assert {(c["schedule"], c["length"]) for c in CASES} == set(SCHEDULE_LENGTHS)


def _history(config):
  with open(os.path.join(config.output_dir, "history.csv")) as f:
    return list(csv.DictReader(f))


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_optimizer_extra_schedule_length(case, tmp_path, restore_precision):
  peak = 0.05 if case["optimizer"] in ("sgd", "adagrad") else 2e-3
  config = tiny_config(tmp_path, **{
      "export.enabled": False, "runtime.mixed_precision": case["precision"],
      "optim.name": case["optimizer"], "optim.learning_rate": peak,
      "optim.schedule": case["schedule"], **EXTRAS[case["extra"]], **LENGTHS[case["length"]]})
  metrics = run(config)
  epochs = config.train.epochs
  assert np.isfinite(metrics["test_loss"]) and metrics["epochs_completed"] == epochs
  rows = _history(config)
  assert [int(r["epoch"]) for r in rows] == list(range(epochs))
  assert all(np.isfinite(float(r["loss"])) for r in rows)
  rates = [float(r["learning_rate"]) for r in rows]
  assert all(0 <= rate <= peak * (1 + 1e-6) for rate in rates), rates
