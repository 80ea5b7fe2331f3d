"""MultiWorkerMirroredStrategy on localhost (tools/launch_workers.py), fault tolerance (a worker
killed mid-epoch, the cluster restarted, training resumed from the backup), and the cluster flags
and TPU path refusing bad input with one line."""

import json
import os
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


def launch(tmp_path, name, *extra, workers=2, env=None):
  """Starts the launcher (not waiting), the workers' environment with `env` added; returns
  (process, run dir, pid file, scratch root)."""
  run_dir, pid_file, scratch = tmp_path / name, tmp_path / f"{name}.pids", tmp_path / f"{name}-tmp"
  scratch.mkdir()
  command = [sys.executable, "tools/launch_workers.py", f"--workers={workers}",
             f"--pid_file={pid_file}", *extra, "--", sys.executable, "-m", "app.train", *TRAIN,
             f"--output_dir={run_dir}", f"--export_dir={tmp_path / 'exports'}"]
  process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=dict(os.environ, TMPDIR=str(scratch), **(env or {})))
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
def test_killed_workers_of_each_role_restart_and_resume_to_the_same_weights(two_workers):
  """Worker 1 (not the chief) killed mid-way through epoch 2, then, in the restarted cluster, the
  chief killed as the final evaluation begins (training over): each restart resumes from the
  chief's backup, and the run ends with the weights and test figures of the one never killed.
  The kills are the testing hook's (app/core/crash_points.py), each once across the restarts."""
  tmp_path, uninterrupted, _, _ = two_workers
  crashes = {"CONVTRAIN_CRASH_AT": "batch_end:100@1,evaluate@0",  # 58 steps an epoch
             "CONVTRAIN_CRASH_ONCE_DIR": str(tmp_path / "crashed")}
  process, run_dir, _, _ = launch(tmp_path, "killed", "--max_restarts=2", env=crashes)
  output = finish(process)
  assert sorted(os.listdir(tmp_path / "crashed")) == ["batch_end:100@1", "evaluate@0"]
  assert output.count("restarting the cluster") == 2
  assert f"resuming from the backup in {run_dir / 'backup'}: epoch 2" in output
  assert "training had ended" in output
  metrics = json.loads((run_dir / "metrics.json").read_text())
  resumes = [(r["epoch"], r["batches_done"], r["trained"]) for r in metrics["resumes"]]
  assert resumes == [(1, 40, False), (3, 0, True)], resumes  # backups every 8 steps
  assert metrics["train_seconds"] == metrics["resumes"][-1]["elapsed_seconds"]
  for resumed, reference in zip(final_weights(run_dir), final_weights(uninterrupted)):
    np.testing.assert_allclose(resumed, reference, atol=1e-5)
  reference = json.loads((uninterrupted / "metrics.json").read_text())
  assert metrics["test_loss"] == pytest.approx(reference["test_loss"], abs=1e-5)
  assert not [n for n in os.listdir(tmp_path / "exports" / "mw") if not n.isdigit()]


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
  timing = SimpleNamespace(train_seconds_per_epoch=[1.0, 1.0], batches_skipped=0)
  config = default.get_config()
  config.train.batch_size = 64
  assert training._images_trained(data, timing, config) == 2000
  timing.batches_skipped = 3  # resumed at batch 3 of an epoch: a partial epoch, then a whole
  assert training._images_trained(data, timing, config) == 2000 - 3 * 64


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


# === Cluster faults (issue 19, items 3 and 11) ===

_WORKERS_2 = '"cluster": {"worker": ["localhost:1", "localhost:2"]}'


@pytest.mark.parametrize("tf_config, message", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ("[]", "needs a 'cluster' and a 'task'"),
    ('{"task": {"type": "worker", "index": 0}}', "needs a 'cluster' and a 'task'"),
    ('{%s}' % _WORKERS_2, "needs a 'cluster' and a 'task'"),
    ('{%s, "task": {"type": "worker", "index": 2}}' % _WORKERS_2,
     "task index 2 is out of range for the 2 'worker' host(s); use 0 to 1"),
    ('{%s, "task": {"type": "worker", "index": -1}}' % _WORKERS_2, "task index -1 is out of range"),
    ('{%s, "task": {"type": "worker", "index": "0"}}' % _WORKERS_2, "task must be"),
    ('{%s, "task": {"type": "worker", "index": true}}' % _WORKERS_2, "task must be"),
    ('{%s, "task": {"type": "worker"}}' % _WORKERS_2, "task must be"),
    ('{%s, "task": {"type": "ps", "index": 0}}' % _WORKERS_2, "task must be"),
    ('{"cluster": {"worker": ["localhost:1"], "ps": ["localhost:2"]}, "task": {"type": "ps", '
     '"index": 0}}', "cluster names the job(s) 'ps'"),
    ('{"cluster": {"worker": ["localhost:1"], "evaluator": ["localhost:2"]}, "task": {"type": '
     '"worker", "index": 0}}', "cluster names the job(s) 'evaluator'"),
    ('{%s, "task": {"type": "chief", "index": 0}}' % _WORKERS_2,
     "task type 'chief' has no list in the cluster"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
     "cluster 'worker' must be a non-empty list"),
    ('{"cluster": {"worker": "localhost:1"}, "task": {"type": "worker", "index": 0}}',
     "cluster 'worker' must be a non-empty list"),
    ('{"cluster": {"worker": ["localhost", "localhost:2"]}, "task": {"type": "worker", '
     '"index": 0}}', "\"host:port\""),
    ('{"cluster": {"worker": ["localhost:1", "localhost:1"]}, "task": {"type": "worker", '
     '"index": 0}}', "lists localhost:1 more than once"),
    ('{"cluster": {"chief": ["localhost:1", "localhost:2"], "worker": ["localhost:3"]}, "task": '
     '{"type": "worker", "index": 0}}', "2 'chief' hosts; at most one"),
])
def test_a_malformed_tf_config_is_refused_under_auto(tmp_path, tf_config, message):
  """Item 3: --strategy=auto (the default) used to ignore these and train alone, exit 0; on a
  cluster every host would then train alone into the shared output dir."""
  result = commands.run("app.train", f"--output_dir={tmp_path / 'run'}",
                        env=dict(os.environ, TF_CONFIG=tf_config))
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
  assert lines[-1].startswith("error: TF_CONFIG") and message in lines[-1], lines[-1]
  assert "unset TF_CONFIG" in lines[-1]
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("tf_config, expected", [
    (None, ("default", distribute.Role())),
    ("", ("default", distribute.Role())),
    ("{}", ("default", distribute.Role())),  # what some launchers set on one machine
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}',
     ("default", distribute.Role())),  # a cluster of one trains alone
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "task": {"type": "chief", '
     '"index": 0}}', ("multi_worker", distribute.Role(0, 3, True))),
    ('{"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "task": {"type": "worker", '
     '"index": 1}, "rpc_layer": "grpc"}', ("multi_worker", distribute.Role(2, 3, False))),
    ('{"cluster": {"worker": ["[::1]:1", "b:2"]}, "task": {"type": "worker", "index": 0}}',
     ("multi_worker", distribute.Role(0, 2, True))),
])
def test_valid_tf_config_layouts_stay_accepted(monkeypatch, tf_config, expected):
  if tf_config is None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
  else:
    monkeypatch.setenv("TF_CONFIG", tf_config)
  runtime_config = default.get_config().runtime
  name, _ = distribute.strategy_name(runtime_config)
  assert (name, distribute.role(runtime_config, name)) == expected


