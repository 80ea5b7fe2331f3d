"""app/core/summaries.py: each write leaves one whole event file in its log dir, replacing the
earlier ones unless told to add; a write that fails leaves nothing behind."""

import os

import pytest

from app.core import summaries
from tests import tensorboard_events


def _scalar(value):
  return summaries.scalars({"x": value}, prefix="a/")


def test_a_write_replaces_the_earlier_event_files_unless_it_adds(tmp_path):
  log_dir = str(tmp_path / "tensorboard" / "schedule")
  summaries.write(log_dir, _scalar(1.0))
  summaries.write(log_dir, _scalar(2.0))
  assert len(summaries.event_files(log_dir)) == 1 and sorted(os.listdir(log_dir)) == [
      os.path.basename(summaries.event_files(log_dir)[0])]  # no staging folder left
  assert tensorboard_events.runs(tmp_path)["tensorboard/schedule"]["a/x"] == ("scalars", [(0, 2.0)])
  summaries.write(log_dir, _scalar(3.0), replace=False)
  assert len(summaries.event_files(log_dir)) == 2


def test_a_failed_write_leaves_the_earlier_file_and_no_staging_folder(tmp_path):
  log_dir = str(tmp_path / "run")
  summaries.write(log_dir, _scalar(1.0))
  before = summaries.event_files(log_dir)

  def broken():
    yield summaries.scalar("y", 1.0)
    raise RuntimeError("killed midway")

  with pytest.raises(RuntimeError):
    summaries.write(log_dir, broken())
  assert sorted(os.listdir(log_dir)) == [os.path.basename(p) for p in before]
