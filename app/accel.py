"""Acceleration switches: the mixed-precision policy (XLA and steps_per_execution go to compile),
what the devices here support, and the policy --mixed_precision=auto picks for them."""

import functools
import time

import keras

# Compute capability from which NVIDIA GPUs run float16 (tensor cores) and bfloat16 natively.
_FLOAT16_CAPABILITY, _BFLOAT16_CAPABILITY = (7, 0), (8, 0)
_BFLOAT16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}  # /proc/cpuinfo: native bfloat16 arithmetic


def set_precision(runtime):
  """The mixed-precision policy and the layout switch of runtime (see set_layout)."""
  keras.mixed_precision.set_global_policy(runtime.mixed_precision)
  set_layout(runtime.channels_last)


def set_layout(channels_last):
  """Our models are built channels-last (NHWC: the layout oneDNN and tensor cores want, what
  PyTorch calls channels_last). By default TensorFlow's graph optimizer may still rewrite
  convolutions to NCHW where it expects that to be faster (float32 on GPUs); channels_last=True
  turns that layout optimizer off so every op runs NHWC. Applies to functions traced after it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.optimizer.set_experimental_options({"layout_optimizer": not channels_last})


def _cpu_flags():
  try:
    with open("/proc/cpuinfo") as f:
      return set(next((line for line in f if line.startswith("flags")), "").split())
  except OSError:
    return set()


def _gpu_capabilities():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  capabilities = []
  for gpu in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(gpu)
    capabilities.append(tuple(details.get("compute_capability") or (0, 0)))
  return capabilities


# No mixed_float16 on a CPU, whatever its flags (avx512_fp16, amx_fp16): TF 2.21 ran float16 on
# Eigen here (its log: "oneDNN supports DT_HALF only on platforms with AVX-512. Falling back to the
# default Eigen-based implementation"). Measured 2026-12-01 on this 2-core VM (AMD EPYC,
# avx512_bf16, no avx512_fp16), TF 2.21.0: a 3x3 convolution on 64x32x32x64 images, backward, takes
# 1660 ms in float16 against 105 ms in float32 (16x; forward 74 vs 88 ms), and a small conv net's
# training step 624 ms against 127 ms (4.9x; mixed_bfloat16 59 ms). Issue 20 measured ~40x slower
# on a CPU that lists avx512_fp16 and amx_fp16, which the flag test here used to accept.
_CPU_FLOAT16 = ("this machine has no GPU, and TensorFlow trains float16 on a CPU without native "
                "kernels whatever its flags (convolution gradients 16x slower than float32)")


@functools.lru_cache(maxsize=None)
def supported_precisions():
  """{policy: why it is supported or not} for the devices training runs on: the GPUs when there
  are any, else the CPU. A policy is supported where the device computes in that type natively:
  mixed_float16 on GPUs of compute capability >= 7.0 only, never on a CPU."""
  gpus = _gpu_capabilities()
  if gpus:
    lowest = min(gpus)
    return {
        "float32": None,
        "mixed_bfloat16": None if lowest >= _BFLOAT16_CAPABILITY else
                          f"GPU compute capability {lowest} < 8.0 has no native bfloat16",
        "mixed_float16": None if lowest >= _FLOAT16_CAPABILITY else
                         f"GPU compute capability {lowest} < 7.0 has no float16 tensor cores",
    }
  flags = _cpu_flags()
  return {
      "float32": None,
      "mixed_bfloat16": None if flags & _BFLOAT16_CPU_FLAGS else
                        "this CPU has no bfloat16 instructions (AVX512_BF16 or AMX)",
      "mixed_float16": _CPU_FLOAT16,
  }


def auto_precision(on_tpu=False):
  """--mixed_precision=auto -> (policy, why), from the devices training runs on: mixed_bfloat16
  on a TPU (`on_tpu`: --strategy=tpu, the only strategy that trains on one; a TPU VM's host
  trains on its CPU otherwise), mixed_float16 on GPUs of compute capability >= 7.0 (Tensor
  Cores; the lowest GPU decides), mixed_bfloat16 on a CPU with native bfloat16 (AVX512_BF16 or
  AMX), float32 otherwise. Reads the device list only: TensorFlow's devices are not initialised."""
  if on_tpu:
    return "mixed_bfloat16", "auto: a TPU, which computes bfloat16 natively"
  gpus = _gpu_capabilities()
  if gpus:
    lowest = ".".join(map(str, min(gpus)))
    if min(gpus) >= _FLOAT16_CAPABILITY:
      return "mixed_float16", (f"auto: {len(gpus)} GPU(s) with float16 Tensor Cores (compute "
                               f"capability {lowest}{' at least' if len(gpus) > 1 else ''} >= 7.0)")
    return "float32", f"auto: a GPU of compute capability {lowest} < 7.0 has no Tensor Cores"
  native = sorted(_cpu_flags() & _BFLOAT16_CPU_FLAGS)
  if native:
    return "mixed_bfloat16", (f"auto: no GPU; this CPU computes bfloat16 natively "
                              f"({', '.join(native)})")
  return "float32", ("auto: no GPU, and this CPU has no bfloat16 instructions (avx512_bf16 or "
                     "amx_bf16); float16 is never used on a CPU")


# 3x3 convolutions (batch, side, channels in = out) like ResNet-9's stages on 32x32 images.
PEAK_SHAPES = ((128, 32, 64), (64, 32, 128), (64, 16, 256), (64, 8, 512))


def conv_peak(dtype, repeats=5):
  """GFLOP/s of 3x3 convolutions in `dtype` (forward): the best shape of PEAK_SHAPES, each the
  best of `repeats` timed calls."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  conv = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"))
  best_rate = 0.0
  for batch, side, channels in PEAK_SHAPES:
    images = tf.cast(tf.random.normal([batch, side, side, channels]), dtype)
    kernel = tf.cast(tf.random.normal([3, 3, channels, channels]), dtype)
    conv(images, kernel).numpy()
    flops = 2 * batch * side * side * channels * channels * 9
    best = float("inf")
    for _ in range(repeats):
      start = time.perf_counter()
      conv(images, kernel).numpy()
      best = min(best, time.perf_counter() - start)
    best_rate = max(best_rate, flops / best / 1e9)
  return best_rate
