"""The later schedules (multistep, polynomial, cosine_restarts, plateau) and warmup for every one."""

import math
import types

import keras
import numpy as np
import pytest

from app.optim import schedules
from configs import default

PEAK, STEPS_PER_EPOCH, TOTAL = 0.4, 10, 100


def optim_config(schedule, **changes):
  optim = default.get_config().optim
  optim.schedule = schedule
  for key, value in changes.items():
    optim[key] = value
  return optim


def rate(schedule, step):
  return float(np.asarray(schedule(step)))


def test_multistep_decays_at_each_listed_epoch():
  s = schedules.build_schedule(optim_config("multistep", step_epochs=(3.0, 6.0), decay_rate=0.5),
                               PEAK, TOTAL, STEPS_PER_EPOCH)
  assert [rate(s, k) for k in (0, 29, 30, 59, 60, 99)] == pytest.approx(
      [0.4, 0.4, 0.2, 0.2, 0.1, 0.1])


def test_polynomial_matches_its_formula():
  s = schedules.build_schedule(optim_config("polynomial", power=2.0, final_fraction=0.1),
                               PEAK, TOTAL, STEPS_PER_EPOCH)
  for step in (0, 25, 50, 100):
    expected = (PEAK - 0.04) * (1 - step / TOTAL) ** 2 + 0.04
    assert rate(s, step) == pytest.approx(expected, rel=1e-5)


def test_cosine_restarts_restart_at_the_peak_with_doubling_cycles():
  s = schedules.build_schedule(optim_config("cosine_restarts", decay_epochs=2.0), PEAK, TOTAL,
                               STEPS_PER_EPOCH)
  assert rate(s, 0) == pytest.approx(PEAK)
  assert rate(s, 10) == pytest.approx(PEAK * 0.5 * (1 + math.cos(math.pi * 10 / 20)), rel=1e-5)
  assert rate(s, 20) == pytest.approx(PEAK)  # first cycle: 20 steps
  assert rate(s, 60) == pytest.approx(PEAK)  # second: 40 steps


@pytest.mark.parametrize("name", schedules.SCHEDULES.names())
def test_warmup_ramps_linearly_to_the_peak(name):
  s = schedules.build_schedule(optim_config(name, warmup_epochs=2.0, step_epochs=(5.0,)), PEAK,
                               TOTAL, STEPS_PER_EPOCH)
  ramp = [rate(s, k) for k in range(20)]
  assert ramp == pytest.approx([PEAK * (k + 1) / 20 for k in range(20)], rel=1e-5)
  assert rate(s, 20) == pytest.approx(PEAK, rel=1e-5)


def test_plateau_lowers_the_rate_after_patience_epochs_without_improvement():
  optim = optim_config("plateau", decay_rate=0.5, plateau_patience=2, final_fraction=0.2)
  s = schedules.build_schedule(optim, PEAK, TOTAL, STEPS_PER_EPOCH)
  reduce = schedules.ReduceOnPlateau(s, optim.decay_rate, optim.plateau_patience,
                                     optim.final_fraction)
  reduce.set_model(types.SimpleNamespace(optimizer=keras.optimizers.SGD(s)))
  for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.93]):  # two epochs without a new best
    reduce.on_epoch_end(epoch, {"val_loss": loss})
  assert rate(s, 50) == pytest.approx(PEAK * 0.5)
  for epoch, loss in enumerate([0.95, 0.94, 0.96, 0.97, 0.98, 0.99], start=4):
    reduce.on_epoch_end(epoch, {"val_loss": loss})
  assert rate(s, 50) == pytest.approx(PEAK * 0.2)  # floored at final_fraction


def test_plateau_says_when_it_lowers_the_rate(caplog):
  caplog.set_level("INFO", logger="absl")  # a SavedModel save leaves absl at WARNING
  optim = optim_config("plateau", decay_rate=0.5, plateau_patience=1, final_fraction=0.25)
  s = schedules.build_schedule(optim, PEAK, TOTAL, STEPS_PER_EPOCH)
  reduce = schedules.ReduceOnPlateau(s, optim.decay_rate, optim.plateau_patience,
                                     optim.final_fraction)
  reduce.set_model(types.SimpleNamespace(optimizer=keras.optimizers.SGD(s)))
  for epoch, loss in enumerate([1.0, 1.1, 1.2, 1.3]):  # cuts at epochs 2 and 3, then floored
    reduce.on_epoch_end(epoch, {"val_loss": loss})
  assert [r.getMessage() for r in caplog.records if "plateau" in r.getMessage()] == [
      "plateau at epoch 2: val_loss has not improved on 1 (optim.plateau_patience=1); "
      "learning rate 0.4 -> 0.2",
      "plateau at epoch 3: val_loss has not improved on 1 (optim.plateau_patience=1); "
      "learning rate 0.2 -> 0.1"]
