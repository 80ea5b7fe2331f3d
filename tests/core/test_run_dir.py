"""app/core/run_dir.py: a run directory is new, empty or resumable, its config is read back with
keys the schema gained since, and a resumed run must be started with the same settings. Its
ownership: one process trains into it at a time, a run killed before its first backup starts
over, and no run resumes from another's backup."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import zipfile

import h5py
import numpy as np
import pytest
import yaml

from app import config as config_lib
from app.core import ownership
from app.core.errors import UsageError
from app.core.run_dir import RunDir
from configs import default
from tests import commands
from tests.core.test_ownership import owned_by_another_process

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_missing_run_dir(tmp_path):
  with pytest.raises(UsageError, match="is not a run directory"):
    RunDir(str(tmp_path)).load_config()
  assert RunDir(str(tmp_path)).load_metrics() == {}


def test_a_run_config_gains_keys_added_to_the_schema_since(tmp_path):
  saved = default.get_config().to_dict()
  del saved["export"]["formats"]
  saved["name"] = "old"
  (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
  config = RunDir(str(tmp_path)).load_config()
  assert config.name == "old" and config.export.formats == ""


def test_checkpoint_names():
  assert RunDir("r").checkpoint("best") == os.path.join("r", "checkpoints", "best.keras")
  assert RunDir("r").checkpoint("last") == os.path.join("r", "checkpoints", "last.keras")
  assert RunDir("r").checkpoint("/x/model.keras") == "/x/model.keras"


def test_new_or_resumable_resumes_only_an_unfinished_run(tmp_path):
  backup = tmp_path / "backup"
  backup.mkdir()
  (backup / "state.json").write_text('{"epoch": 1, "batches_done": 8, "weights": "w"}')
  RunDir(str(tmp_path), str(backup)).check_new_or_resumable()  # a killed run: resumed
  (tmp_path / "metrics.json").write_text("{}")
  with pytest.raises(UsageError, match="already exists"):  # a finished run: never overwritten
    RunDir(str(tmp_path), str(backup)).check_new_or_resumable()


def test_new_or_resumable_refuses_non_empty_dir(tmp_path):
  (tmp_path / "metrics.json").write_text("{}")
  with pytest.raises(UsageError, match=str(tmp_path)):
    RunDir(str(tmp_path)).check_new_or_resumable()


def test_new_or_resumable_accepts_empty_or_new_dir(tmp_path):
  RunDir(str(tmp_path)).check_new_or_resumable()
  RunDir(str(tmp_path / "new")).check_new_or_resumable()


def _started(tmp_path, config):
  run = RunDir(config.output_dir, config.train.backup_dir)
  run.create()
  run.save_config(config)
  os.makedirs(run.backup_dir)
  with open(os.path.join(run.backup_dir, "state.json"), "w") as f:
    f.write('{"epoch": 1, "batches_done": 0, "weights": "w"}')
  return run


def test_started_config_is_the_saved_one_and_refuses_other_settings(tmp_path):
  config = default.get_config()
  config.output_dir = str(tmp_path / "run")
  resolved = config_lib.resolve(config)
  run = _started(tmp_path, resolved)
  as_saved = yaml.safe_load(yaml.safe_dump(resolved.to_dict()))  # tuples come back as lists
  assert run.started_config(resolved).to_dict() == as_saved
  config.seed = 7
  with pytest.raises(UsageError, match="seed: 0 -> 7"):
    run.started_config(config_lib.resolve(config))


def test_a_key_added_since_the_run_started_counts_as_unchanged(tmp_path):
  config = default.get_config()
  config.output_dir = str(tmp_path / "run")
  resolved = config_lib.resolve(config)
  run = _started(tmp_path, resolved)
  saved = yaml.safe_load(open(run.file("config.yaml")))
  del saved["optim"]["warmup_fraction"], saved["derived"]  # written before those keys existed
  with open(run.file("config.yaml"), "w") as f:
    yaml.safe_dump(saved, f)
  assert run.started_config(resolved) is not None


def test_a_run_resumes_under_other_gpu_memory_settings(tmp_path):
  """How a process shares its GPUs is the machine's choice: a run that ran out of GPU memory
  resumes with --gpu_memory_limit, or without growth."""
  config = default.get_config()
  config.output_dir = str(tmp_path / "run")
  run = _started(tmp_path, config_lib.resolve(config))
  config.runtime.gpu_memory_limit, config.runtime.gpu_memory_growth = "6GiB", False
  assert run.started_config(config_lib.resolve(config)) is not None
  config.runtime.mixed_precision = "mixed_bfloat16"  # the numerics are the run's: refused
  with pytest.raises(UsageError, match="runtime.mixed_precision: 'float32' -> 'mixed_bfloat16'"):
    run.started_config(config_lib.resolve(config))


def test_a_run_started_on_a_terminal_resumes_in_a_log(tmp_path):
  """train.progress is how the process prints, not what it trains (issue 21)."""
  config = default.get_config()
  config.output_dir = str(tmp_path / "run")
  config.train.progress = "bar"
  run = _started(tmp_path, config_lib.resolve(config))
  config.train.progress = "epoch"
  assert run.started_config(config_lib.resolve(config)) is not None


# === Issue 19 (1, 2, 8): ownership of run and backup directories ===


def _resolved(output_dir, **values):
  config = default.get_config()
  config.output_dir = str(output_dir)
  for key, value in values.items():
    config_lib.set_key(config, key.replace("__", "."), value)
  return config_lib.resolve(config)


def _begun(config, chief=True):
  """What train_and_evaluate does to a run directory before it trains (this process owns it)."""
  run = RunDir(config.output_dir, config.train.backup_dir)
  run.check_new_or_resumable(config, chief=chief)
  run.create()
  run.save_config(config)
  return run


def test_a_lock_file_is_no_content_and_a_finished_run_stays_finished(tmp_path):
  config = _resolved(tmp_path / "run")
  run = RunDir(config.output_dir, config.train.backup_dir)
  run.check_new_or_resumable(config)
  run.create()  # killed here: nothing but the lock file, an empty directory
  RunDir(config.output_dir).check_new_or_resumable(config)
  run.write_json("metrics.json", {})
  with pytest.raises(UsageError, match="already exists and is not empty"):
    RunDir(config.output_dir).check_new_or_resumable(config)


def test_a_run_killed_before_its_first_backup_starts_over_and_other_settings_are_refused(tmp_path):
  """Issue 19 (8): config.yaml and no backup made the rerun 'already exists and is not empty'."""
  config = _resolved(tmp_path / "run", train__backup_dir=str(tmp_path / "backup"))
  run = _begun(config)
  (tmp_path / "run" / "history.csv").write_text("epoch,loss\n")
  with pytest.raises(UsageError, match=r"started with other settings \(seed: 0 -> 7\)"):
    RunDir(config.output_dir, config.train.backup_dir).check_new_or_resumable(
        _resolved(tmp_path / "run", train__backup_dir=str(tmp_path / "backup"), seed=7))
  again = RunDir(config.output_dir, config.train.backup_dir)
  again.check_new_or_resumable(config)
  assert os.path.exists(run.file("history.csv"))  # nothing removed before create()
  again.create()
  assert os.listdir(run.path) == [".lock"]  # started over: the killed attempt's files are gone
  assert json.loads((tmp_path / "backup" / "run.json").read_text())["config"]["seed"] == 0


def _backed_up(output_dir, backup_dir, **values):
  """A run killed after its first backup, in `backup_dir` (its run.json written by save_config)."""
  config = _resolved(output_dir, train__backup_dir=str(backup_dir), **values)
  _begun(config)
  (backup_dir / "weights-1-0.weights.h5").write_text("weights")
  (backup_dir / "state.json").write_text('{"epoch": 1, "batches_done": 0, '
                                         '"weights": "weights-1-0.weights.h5"}')
  ownership.release(config.output_dir)  # the run is over, as if killed
  ownership.release(str(backup_dir))
  return config


def _contents(folder):
  return {name: (folder / name).read_bytes() for name in os.listdir(folder)}


def test_a_new_run_never_takes_over_another_runs_backup(tmp_path):
  """Issue 19 (1): a second run sharing --config.train.backup_dir resumed from the first's backup
  (and deleted it); the check compared config.yaml only when the output dir existed."""
  shared = tmp_path / "shared"
  first = _backed_up(tmp_path / "first", shared)
  before = _contents(shared)
  second = _resolved(tmp_path / "second", train__backup_dir=str(shared), seed=7)
  with pytest.raises(UsageError) as refused:
    RunDir(second.output_dir, second.train.backup_dir).check_new_or_resumable(second)
  assert str(refused.value) == (
      f"backup dir {shared} holds the backup of the run in {tmp_path / 'first'}, not of "
      f"{tmp_path / 'second'} (its settings: seed: 0 -> 7); pass another "
      f"--config.train.backup_dir, or resume that run with its flags and "
      f"--output_dir={tmp_path / 'first'}")
  same_flags = _resolved(tmp_path / "second", train__backup_dir=str(shared))
  with pytest.raises(UsageError, match="holds the backup of the run in"):
    RunDir(same_flags.output_dir, str(shared)).check_new_or_resumable(same_flags)
  assert _contents(shared) == before  # untouched
  RunDir(first.output_dir, str(shared)).check_new_or_resumable(first)  # its own run resumes


def test_a_backup_dir_that_names_no_run_is_refused(tmp_path):
  """A folder of someone else's files is never used, nor removed when the run ends."""
  folder = tmp_path / "photos"
  folder.mkdir()
  (folder / "cat.jpg").write_text("")
  config = _resolved(tmp_path / "run", train__backup_dir=str(folder))
  with pytest.raises(UsageError, match=f"backup dir {folder} is not empty and names no run"):
    RunDir(config.output_dir, str(folder)).check_new_or_resumable(config)