def _two_worker_tf_config(index):
  from tools.local_processes import free_ports  # pylint: disable=g-import-not-at-top
  hosts = [f"localhost:{port}" for port in free_ports(2)]
  return json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})


def test_a_peer_that_never_comes_up_times_out_with_one_line(tmp_path):
  """Item 11: worker 0 of two, worker 1 never started: it used to wait silently forever."""
  start = time.monotonic()
  result = commands.run("app.train", f"--output_dir={tmp_path / 'run'}", "--cluster_timeout=1",
                        env=dict(os.environ, TF_CONFIG=_two_worker_tf_config(0)), timeout=120)
  assert time.monotonic() - start < 60
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
  assert "waiting for the 1 other task(s) of the cluster, up to 1 s" in result.stderr
  assert lines[-1].startswith("error: 1 of the cluster's 2 tasks did not come up within 1 s "
                              "(worker 1 (localhost:"), lines[-1]
  assert "--cluster_timeout" in lines[-1]
  assert not (tmp_path / "run").exists()


# 29 steps of 16 an epoch; flips and crops drawn per batch; backups every 4 steps.
_PREEMPTED = ["--epochs=2", "--config.data.limit=512", "--model=simple_cnn",
              "--config.model.width=8", "--mixed_precision=float32", "--batch_size=16",
              "--learning_rate=0.01", "--config.optim.warmup_epochs=0",
              "--config.data.augment=flip|crop(pad=2)", "--config.train.backup_every_steps=4",
              "--config.export.enabled=false"]


def test_sigterm_during_training_saves_a_backup_and_the_rerun_ends_with_the_same_weights(tmp_path):
  """Item 11: a preempted run (SIGTERM mid-epoch) saves that step's backup and exits 143 with one
  line; the same command resumes from it to the weights of a run never stopped. The run's pid is
  its run directory's owner record (app/core/ownership.py)."""
  import signal  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top
  reference = commands.run("app.train", *_PREEMPTED, f"--output_dir={tmp_path / 'reference'}")
  assert reference.returncode == 0, reference.stderr[-3000:]
  run_dir, finished = tmp_path / "preempted", {}
  command = threading.Thread(target=lambda: finished.update(result=commands.run(
      "app.train", *_PREEMPTED, f"--output_dir={run_dir}")))
  command.start()
  state, deadline = run_dir / "backup" / "state.json", time.monotonic() + 120
  while not state.exists():
    assert command.is_alive() and time.monotonic() < deadline, finished
    time.sleep(0.02)
  os.kill(json.loads((run_dir / ".lock").read_text())["pid"], signal.SIGTERM)
  command.join(timeout=120)
  preempted = finished["result"]
  assert preempted.returncode == 128 + signal.SIGTERM, preempted.stderr[-3000:]
  last = preempted.stderr.strip().splitlines()[-1]
  saved = json.loads(state.read_text())
  assert last == (f"stopped by SIGTERM at epoch {saved['epoch'] + 1}, step {saved['batches_done']}"
                  f": backup saved in {run_dir / 'backup'}; run the same command again to resume "
                  "from it"), last
  assert not (run_dir / "metrics.json").exists()
  again = commands.run("app.train", *_PREEMPTED, f"--output_dir={run_dir}")
  assert again.returncode == 0, again.stderr[-3000:]
  assert f"resuming from the backup in {run_dir / 'backup'}" in again.stderr
  for resumed, expected in zip(final_weights(run_dir), final_weights(tmp_path / "reference")):
    np.testing.assert_allclose(resumed, expected, atol=1e-5)


def test_a_negative_cluster_timeout_is_refused(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(UsageError, match="runtime.cluster_timeout_seconds must be >= 0"):
    distribute.initialize(runtime(cluster_timeout_seconds=-1.0).runtime)
