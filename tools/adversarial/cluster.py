"""Adversarial cases: cluster (see tools/adversarial/__init__.py). Issue 19's items 3 (a malformed
TF_CONFIG under the default --strategy=auto: refused in one line, exit status 2, nothing written;
valid chief + worker layouts still accepted) and 11 (a peer that never comes up: a bounded,
logged wait, then one line; SIGTERM and SIGINT during the wait: at once, one line; SIGTERM during
training, alone or to a two-worker cluster: a backup, exit 143, and the rerun ends with the
weights of a run never stopped), through real `python -m app.train` processes."""

import json
import os
import signal
import socket
import subprocess
import time

from tools.adversarial.common import (Case, PYTHON, REPO, TINY, command, refused_in_one_line,
                                      same_weights)
from tools.local_processes import free_ports

_TWO = '"cluster": {"worker": ["localhost:1", "localhost:2"]}'


def _tf_config(*jobs, task=("worker", 0)):
  """TF_CONFIG for localhost ports picked free: jobs = ("chief", 1), ("worker", 2), ..."""
  ports = iter(free_ports(sum(count for _, count in jobs)))
  cluster = {job: [f"localhost:{next(ports)}" for _ in range(count)] for job, count in jobs}
  return cluster, json.dumps({"cluster": cluster, "task": {"type": task[0], "index": task[1]}})


def _run_dir(work):
  return os.path.join(work, "run")


def _train(work, tf_config, *args, timeout=600):
  return command("app.train", *TINY, f"--output_dir={_run_dir(work)}", *args,
                 env={"TF_CONFIG": tf_config}, timeout=timeout)


def _nothing_written(work, held, detail):
  if held and os.path.exists(_run_dir(work)):
    return False, "refused, but the run directory was made: " + detail
  return held, detail


# --- 3: a malformed TF_CONFIG -----------------------------------------------------------------


def _refused_tf_config(tf_config, *words):
  def run(work):
    result = _train(work, tf_config)
    return _nothing_written(work, *refused_in_one_line(result, "TF_CONFIG", "unset TF_CONFIG",
                                                       *words))
  return run


def _chief_and_worker_accepted(work):
  """A valid chief + worker layout is taken as a cluster (not refused as malformed): with the
  worker never started, the chief waits for it, then says so."""
  _, tf_config = _tf_config(("chief", 1), ("worker", 1), task=("chief", 0))
  result = _train(work, tf_config, "--cluster_timeout=2")
  return _nothing_written(work, *refused_in_one_line(result, "worker 0 (localhost:",
                                                     "did not come up within 2 s"))


def _single_worker_trains_alone(work):
  """A cluster of one (or '{}') is no cluster: the run trains on this machine, exit status 0."""
  for tf_config in ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", '
                    '"index": 0}}', "{}"):
    result = _train(work, tf_config, f"--output_dir={os.path.join(work, str(len(tf_config)))}")
    if result.returncode:
      return False, f"TF_CONFIG={tf_config}: exit status {result.returncode}: " + \
          result.stderr.strip()[-160:]
  return True, "trained alone, exit status 0, for a one-worker cluster and for '{}'"


# --- 11: the cluster wait ----------------------------------------------------------------------


def _peer_never_comes_up(work):
  _, tf_config = _tf_config(("worker", 2))
  start = time.monotonic()
  result = _train(work, tf_config, "--cluster_timeout=5", timeout=120)
  seconds = time.monotonic() - start
  held, detail = refused_in_one_line(result, "worker 1 (localhost:", "did not come up within 5 s",
                                     "--cluster_timeout")
  if held and "waiting for the 1 other task(s)" not in result.stderr:
    return False, "refused in time, but nothing was logged while waiting: " + detail
  return _nothing_written(work, held, f"after {seconds:.0f} s (TensorFlow's start included): "
                          + detail)


def _start(work, args, env, log_name="stderr"):
  """`python -m app.train args` with `env` added, not waited for; stderr to work/log_name."""
  log = open(os.path.join(work, log_name), "w")  # pylint: disable=consider-using-with
  process = subprocess.Popen([PYTHON, "-m", "app.train", *args], cwd=REPO, stdout=log,
                             stderr=log, env=dict(os.environ, PYTHONPATH=REPO, **env))
  return process, log.name


def _until(condition, timeout, process=None):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if condition():
      return True
    if process is not None and process.poll() is not None:
      return False
    time.sleep(0.05)
  return False


def _text(path):
  with open(path, errors="replace") as f:
    return f.read()


def _last_line(path):
  lines = [line for line in _text(path).splitlines() if line.strip()]
  return lines[-1] if lines else ""


