"""app/core/ownership.py: a directory has one owner process, a live owner is refused with one line
naming it, a dead one's lock is taken over (and logged), and a lock file is no content. Through
the commands: a search directory and a backup folder owned by a live process are refused."""

import contextlib
import logging
import os
import signal
import subprocess
import sys

import pytest

from app.core import ownership
from app.core.errors import UsageError
from tests import commands

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ("--model=simple_cnn", "--mixed_precision=float32", "--epochs=1", "--batch_size=64",
        "--config.data.limit=256", "--config.export.enabled=false")


@contextlib.contextmanager
def owned_by_another_process(*paths):
  """A live process (Python without TensorFlow: ~0.2 s) owning the directories `paths` until
  the block ends; yields it (subprocess.Popen)."""
  code = ("import sys\nfrom app.core import ownership\nfor path in sys.argv[1:]:\n"
          "  ownership.claim(path, 'dir', 'fix')\nprint('owned', flush=True)\nsys.stdin.read()")
  process = subprocess.Popen([sys.executable, "-c", code, *map(str, paths)], cwd=REPO,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  try:
    assert process.stdout.readline().strip() == "owned"
    yield process
  finally:
    process.kill()
    process.wait()


def last_line(result):
  return result.stderr.strip().splitlines()[-1]


def test_a_live_owner_is_refused_naming_it_and_a_dead_ones_lock_is_taken_over(tmp_path, caplog):
  path = str(tmp_path / "run")
  with owned_by_another_process(path) as owner:
    with pytest.raises(UsageError) as refused:
      ownership.claim(path, "output dir", "pass a new --output_dir")
    message = str(refused.value)
    assert f"output dir {path} is in use by pid {owner.pid} on " in message
    assert f"(or stop it: kill {owner.pid}), or pass a new --output_dir" in message
    assert not ownership.owns(path)
    owner.send_signal(signal.SIGKILL)  # dies holding it: the kernel drops the lock
    owner.wait()
  with caplog.at_level(logging.WARNING):
    previous = ownership.claim(path, "output dir", "pass a new --output_dir")
  assert previous["pid"] == owner.pid and ownership.owns(path)
  assert f"was owned by pid {owner.pid}" in caplog.text and "which has ended" in caplog.text
  assert ownership.read_owner(path)["pid"] == os.getpid()
  assert ownership.claim(path, "output dir", "fix") == previous  # this process owns it already


def test_a_directory_without_a_lock_file_is_left_alone_until_made(tmp_path):
  path = tmp_path / "new"
  assert ownership.claim(str(path), "search dir", "fix", create=False) is None
  assert not path.exists()  # bad input found later writes nothing
  ownership.claim(str(path), "search dir", "fix")
  assert os.listdir(path) == [ownership.LOCK_FILE]
  assert ownership.is_empty(str(path))  # the lock file is no content
  (path / "config.yaml").write_text("")
  assert not ownership.is_empty(str(path))


def test_a_directory_removed_and_made_again_is_claimed_anew(tmp_path):
  path = tmp_path / "search"
  ownership.claim(str(path), "search dir", "fix")
  (path / ownership.LOCK_FILE).unlink()  # as --overwrite empties a search dir
  assert not ownership.owns(str(path))
  ownership.claim(str(path), "search dir", "fix")
  assert ownership.owns(str(path))


def test_a_search_dir_of_a_live_search_is_refused(tmp_path):
  search_dir = tmp_path / "search"
  with owned_by_another_process(search_dir) as owner:
    for extra in ((), ("--overwrite",)):  # --overwrite never empties a live search's directory
      result = commands.run("app.tune", f"--search_dir={search_dir}", "--max_trials=1",
                            "--config.data.limit=256", "--config.train.epochs=1",
                            "--config.search.space=optim.learning_rate=log(0.01, 0.1)", *extra)
      assert result.returncode == 2, result.stderr[-2000:]
      assert "Traceback" not in result.stderr
      assert last_line(result).startswith(f"error: search dir {search_dir} is in use by pid "
                                          f"{owner.pid}")
      assert last_line(result).endswith("or pass another --search_dir")
  assert os.listdir(search_dir) == [ownership.LOCK_FILE]


def test_a_backup_dir_of_a_live_run_is_refused(tmp_path):
  backup_dir = tmp_path / "shared_backup"
  with owned_by_another_process(backup_dir) as owner:
    result = commands.run("app.train", *TINY, f"--output_dir={tmp_path / 'run'}",
                          f"--config.train.backup_dir={backup_dir}")
  assert result.returncode == 2, result.stderr[-2000:]
  assert last_line(result).startswith(f"error: backup dir {backup_dir} is in use by pid "
                                      f"{owner.pid}")
  assert not (tmp_path / "run").exists()  # refused before anything was written