def test_workers_of_one_run_only_read_the_chiefs_backup(tmp_path):
  """A non-chief worker trains into a scratch dir and takes no lock on the backup folder, which
  the chief (here: another process) owns; a second chief is refused."""
  chief = _resolved(tmp_path / "run")
  with owned_by_another_process(chief.output_dir, chief.train.backup_dir) as owner:
    worker = config_lib.resolve(chief)
    worker.output_dir = str(tmp_path / "scratch")
    _begun(worker, chief=False)
    with pytest.raises(UsageError, match=f"output dir {chief.output_dir} is in use by pid "
                                         f"{owner.pid}"):
      _begun(chief)


@pytest.mark.parametrize("text,expected", [
    ("!!python/object/apply:os.system ['touch /tmp/yaml-tag-ran']\n",
     r"run config .*config.yaml is damaged or not ours \(could not determine a constructor"),
    ("name: [unclosed\n", r"config.yaml is damaged or not ours \(while parsing"),
    ("- a list\n", r"config.yaml does not hold a dict \(found list\)"),
    ("data: fashion_mnist\n", r"config.yaml is not a config of this application \(misshapen "
                              r"keys: data\)"),
    ("optim: {1: 2}\n", r"misshapen keys: optim.1"),
    (b"\xff\xfe bytes", r"config.yaml is damaged or not ours \('utf-8' codec"),
])
def test_a_foreign_or_damaged_config_yaml_is_one_line(tmp_path, text, expected):
  """Issue 19 (13): a Python tag, broken YAML or a foreign shape in config.yaml was a traceback
  (or a config the commands then tripped over); the tag is never constructed."""
  path = tmp_path / "config.yaml"
  path.write_bytes(text if isinstance(text, bytes) else text.encode())
  with pytest.raises(UsageError, match=expected + ".*; pass .* app.train wrote"):
    RunDir(str(tmp_path)).load_config()
  assert not os.path.exists("/tmp/yaml-tag-ran")


