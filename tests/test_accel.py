"""app/accel.py: which precisions the devices here compute natively, and the config check that
refuses the others (issue 20: mixed_float16 on a CPU listing avx512_fp16 trained ~40x slower)."""

import subprocess
import sys

import pytest

from app import accel
from app import config as config_lib
from app.core.errors import UsageError
from configs import default

from tests.conftest import REPO_ROOT as REPO

FLOAT16_CPU_FLAGS = {"avx512f", "avx512_fp16", "amx_fp16", "avx512_bf16", "amx_bf16"}


@pytest.fixture
def devices(monkeypatch):
  """devices(cpu_flags, gpu_capabilities=()) makes accel see that machine."""
  def fake(cpu_flags, gpu_capabilities=()):
    monkeypatch.setattr(accel, "_cpu_flags", lambda: set(cpu_flags))
    monkeypatch.setattr(accel, "_gpu_capabilities", lambda: list(gpu_capabilities))
    accel.supported_precisions.cache_clear()
  yield fake
  accel.supported_precisions.cache_clear()


def test_a_cpu_never_trains_float16_whatever_its_flags(devices):
  devices(FLOAT16_CPU_FLAGS)
  supported = accel.supported_precisions()
  assert supported["float32"] is None and supported["mixed_bfloat16"] is None
  assert "no GPU" in (supported["mixed_float16"] or ""), supported


@pytest.mark.parametrize("capability, float16", [((7, 0), True), ((9, 0), True), ((6, 1), False)])
def test_a_gpu_trains_float16_from_compute_capability_7(devices, capability, float16):
  devices(FLOAT16_CPU_FLAGS, [capability])
  assert (accel.supported_precisions()["mixed_float16"] is None) == float16


def test_validation_refuses_mixed_float16_on_a_cpu_in_one_line(devices):
  devices(FLOAT16_CPU_FLAGS)
  config = default.get_config()
  config.runtime.mixed_precision = "mixed_float16"
  with pytest.raises(UsageError) as refused:
    config_lib.validate(config)
  message = str(refused.value)
  assert "\n" not in message and message.startswith("--mixed_precision=mixed_float16"), message
  assert "--mixed_precision=mixed_bfloat16" in message


# python -m app.train on this machine, seen as a CPU listing float16 instructions and no GPU.
_TRAIN_ON_A_FLOAT16_CPU = (
    "import runpy; from app import accel; "
    f"accel._cpu_flags = lambda: set({sorted(FLOAT16_CPU_FLAGS)!r}); "
    "accel._gpu_capabilities = lambda: []; "
    "runpy.run_module('app.train', run_name='__main__', alter_sys=True)")


def test_train_cli_refuses_mixed_float16_on_a_cpu_with_exit_status_2(tmp_path):
  result = subprocess.run(
      [sys.executable, "-c", _TRAIN_ON_A_FLOAT16_CPU, "--mixed_precision=mixed_float16",
       "--epochs=2", "--config.data.limit=64", "--config.export.enabled=False",
       f"--output_dir={tmp_path / 'run'}"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr[-2000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: --mixed_precision=mixed_float16"), last
  assert not (tmp_path / "run").exists()