def _signal_during_the_wait(signum):
  def run(work):
    _, tf_config = _tf_config(("worker", 2), task=("worker", 1))
    process, log = _start(work, [*TINY, f"--output_dir={_run_dir(work)}"], {"TF_CONFIG": tf_config})
    try:
      if not _until(lambda: "waiting for the 1 other task(s)" in _text(log), 120, process):
        return False, "no 'waiting' line: " + _last_line(log)[:160]
      time.sleep(1)
      process.send_signal(signum)
      sent = time.monotonic()
      if not _until(lambda: "stopped by" in _text(log), 10):
        return False, f"no line 10 s after {signum.name}"
      line_after = time.monotonic() - sent
      code = process.wait(timeout=60)
    finally:
      if process.poll() is None:
        process.kill()
    last = _last_line(log)
    held = (code == 128 + signum and last.startswith(f"stopped by {signum.name} before training")
            and "Traceback" not in _text(log) and not os.path.exists(_run_dir(work)))
    return held, f"exit status {code}, the line {line_after:.1f} s after the signal: {last[:120]}"
  return run


def _port_answers_but_peer_never_joins(work):
  """Something answers on worker 1's port but never joins: TensorFlow's own wait, which no
  Python code can interrupt, is bounded by a watchdog process (exit status 137, one line)."""
  cluster, tf_config = _tf_config(("worker", 2))
  impostor = socket.create_server(("", int(cluster["worker"][1].rsplit(":", 1)[1])))
  try:
    start = time.monotonic()
    result = _train(work, tf_config, "--cluster_timeout=5", timeout=120)
  finally:
    impostor.close()
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  last = lines[-1] if lines else ""
  held = (result.returncode == -signal.SIGKILL and "did not end within 5 s" in last
          and not os.path.exists(_run_dir(work)))
  return held, (f"exit status {result.returncode} after {time.monotonic() - start:.0f} s: "
                f"{last[:160]}")


# --- 11: SIGTERM during training ----------------------------------------------------------------

# 58 steps of 64 an epoch; flips and crops drawn per batch; backups every 8 steps.
_PREEMPTED = ("--epochs=2", "--config.data.limit=4096", "--model=simple_cnn",
              "--config.model.width=8", "--mixed_precision=float32", "--batch_size=64",
              "--learning_rate=0.02", "--config.optim.warmup_epochs=0",
              "--config.data.augment=flip|crop(pad=2)", "--config.train.backup_every_steps=8",
              "--config.export.enabled=false")


def _backup_state(run_dir):
  try:
    with open(os.path.join(run_dir, "backup", "state.json")) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _sigterm_during_training(work):
  reference = command("app.train", *_PREEMPTED, f"--output_dir={os.path.join(work, 'reference')}")
  if reference.returncode:
    return False, "the uninterrupted run failed: " + reference.stderr.strip()[-160:]
  run_dir = _run_dir(work)
  args = [*_PREEMPTED, f"--output_dir={run_dir}"]
  process, log = _start(work, args, {})
  if not _until(lambda: _backup_state(run_dir), 300, process):
    return False, "no backup before the run ended: " + _last_line(log)[:160]
  process.send_signal(signal.SIGTERM)
  code = process.wait(timeout=300)
  last, saved = _last_line(log), _backup_state(run_dir)
  if code != 128 + signal.SIGTERM or not last.startswith("stopped by SIGTERM at epoch"):
    return False, f"exit status {code}: {last[:160]}"
  if f"step {saved['batches_done']}:" not in last:
    return False, f"the line names another step than the backup's {saved}: {last[:120]}"
  again = command("app.train", *args)
  if again.returncode or "resuming from the backup" not in again.stderr:
    return False, f"rerun: exit status {again.returncode}: {again.stderr.strip()[-160:]}"
  equal, weights = same_weights(run_dir, os.path.join(work, "reference"))
  return equal, (f"exit 143 at epoch {saved['epoch'] + 1}, step {saved['batches_done']}; the rerun "
                 f"resumed there; {weights} from the run never stopped")


def _launch(work, name, *extra):
  log = open(os.path.join(work, f"{name}.log"), "w")  # pylint: disable=consider-using-with
  process = subprocess.Popen(
      [PYTHON, "tools/launch_workers.py", "--workers=2", *extra, "--", PYTHON, "-m", "app.train",
       *_PREEMPTED, f"--output_dir={os.path.join(work, name)}"],
      cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=REPO))
  return process, log.name