@pytest.mark.parametrize("text", ['{"test_accuracy": 0.9', "", "[1, 2]"])
def test_a_damaged_metrics_json_is_one_line(tmp_path, text):
  (tmp_path / "metrics.json").write_text(text)
  with pytest.raises(UsageError, match="run metrics .*metrics.json (is damaged|does not hold)"):
    RunDir(str(tmp_path)).load_metrics()


# --- Through python -m app.train ---

TINY_RUN = ("--model=simple_cnn", "--mixed_precision=float32", "--epochs=1", "--batch_size=64",
            "--config.data.limit=256", "--config.export.enabled=false")
# The second run: Python that has imported TensorFlow (app.cli), waits for the first run's
# config.yaml, then runs `python -m app.train` as runpy does (tests/command_server.py), so it
# reaches its check while the first one trains.
_WHEN_IT_APPEARS = (
    "import os, runpy, sys, time\nimport app.cli\nprint('ready', flush=True)\n"
    "deadline = time.time() + 120\nwhile not os.path.exists(sys.argv[1]):\n"
    "  if time.time() > deadline: sys.exit(3)\n  time.sleep(0.005)\n"
    "sys.argv = ['app.train'] + sys.argv[2:]\n"
    "runpy.run_module('app.train', run_name='__main__', alter_sys=True)")


def _in_background(function, *args):
  """Starts function(*args) in a thread; returns (thread, a function returning its result)."""
  result = {}
  thread = threading.Thread(target=lambda: result.update(value=function(*args)), daemon=True)
  thread.start()
  return thread, lambda: (thread.join(300), result["value"])[1]


def _final_weights(run_dir):
  """checkpoints/last.keras's weight arrays by name (h5py reads them: no TensorFlow here)."""
  arrays = {}
  with zipfile.ZipFile(run_dir / "checkpoints" / "last.keras") as archive:
    with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
      weights.visititems(lambda name, item: arrays.update({name: item[()]})
                         if isinstance(item, h5py.Dataset) else None)
  return arrays


