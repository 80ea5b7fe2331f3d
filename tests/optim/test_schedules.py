"""app/optim/schedules.py: each schedule's learning rate at chosen steps, against its formula."""

import math

import keras
import numpy as np
import pytest

from app.optim import schedules
from configs import default

PEAK = 0.4
STEPS_PER_EPOCH = 10
TOTAL_STEPS = 100


def optim_config(schedule, warmup_epochs=0.0, **changes):
  optim = default.get_config().optim
  optim.schedule = schedule
  optim.warmup_epochs = warmup_epochs
  for key, value in changes.items():
    optim[key] = value
  return optim


def rates(optim, steps, total_steps=TOTAL_STEPS):
  schedule = schedules.build_schedule(optim, PEAK, total_steps, STEPS_PER_EPOCH)
  return np.array([float(schedule(step)) for step in steps])


def test_names():
  assert schedules.SCHEDULES.names() == [
      "constant", "cosine", "cosine_restarts", "exponential", "multistep", "onecycle", "plateau",
      "polynomial", "step"]


def test_onecycle_with_warmup():
  optim = optim_config("onecycle", warmup_epochs=2.0, final_fraction=0.1)  # 20 warmup steps
  warmup = 20
  ramp = rates(optim, range(warmup))
  np.testing.assert_allclose(ramp[0], PEAK / warmup, rtol=1e-6)
  np.testing.assert_allclose(np.diff(ramp), PEAK / warmup, rtol=1e-4)  # linear
  np.testing.assert_allclose(ramp[-1], PEAK, rtol=1e-6)
  steps = np.arange(warmup, TOTAL_STEPS + 1)
  decay = rates(optim, steps)
  np.testing.assert_allclose(decay[0], PEAK, rtol=1e-6)  # the peak where warmup ends
  expected = PEAK * (1 - 0.9 * (steps - warmup) / (TOTAL_STEPS - warmup))
  np.testing.assert_allclose(decay, expected, rtol=1e-5)
  np.testing.assert_allclose(decay[-1], 0.1 * PEAK, rtol=1e-5)
  np.testing.assert_allclose(rates(optim, [TOTAL_STEPS + 50]), 0.1 * PEAK, rtol=1e-5)


def test_onecycle_without_warmup_starts_at_peak():
  np.testing.assert_allclose(rates(optim_config("onecycle"), [0, 50, 100]), [PEAK, PEAK / 2, 0],
                             rtol=1e-6, atol=1e-7)


def test_constant():
  np.testing.assert_allclose(rates(optim_config("constant"), [0, 1, 57, 1000]), PEAK, rtol=1e-6)


def test_constant_with_warmup():
  values = rates(optim_config("constant", warmup_epochs=0.5), [0, 1, 4, 5, 99])  # 5 warmup steps
  np.testing.assert_allclose(values, [PEAK / 5, 2 * PEAK / 5, PEAK, PEAK, PEAK], rtol=1e-6)


@pytest.mark.parametrize("warmup_epochs, alpha", [(0.0, 0.0), (1.0, 0.05)])
def test_cosine_after_warmup_matches_formula(warmup_epochs, alpha):
  optim = optim_config("cosine", warmup_epochs=warmup_epochs, final_fraction=alpha)
  warmup = int(warmup_epochs * STEPS_PER_EPOCH)
  decay_steps = TOTAL_STEPS - warmup
  steps = np.arange(warmup, TOTAL_STEPS + 1)
  t = steps - warmup
  expected = PEAK * (alpha + (1 - alpha) * 0.5 * (1 + np.cos(np.pi * t / decay_steps)))
  np.testing.assert_allclose(rates(optim, steps), expected, rtol=1e-5, atol=1e-7)
  if warmup:
    np.testing.assert_allclose(rates(optim, [0, warmup - 1]), [PEAK / warmup, PEAK], rtol=1e-6)


def test_step_decays_by_rate_every_decay_epochs():
  optim = optim_config("step", decay_epochs=3.0, decay_rate=0.1)  # every 30 steps
  values = rates(optim, [0, 29, 30, 59, 60, 95])
  np.testing.assert_allclose(values, PEAK * np.array([1, 1, 0.1, 0.1, 0.01, 0.001]), rtol=1e-5)


def test_step_counts_decay_from_warmup_end():
  optim = optim_config("step", warmup_epochs=1.0, decay_epochs=3.0, decay_rate=0.5)
  values = rates(optim, [0, 9, 10, 39, 40, 70])
  np.testing.assert_allclose(values, PEAK * np.array([0.1, 1, 1, 1, 0.5, 0.25]), rtol=1e-5)


def test_exponential_is_smooth():
  optim = optim_config("exponential", decay_epochs=2.0, decay_rate=0.5)  # halves every 20 steps
  steps = np.array([0, 5, 10, 20, 33, 80])
  np.testing.assert_allclose(rates(optim, steps), PEAK * 0.5 ** (steps / 20), rtol=1e-5)


@pytest.mark.parametrize("name", ["constant", "cosine", "onecycle", "step", "exponential"])
def test_schedule_survives_serialization(name):
  """Optimizers save their schedule in .keras files and checkpoints."""
  optim = optim_config(name, warmup_epochs=1.0, final_fraction=0.1)
  schedule = schedules.build_schedule(optim, PEAK, TOTAL_STEPS, STEPS_PER_EPOCH)
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
  for step in (0, 5, 10, 47, 100):
    assert math.isclose(float(restored(step)), float(schedule(step)), rel_tol=1e-6)
