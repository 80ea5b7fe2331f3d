"""Our fused BatchNormalization computes what keras.layers.BatchNormalization computes."""

import keras
import numpy as np
import pytest

from app.models.layers import BatchNormalization


def _pair(momentum=0.9):
  ours, theirs = BatchNormalization(momentum=momentum), keras.layers.BatchNormalization(momentum=momentum)
  for layer in (ours, theirs):
    layer.build((None, 6, 6, 4))
  rng = np.random.default_rng(0)
  weights = [rng.normal(1, 0.2, 4), rng.normal(0, 0.2, 4), rng.normal(0, 0.5, 4), rng.uniform(0.5, 2, 4)]
  ours.set_weights(weights)
  theirs.set_weights(weights)
  return ours, theirs


def test_inference_matches_keras():
  ours, theirs = _pair()
  x = np.random.default_rng(1).normal(2, 3, (8, 6, 6, 4)).astype("float32")
  np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=1e-5)


def test_training_normalises_with_batch_statistics_and_updates_moving_averages():
  ours, theirs = _pair(momentum=0.5)
  x = np.random.default_rng(2).normal(2, 3, (32, 6, 6, 4)).astype("float32")
  np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-4)
  np.testing.assert_allclose(ours.moving_mean, theirs.moving_mean, atol=1e-5)
  # TF's fused kernel keeps the unbiased (n / (n - 1)) batch variance in its moving average.
  np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, rtol=2e-3)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_output_dtype_follows_the_policy(policy):
  layer = BatchNormalization(dtype=policy)
  out = layer(np.ones((2, 3, 3, 2), "float32"), training=True)
  assert keras.backend.standardize_dtype(out.dtype) == keras.mixed_precision.Policy(policy).compute_dtype


def test_gradients_flow_to_gamma_and_beta():
  import tensorflow as tf
  layer = BatchNormalization()
  x = tf.random.normal((4, 3, 3, 2))
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(x, training=True) * tf.range(2, dtype=tf.float32))
  grads = tape.gradient(loss, [layer.gamma, layer.beta])
  assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_partial_dirac_starts_the_first_filters_as_the_identity():
  from app.models.layers import PartialDirac  # pylint: disable=g-import-not-at-top
  kernel = np.asarray(PartialDirac()((3, 3, 4, 6)))
  x = np.random.default_rng(0).normal(size=(1, 5, 5, 4)).astype("float32")
  y = np.asarray(keras.ops.conv(x, kernel, padding="same"))
  np.testing.assert_allclose(y[..., :4], x, atol=1e-6)  # identity on the first 4 outputs
  assert np.abs(kernel[..., 4:]).sum() > 0  # the rest keep the base initializer's values
  assert PartialDirac.from_config(PartialDirac().get_config()).base_name == "glorot_uniform"


@pytest.mark.parametrize("rank", [4, 2])  # 4: TF's fused kernel; 2: Keras's own batch norm
def test_bias_lr_scale_adds_the_scaled_bias_and_scales_its_gradient(rank):
  import tensorflow as tf
  shape = (8, 3, 3, 2) if rank == 4 else (8, 2)
  x = tf.random.normal(shape, seed=3)
  plain, fast = BatchNormalization(scale=False), BatchNormalization(scale=False, bias_lr_scale=64)
  for layer in (plain, fast):
    layer.build(shape)
  beta = np.array([0.5, -1.0], "float32")
  plain.beta.assign(beta * 8.0)  # the effective bias: the stored one times sqrt(64)
  fast.beta.assign(beta)
  grads = []
  for layer in (plain, fast):
    with tf.GradientTape() as tape:
      out = layer(x, training=True)
      loss = tf.reduce_sum(out * tf.range(2, dtype=tf.float32) + out ** 2)
    grads.append(tape.gradient(loss, layer.beta).numpy())
  np.testing.assert_allclose(fast(x, training=True), plain(x, training=True), atol=1e-5)
  np.testing.assert_allclose(grads[1], 8.0 * grads[0], rtol=1e-5)
  # SGD with rate r moves the effective bias 8 * (r * 8 * g) = 64 * r * g: 64 times faster.
  restored = BatchNormalization.from_config(fast.get_config())
  assert restored.bias_lr_scale == 64.0 and not restored.scale
