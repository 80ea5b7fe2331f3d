"""MultiWorkerMirroredStrategy on localhost (tools/launch_workers.py), fault tolerance (a worker
killed mid-epoch, the cluster restarted, training resumed from the backup), and the cluster flags
and TPU path refusing bad input with one line."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from app import config as config_lib
from app import distribute
from app.core.errors import UsageError
from configs import default
from tests import commands

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 64 steps of 64 per epoch; flips and crops drawn per batch; backups every 8 steps.
TRAIN = ["--epochs=3", "--config.data.limit=4096", "--model=simple_cnn", "--config.model.width=8",
         "--mixed_precision=float32", "--batch_size=64", "--learning_rate=0.02",
         "--config.optim.warmup_epochs=0", "--config.data.augment=flip|crop(pad=2)",
         "--config.train.backup_every_steps=8", "--config.name=mw"]


def launch(tmp_path, name, *extra, workers=2):
  """Starts the launcher (not waiting); returns (process, run dir, pid file, scratch root)."""
  run_dir, pid_file, scratch = tmp_path / name, tmp_path / f"{name}.pids", tmp_path / f"{name}-tmp"
  scratch.mkdir()
  command = [sys.executable, "tools/launch_workers.py", f"--workers={workers}",
             f"--pid_file={pid_file}", *extra, "--", sys.executable, "-m", "app.train", *TRAIN,
             f"--output_dir={run_dir}", f"--export_dir={tmp_path / 'exports'}"]
  process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=dict(os.environ, TMPDIR=str(scratch)))
  return process, run_dir, pid_file, scratch


def finish(process):
  output, _ = process.communicate(timeout=600)
  assert process.returncode == 0, output[-4000:]
  return output


def final_weights(run_dir):
  from app.models import load_model  # pylint: disable=g-import-not-at-top
  return load_model(str(run_dir / "checkpoints" / "last.keras")).get_weights()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("two_workers")
  process, run_dir, _, scratch = launch(tmp_path, "run")
  output = finish(process)
  return tmp_path, run_dir, scratch, output


@pytest.mark.slow
def test_two_workers_train_like_one_and_only_the_chief_writes(two_workers, tmp_path):
  tmp_path2, run_dir, scratch, output = two_workers
  metrics = json.loads((run_dir / "metrics.json").read_text())
  assert "MultiWorkerMirroredStrategy, 2 replica(s)" in metrics["strategy"]
  assert metrics["worker"] == {"index": 0, "count": 2, "chief": True}
  assert "worker 1 of 2: the chief writes the run dir" in output
  # One export (the chief's), no backup left, and the worker's scratch folder removed.
  assert sorted(os.listdir(tmp_path2 / "exports" / "mw")) == ["1"]
  assert not (run_dir / "backup").exists()
  assert os.listdir(scratch) == []
  # The same recipe in one process reaches the same accuracy.
  single = commands.run("app.train", *TRAIN, "--strategy=default",
                        f"--output_dir={tmp_path / 'single'}", "--config.export.enabled=False",
                        timeout=600)
  assert single.returncode == 0, single.stderr[-3000:]
  one = json.loads((tmp_path / "single" / "metrics.json").read_text())
  assert abs(one["test_accuracy"] - metrics["test_accuracy"]) < 0.02, (one, metrics)
  assert metrics["test_accuracy"] > 0.7


def _wait_for_backup(run_dir, process, epoch, batches, timeout=300):
  state, deadline = run_dir / "backup" / "state.json", time.time() + timeout
  while time.time() < deadline:
    assert process.poll() is None, "training ended before the kill"
    try:
      saved = json.loads(state.read_text())
      if saved["epoch"] == epoch and saved["batches_done"] >= batches:
        return saved
    except (OSError, ValueError):
      pass
    time.sleep(0.02)
  raise AssertionError(f"no backup of epoch {epoch + 1} after {timeout} s")


@pytest.mark.slow
def test_killed_worker_restarts_and_resumes_to_the_same_weights(two_workers):
  tmp_path, uninterrupted, _, _ = two_workers
  process, run_dir, pid_file, _ = launch(tmp_path, "killed", "--max_restarts=1")
  saved = _wait_for_backup(run_dir, process, epoch=1, batches=40)  # mid-way through epoch 2
  os.kill(int(pid_file.read_text().split()[1]), signal.SIGKILL)  # worker 1, not the chief
  output = finish(process)
  assert "restarting the cluster" in output
  assert f"resuming from the backup in {run_dir / 'backup'}: epoch 2" in output
  metrics = json.loads((run_dir / "metrics.json").read_text())
  assert metrics["resumed_from"]["epoch"] == 1
  assert metrics["resumed_from"]["batches_done"] >= saved["batches_done"]
  for resumed, reference in zip(final_weights(run_dir), final_weights(uninterrupted)):
    np.testing.assert_allclose(resumed, reference, atol=1e-5)


@pytest.mark.slow
def test_killed_single_process_run_resumes_mid_epoch(tmp_path):
  """The same without a cluster: kill -9 mid-epoch, run the same command again."""
  command = [sys.executable, "-m", "app.train", *TRAIN, "--config.export.enabled=False"]
  reference = commands.run(*command[2:], f"--output_dir={tmp_path / 'reference'}", timeout=600)
  assert reference.returncode == 0, reference.stderr[-3000:]
  run_dir = tmp_path / "killed"
  process = subprocess.Popen(command + [f"--output_dir={run_dir}"], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  _wait_for_backup(run_dir, process, epoch=1, batches=24)
  process.kill()
  process.wait()
  assert not (run_dir / "metrics.json").exists()
  other = commands.run(*command[2:], "--epochs=4", f"--output_dir={run_dir}")
  assert other.returncode == 2, other.stderr[-3000:]
  assert "started with other settings (train.epochs: 3 -> 4)" in other.stderr.splitlines()[-1]
  again = commands.run(*command[2:], f"--output_dir={run_dir}", timeout=600)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "resuming from the backup" in again.stderr
  history = (run_dir / "history.csv").read_text().splitlines()
  assert len(history) == 1 + 3  # header + one row per epoch, none twice
  for resumed, expected in zip(final_weights(run_dir), final_weights(tmp_path / "reference")):
    np.testing.assert_allclose(resumed, expected, atol=1e-5)


def test_a_resumed_run_counts_only_the_images_it_trained():
  from types import SimpleNamespace  # pylint: disable=g-import-not-at-top
  from app.train import train_and_evaluate as training  # pylint: disable=g-import-not-at-top
  data = SimpleNamespace(num_train=1000)
  timing = SimpleNamespace(train_seconds_per_epoch=[1.0, 1.0])  # a partial epoch, then a whole
  config = default.get_config()
  config.train.batch_size = 64
  assert training._images_trained(data, timing, None, config) == 2000
  resumed = {"epoch": 1, "batches_done": 3, "weights": "w"}
  assert training._images_trained(data, timing, resumed, config) == 2000 - 3 * 64


# === Bad input: one line, exit status 2 ===


def runtime(**values):
  config = default.get_config()
  config.runtime.update(values)
  return config


@pytest.mark.parametrize("tf_config, message", [
    ("", "needs a cluster"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["localhost:1"]}}', "needs a 'cluster' and a 'task'"),
    ('{"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", '
     '"index": 2}}', "task index 2 is out of range for the 2 'worker' host"),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "ps", "index": 0}}',
     "task must be"),
])
def test_bad_tf_config_is_refused(monkeypatch, tf_config, message):
  monkeypatch.setenv("TF_CONFIG", tf_config)
  with pytest.raises(UsageError, match=message):
    config_lib.validate(runtime(strategy="multi_worker"))


@pytest.mark.parametrize("values, message", [
    (dict(worker_hosts="localhost:1,localhost:2", task_index=2), "--task_index=2 is out of range"),
    (dict(worker_hosts="localhost,localhost:2"), "is not host:port"),
    (dict(worker_hosts="localhost:1", strategy="mirrored"), "--worker_hosts is for"),
    (dict(worker_hosts="localhost:1", jit_compile=True, strategy="multi_worker"),
     "XLA collectives are not implemented for CPU devices"),
    (dict(strategy="multi_worker", steps_per_execution=4, worker_hosts="localhost:1"),
     "steps_per_execution > 1 with several replicas"),
])
def test_bad_cluster_flags_are_refused(monkeypatch, values, message):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(UsageError, match=message):
    config_lib.validate(runtime(**values))


def test_worker_hosts_write_tf_config_and_pick_the_chief(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  config = runtime(strategy="multi_worker", worker_hosts="a:1,b:2,c:3", task_index=2)
  written = json.loads(distribute.tf_config_from_flags(config.runtime))
  assert written == {"cluster": {"worker": ["a:1", "b:2", "c:3"]},
                     "task": {"type": "worker", "index": 2}}
  assert distribute.role(config.runtime, "multi_worker") == distribute.Role(2, 3, False)
  config.runtime.task_index = 0
  assert distribute.role(config.runtime, "multi_worker").is_chief


def test_auto_picks_multi_worker_from_tf_config(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                              "task": {"type": "worker", "index": 1}}))
  runtime_config = default.get_config().runtime
  assert distribute.strategy_name(runtime_config)[0] == "multi_worker"
  assert distribute.role(runtime_config, "multi_worker") == distribute.Role(1, 2, False)


@pytest.mark.parametrize("args, message", [
    (["--strategy=multi_worker"], "needs a cluster"),
    (["--strategy=multi_worker", "--worker_hosts=localhost:2222,localhost:2223",
      "--task_index=5"], "--task_index=5 is out of range for 2 worker hosts"),
    (["--strategy=tpu"], "no TPU found"),
])
def test_train_cli_refuses_with_one_line(tmp_path, args, message):
  env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
  result = commands.run("app.train", *args, f"--output_dir={tmp_path / 'run'}", env=env)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and message in lines[0], result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "run").exists()