def _sigterm_to_a_two_worker_cluster(work):
  """SIGTERM to tools/launch_workers.py (which passes it on) mid-epoch: both workers stop at the
  same step, the chief's backup is that step, no restart; the same command resumes from it."""
  reference, reference_log = _launch(work, "reference")
  if reference.wait(timeout=900):
    return False, "the uninterrupted cluster failed: " + _last_line(reference_log)[:160]
  run_dir = os.path.join(work, "run")
  process, log = _launch(work, "run", "--max_restarts=1")
  if not _until(lambda: _backup_state(run_dir), 600, process):
    return False, "no backup before the cluster ended: " + _last_line(log)[:160]
  process.send_signal(signal.SIGTERM)
  code = process.wait(timeout=300)
  text, saved = _text(log), _backup_state(run_dir)
  stops = [line for line in text.splitlines() if "stopped by SIGTERM at epoch" in line]
  step = f"at epoch {saved['epoch'] + 1}, step {saved['batches_done']}:"
  if code != 128 + signal.SIGTERM or len(stops) != 2 or not all(step in s for s in stops):
    return False, f"launcher exit status {code}; stop lines {stops}; backup {saved}"
  if "restarting the cluster" in text:
    return False, "the launcher restarted the cluster it was told to stop"
  again, again_log = _launch(work, "run")
  if again.wait(timeout=900) or "resuming from the backup" not in _text(again_log):
    return False, "rerun: " + _last_line(again_log)[:160]
  equal, weights = same_weights(run_dir, os.path.join(work, "reference"))
  return equal, (f"both workers stopped {step[:-1]}, launcher exit 143, no restart; the rerun "
                 f"resumed there; {weights} from the cluster never stopped")


CASES = [
    Case(3, "tf_config_bad_json", _refused_tf_config("{not json", "not valid JSON")),
    Case(3, "tf_config_index_out_of_range", _refused_tf_config(
        '{%s, "task": {"type": "worker", "index": 2}}' % _TWO, "task index 2 is out of range",
        "'task.index'")),
    Case(3, "tf_config_type_ps", _refused_tf_config(
        '{%s, "task": {"type": "ps", "index": 0}}' % _TWO, "task must be", "'task'")),
    Case(3, "tf_config_ps_job", _refused_tf_config(
        '{"cluster": {"worker": ["localhost:1"], "ps": ["localhost:2"]}, "task": {"type": "ps", '
        '"index": 0}}', "'ps'", "no parameter servers")),
    Case(3, "tf_config_missing_cluster", _refused_tf_config(
        '{"task": {"type": "worker", "index": 0}}', "needs a 'cluster' and a 'task'")),
    Case(3, "tf_config_missing_task", _refused_tf_config(
        "{%s}" % _TWO, "needs a 'cluster' and a 'task'")),
    Case(3, "tf_config_task_type_not_in_cluster", _refused_tf_config(
        '{%s, "task": {"type": "chief", "index": 0}}' % _TWO, "'chief' has no list",
        "'task.type'")),
    Case(3, "tf_config_empty_worker_list", _refused_tf_config(
        '{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
        "non-empty list", "'cluster.worker'")),
    Case(3, "tf_config_index_not_an_int", _refused_tf_config(
        '{%s, "task": {"type": "worker", "index": "1"}}' % _TWO, "task must be")),
    Case(3, "tf_config_not_host_port", _refused_tf_config(
        '{"cluster": {"worker": ["localhost", "localhost:2"]}, "task": {"type": "worker", '
        '"index": 0}}', "host:port", "'cluster.worker'")),
    Case(3, "tf_config_address_twice", _refused_tf_config(
        '{"cluster": {"worker": ["localhost:1", "localhost:1"]}, "task": {"type": "worker", '
        '"index": 0}}', "more than once")),
    Case(3, "tf_config_two_chiefs", _refused_tf_config(
        '{"cluster": {"chief": ["localhost:1", "localhost:2"], "worker": ["localhost:3"]}, '
        '"task": {"type": "chief", "index": 0}}', "at most one", "'cluster.chief'")),
    Case(3, "tf_config_chief_and_worker_accepted", _chief_and_worker_accepted),
    Case(3, "tf_config_single_worker_trains_alone", _single_worker_trains_alone),
    Case(11, "peer_never_comes_up", _peer_never_comes_up),
    Case(11, "sigterm_during_cluster_wait", _signal_during_the_wait(signal.SIGTERM)),
    Case(11, "sigint_during_cluster_wait", _signal_during_the_wait(signal.SIGINT)),
    Case(11, "port_answers_but_peer_never_joins", _port_answers_but_peer_never_joins),
    Case(11, "sigterm_during_training", _sigterm_during_training),
    Case(11, "sigterm_to_two_worker_cluster", _sigterm_to_a_two_worker_cluster),
]
