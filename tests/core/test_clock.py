"""The command's clock and --time_budget's durations."""

import time

import pytest

from app.core import clock


@pytest.mark.parametrize("text, seconds", [
    ("5m", 300.0), ("90s", 90.0), ("90", 90.0), ("1h30m", 5400.0), ("1.5h", 5400.0),
    ("2m 30s", 150.0), ("45S", 45.0)])
def test_durations(text, seconds):
  assert clock.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "0", "-3", "5mm", "m", "5 minutes", "1e3"])
def test_not_durations(text):
  assert clock.parse_duration(text) is None


def test_process_seconds_counts_from_the_process_start_and_runs_on():
  first = clock.process_seconds()
  time.sleep(0.05)
  assert 0 < first < clock.process_seconds() < first + 5
