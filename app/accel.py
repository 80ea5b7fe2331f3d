"""Acceleration switches: the mixed-precision policy (XLA and steps_per_execution go to compile),
and what the devices here support."""

import functools
import time

import keras

# Compute capability from which NVIDIA GPUs run float16 (tensor cores) and bfloat16 natively.
_FLOAT16_CAPABILITY, _BFLOAT16_CAPABILITY = (7, 0), (8, 0)


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


@functools.lru_cache(maxsize=None)
def supported_precisions():
  """{policy: why it is supported or not} for the devices training runs on: the GPUs when there
  are any, else the CPU. A policy is supported where the device computes in that type natively."""
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
      "mixed_bfloat16": None if flags & {"avx512_bf16", "amx_bf16"} else
                        "this CPU has no bfloat16 instructions (AVX512_BF16 or AMX)",
      "mixed_float16": None if flags & {"avx512_fp16", "amx_fp16"} else
                       "this CPU has no float16 arithmetic (AVX512_FP16 or AMX-FP16): TensorFlow "
                       "would emulate it, slower than float32",
  }


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