def _last_line(text):
  return text.strip().splitlines()[-1]


def _second_run_while_the_first_trains(run_dir, *args):
  """Runs app.train `args` in a second process once the first run into `run_dir` (started
  here, through tests/commands.py) has written its config.yaml; -> (first's result, second's)."""
  second = subprocess.Popen([sys.executable, "-c", _WHEN_IT_APPEARS, str(run_dir / "config.yaml"),
                             *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
  assert second.stdout.readline().strip() == "ready"  # TensorFlow imported: the slow part
  _, first = _in_background(commands.run, "app.train", *TINY_RUN, f"--output_dir={run_dir}")
  output, errors = second.communicate(timeout=300)
  return first(), subprocess.CompletedProcess(second.args, second.returncode, output, errors)


def test_two_runs_in_one_dir_and_a_run_killed_before_its_first_backup(tmp_path):
  """Issue 19 (2): two runs into one directory both exited 0, history.csv had two headers and
  interleaved epochs, config.yaml and metrics.json came from whichever wrote last. (8): a run
  killed in epoch 1, before its first backup, left config.yaml and no backup, and its rerun said
  "already exists and is not empty". The first run of (2) is the uninterrupted run of (8)."""
  uninterrupted = tmp_path / "run"
  first, second = _second_run_while_the_first_trains(uninterrupted, *TINY_RUN, "--seed=1",
                                                     f"--output_dir={uninterrupted}")
  owner = ownership.read_owner(str(uninterrupted))  # the first run's record
  assert second.returncode == 2, second.stderr[-3000:]
  assert "Traceback" not in second.stderr
  assert _last_line(second.stderr).startswith(
      f"error: output dir {uninterrupted} is in use by pid {owner['pid']} on {owner['host']} "
      "since ")
  assert _last_line(second.stderr).endswith(", or pass a new --output_dir")
  assert first.returncode == 0, first.stderr[-3000:]
  history = (uninterrupted / "history.csv").read_text().splitlines()
  assert len(history) == 1 + 1 and history[0].startswith("epoch")  # one header, its one epoch
  assert yaml.safe_load((uninterrupted / "config.yaml").read_text())["seed"] == 0  # the first's
  assert json.loads((uninterrupted / "metrics.json").read_text())["epochs_completed"] == 1

  # (8) SIGKILL as epoch 1's history row and checkpoints are written, before its backup commits.
  run_dir = tmp_path / "killed"
  killed = commands.run("app.train", *TINY_RUN, f"--output_dir={run_dir}",
                        env=dict(os.environ, CONVTRAIN_CRASH_AT="epoch_written:1"))
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  assert not (run_dir / "backup" / "state.json").exists()
  assert not (run_dir / "metrics.json").exists()
  assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 1
  dead = ownership.read_owner(str(run_dir))["pid"]
  other = commands.run("app.train", *TINY_RUN, "--seed=1", f"--output_dir={run_dir}")
  assert other.returncode == 2, other.stderr[-3000:]
  assert _last_line(other.stderr) == (
      f"error: {run_dir} holds an unfinished run started with other settings (seed: 0 -> 1); "
      "pass the same flags to resume it, or a new --output_dir")
  again = commands.run("app.train", *TINY_RUN, f"--output_dir={run_dir}")
  assert again.returncode == 0, again.stderr[-3000:]
  assert (f"output dir {run_dir} holds a run killed before its first backup (pid {dead} on "
          in again.stderr)  # the dead owner's lock, taken over
  assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 1  # none of the killed's
  expected, restarted = _final_weights(uninterrupted), _final_weights(run_dir)
  assert sorted(restarted) == sorted(expected)
  for name, value in expected.items():
    np.testing.assert_allclose(restarted[name], value, atol=1e-6, err_msg=name)


def test_a_run_sharing_another_runs_backup_dir_is_refused_in_one_line(tmp_path):
  """Issue 19 (1), through the command: the backup intact, nothing written."""
  shared = tmp_path / "shared"
  _backed_up(tmp_path / "first", shared)
  before = _contents(shared)
  result = commands.run("app.train", *TINY_RUN, f"--output_dir={tmp_path / 'second'}",
                        f"--config.train.backup_dir={shared}")
  assert result.returncode == 2, result.stderr[-3000:]
  assert _last_line(result.stderr).startswith(
      f"error: backup dir {shared} holds the backup of the run in {tmp_path / 'first'}, not of "
      f"{tmp_path / 'second'} (its settings: ")
  assert _contents(shared) == before and not (tmp_path / "second").exists()
