"""app/core/staging.py: the next writer removes the staging folders killed writers left, never a
live writer's (issue 19: killed exports left hidden .export-* folders forever)."""

import os
import subprocess
import sys

from app.core import staging

PREFIX = ".export-"


def test_abandoned_folders_are_removed_and_live_ones_kept(tmp_path):
  live, lock = staging.new_folder(str(tmp_path), PREFIX)  # an export under way, here
  dead, dead_lock = staging.new_folder(str(tmp_path), PREFIX)
  staging.release(dead_lock)  # its process died: the kernel dropped its lock
  older = tmp_path / ".export-k2j4x9"  # one an earlier version left, without a lock file
  (older / "model").mkdir(parents=True)
  (tmp_path / "1").mkdir()
  (tmp_path / ".other").mkdir()
  try:
    removed = staging.remove_abandoned(str(tmp_path), PREFIX)
    assert sorted(removed) == sorted([os.path.basename(dead), older.name])
    assert sorted(os.listdir(tmp_path)) == sorted(["1", ".other", os.path.basename(live)])
  finally:
    staging.release(lock)
  assert staging.remove_abandoned(str(tmp_path), PREFIX) == [os.path.basename(live)]


def test_a_folder_another_live_process_writes_is_kept(tmp_path):
  writer = subprocess.Popen(
      [sys.executable, "-c", "import sys; from app.core import staging; "
       f"print(staging.new_folder({str(tmp_path)!r}, {PREFIX!r})[0], flush=True); sys.stdin.read()"],
      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
      cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
  try:
    folder = writer.stdout.readline().strip()
    assert staging.remove_abandoned(str(tmp_path), PREFIX) == []
    assert os.path.isdir(folder)
  finally:
    writer.kill()
    writer.wait()
  assert staging.remove_abandoned(str(tmp_path), PREFIX) == [os.path.basename(folder)]
