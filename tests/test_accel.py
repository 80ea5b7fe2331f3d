"""app/accel.py: which precisions the devices here compute natively, and the config check that
refuses the others (issue 20: mixed_float16 on a CPU listing avx512_fp16 trained ~40x slower)."""

import glob
import os
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


# --mixed_precision=auto, on GPU lists faked at TensorFlow's own functions (the GPU or TPU
# machines it is for are not here: docs/GPU.md lists what only they can confirm).

@pytest.fixture
def tf_devices(monkeypatch):
  """tf_devices(gpu_capabilities) makes tf.config list those GPUs (with get_device_details'
  compute capabilities); the CPU's flags are this machine's unless `devices` fakes them."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  listed = tf.config.list_physical_devices

  def fake(gpu_capabilities):
    gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU")
            for i in range(len(gpu_capabilities))]
    details = dict(zip(gpus, gpu_capabilities))
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: gpus if kind == "GPU" else listed(kind))
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda gpu: {"device_name": "faked", "compute_capability": details[gpu]})
    accel.supported_precisions.cache_clear()
  yield fake
  accel.supported_precisions.cache_clear()


@pytest.mark.parametrize("capabilities, policy", [
    ([(7, 0)], "mixed_float16"), ([(9, 0), (8, 0)], "mixed_float16"),
    ([(6, 1)], "float32"), ([(8, 0), (6, 0)], "float32")])  # the lowest GPU decides
def test_auto_picks_float16_on_gpus_with_tensor_cores_only(tf_devices, capabilities, policy):
  tf_devices(capabilities)
  chosen, why = accel.auto_precision()
  assert chosen == policy, why
  lowest = ".".join(map(str, min(capabilities)))
  assert why.startswith("auto:") and f"compute capability {lowest}" in why, why


def test_auto_picks_bfloat16_on_a_tpu_whatever_the_cpu(tf_devices, devices):
  devices({"avx2"})  # no bfloat16 on the host
  tf_devices([])
  assert accel.auto_precision(on_tpu=True) == ("mixed_bfloat16", "auto: a TPU, which computes "
                                                               "bfloat16 natively")
  assert accel.auto_precision()[0] == "float32"  # the same host, training on its CPU


@pytest.mark.parametrize("flags, policy", [
    ({"avx512f", "avx512_bf16"}, "mixed_bfloat16"), ({"amx_bf16"}, "mixed_bfloat16"),
    (FLOAT16_CPU_FLAGS - {"avx512_bf16", "amx_bf16"}, "float32")])  # never float16 on a CPU
def test_auto_on_a_cpu_picks_bfloat16_where_it_is_native(tf_devices, devices, flags, policy):
  devices(flags)
  tf_devices([])
  chosen, why = accel.auto_precision()
  assert chosen == policy, why
  assert all(flag in why for flag in flags & {"avx512_bf16", "amx_bf16"}), why


def test_resolve_turns_auto_into_the_policy_once_and_keeps_why(tf_devices, caplog):
  caplog.set_level("INFO", logger="absl")
  tf_devices([(8, 0)])
  config = default.get_config()
  config.runtime.mixed_precision = "auto"
  resolved = config_lib.resolve(config)
  assert resolved.runtime.mixed_precision == "mixed_float16"
  assert resolved.derived.mixed_precision_reason == accel.auto_precision()[1]
  assert [r.getMessage() for r in caplog.records if r.getMessage().startswith(
      "mixed precision: ")] == [f"mixed precision: mixed_float16 ({accel.auto_precision()[1]})"]
  # A TPU strategy (the name app.distribute.initialize resolved) is bfloat16's.
  on_tpu = config_lib.resolve(config, strategy=("tpu", "--strategy=tpu"))
  assert on_tpu.runtime.mixed_precision == "mixed_bfloat16"
  config.runtime.mixed_precision = "float32"  # a policy given is kept, and said to be given
  assert config_lib.resolve(config).derived.mixed_precision_reason == "--mixed_precision=float32"


# The recipes in configs/ that keep the schema's float32 (configs/default.py itself, and the
# transfer recipe measured in float32); every other recipe asks for auto.
FLOAT32_RECIPES = {"default", "cifar_mini_transfer"}
RECIPES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                 if not p.endswith("__init__.py"))


@pytest.mark.parametrize("flags, policy", [({"avx2", "avx512_bf16"}, "mixed_bfloat16"),
                                           ({"avx2", "fma"}, "float32")])
def test_the_shipped_recipes_train_bfloat16_only_where_the_cpu_computes_it(tf_devices, devices,
                                                                          flags, policy):
  """On a CPU with only AVX2 (AMD EPYC, 2026-12-03) bfloat16 is emulated: the main job's recipe
  trained 6.3x slower in mixed_bfloat16 than in float32 (docs/BENCHMARKS.md), so no recipe asks
  for mixed_bfloat16 by name: those that trained in it ask for auto."""
  import importlib  # pylint: disable=g-import-not-at-top
  devices(flags)
  tf_devices([])
  assert "fashion_mnist" in RECIPES and "data_aware" in RECIPES
  for name in RECIPES:
    recipe = importlib.import_module(f"configs.{name}").get_config()
    asked = "float32" if name in FLOAT32_RECIPES else "auto"
    assert recipe.runtime.mixed_precision == asked, name
    if name in FLOAT32_RECIPES or name == "data_aware":  # data_aware resolves with its data:
      continue  # tests/train/test_data_aware.py
    resolved = config_lib.resolve(recipe)
    assert resolved.runtime.mixed_precision == policy, (
        name, resolved.derived.mixed_precision_reason)


def test_bfloat16_asked_for_where_it_is_emulated_trains_with_a_warning(tf_devices, devices, caplog):
  caplog.set_level("INFO", logger="absl")
  config = default.get_config()
  config.runtime.mixed_precision = "mixed_bfloat16"
  devices({"avx2", "fma"})
  tf_devices([])
  resolved = config_lib.resolve(config)
  assert resolved.runtime.mixed_precision == "mixed_bfloat16"  # asked for: kept
  why = resolved.derived.mixed_precision_reason
  assert why.startswith("--mixed_precision=mixed_bfloat16 (emulated: this CPU has no bfloat16 "
                        "instructions") and "--mixed_precision=auto picks float32" in why, why
  assert [r.levelname for r in caplog.records if r.getMessage() == f"mixed precision: {why}"] == [
      "WARNING"]
  caplog.clear()
  devices({"avx2", "amx_bf16"})  # native: said to be given, no warning
  tf_devices([])
  assert config_lib.resolve(config).derived.mixed_precision_reason == \
      "--mixed_precision=mixed_bfloat16"
  assert not [r for r in caplog.records if r.levelname == "WARNING"]
  devices({"avx2", "amx_bf16"}, [(7, 5)])  # a Turing GPU trains: no bfloat16 there either
  assert "emulated: GPU compute capability (7, 5) < 8.0" in config_lib.resolve(
      config).derived.mixed_precision_reason
