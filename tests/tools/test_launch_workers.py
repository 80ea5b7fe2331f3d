"""tools/launch_workers.py --gpus: each worker process starts seeing one GPU (CUDA_VISIBLE_DEVICES),
round-robin, beside its TF_CONFIG. The workers here are Python one-liners that print what they
were given: no TensorFlow, no GPU needed."""

import sys

from tests import commands

_SAYS_ITS_ENVIRONMENT = ("import json, os; "
                         "print(json.loads(os.environ['TF_CONFIG'])['task']['index'], "
                         "os.environ.get('CUDA_VISIBLE_DEVICES', 'unset'), "
                         "os.environ.get('CUDA_DEVICE_ORDER', 'unset'))")


def _said(stdout):
  """{'worker i': (task index, CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER)} from the relayed lines."""
  said = {}
  for line in stdout.splitlines():
    if line.startswith("[worker "):
      name, rest = line[1:].split("] ", 1)
      said[name] = tuple(rest.split())
  return said


def test_each_started_worker_sees_its_gpu_round_robin():
  result = commands.run("tools/launch_workers.py", "--workers=3", "--gpus=2,5", "--",
                        sys.executable, "-c", _SAYS_ITS_ENVIRONMENT, timeout=60)
  assert result.returncode == 0, result.stdout + result.stderr
  assert _said(result.stdout) == {"worker 0": ("0", "2", "PCI_BUS_ID"),
                                  "worker 1": ("1", "5", "PCI_BUS_ID"),
                                  "worker 2": ("2", "2", "PCI_BUS_ID")}
  assert "[launcher] GPU 2: worker 0, worker 2; GPU 5: worker 1 (3 processes" in result.stdout


def test_without_gpus_workers_keep_the_launchers_devices():
  result = commands.run("tools/launch_workers.py", "--workers=2", "--",
                        sys.executable, "-c", _SAYS_ITS_ENVIRONMENT, timeout=60)
  assert result.returncode == 0, result.stdout + result.stderr
  assert {visible for _, visible, _ in _said(result.stdout).values()} == {"unset"}


def test_dry_run_starts_nothing_and_repeated_gpus_are_refused(tmp_path):
  marker = tmp_path / "started"
  result = commands.run("tools/launch_workers.py", "--workers=2", "--gpus=0", "--dry_run", "--",
                        "touch", str(marker))
  assert result.returncode == 0, result.stderr
  assert result.stdout.count("CUDA_VISIBLE_DEVICES=0 ") == 2 and not marker.exists()
  refused = commands.run("tools/launch_workers.py", "--gpus=1,1", "--", "true")
  assert refused.returncode == 2 and "names GPU 1 more than once" in refused.stderr
