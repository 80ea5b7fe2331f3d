"""app/train/run_profile.py: the whole-run profile (issue 22, item 1): run_profile.json splits a
run's wall time into its phases, and the phases add up to the run's seconds."""

import json
import os

import pytest

from app.train import run_profile


def test_fit_split_takes_the_first_execution_s_excess_as_tracing():
  split = run_profile.FitSplit()
  split.first_execution_seconds, split.execution_seconds, split.executions = 5.0, 14.0, 10
  split.validation_seconds, split.epoch_end_seconds = [2.0, 1.0, 1.0], 0.5
  phases = split.phases(fit_seconds=20.0)
  assert phases["fit_tracing"] == pytest.approx(4.0)  # 5 s against a typical 1 s
  assert phases["fit_steps"] == pytest.approx(10.0)
  assert phases["fit_validation"] == pytest.approx(4.0)
  assert phases["fit_other"] == pytest.approx(20.0 - 4 - 10 - 4 - 0.5)
  assert split.validation_note() == {"validations": 3, "first_seconds": 2.0,
                                     "later_mean_seconds": 1.0}


def test_a_run_writes_its_profile_and_the_phases_add_up_to_its_seconds(trained_run):
  with open(os.path.join(trained_run.run_dir, run_profile.PROFILE_FILE)) as f:
    report = json.load(f)
  phases = {row["phase"]: row["seconds"] for row in report["phases"]}
  assert list(phases) == [p for p in run_profile.PHASES if p in phases]  # in run order
  for phase in ("start_up", "data", "model", "fit_tracing", "fit_steps", "fit_validation",
                "fit_epoch_end", "final_evaluation", "export"):
    assert phases[phase] > 0, (phase, report)
  assert sum(phases.values()) == pytest.approx(report["total_seconds"], abs=0.01)
  assert report["total_seconds"] == pytest.approx(trained_run.metrics["run_seconds"], abs=0.01)
  assert trained_run.metrics["run_profile"] == phases
