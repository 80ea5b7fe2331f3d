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


def _nested_bn_model(policy="mixed_bfloat16"):
  """conv -> BN -> relu -> (a nested model: conv -> BN) -> global average pool."""
  inner_inputs = keras.Input((None, None, 8))
  inner = keras.Model(inner_inputs, BatchNormalization(dtype=policy, name="inner_bn")(
      keras.layers.Conv2D(4, 3, padding="same", dtype=policy)(inner_inputs)), name="inner")
  inputs = keras.Input((None, None, 3))
  x = keras.layers.Conv2D(8, 3, padding="same", dtype=policy)(inputs)
  x = keras.layers.ReLU(dtype=policy)(BatchNormalization(dtype=policy, name="outer_bn")(x))
  outputs = keras.layers.GlobalAveragePooling2D(dtype="float32")(inner(x))
  return keras.Model(inputs, outputs)


def test_recomputed_statistics_are_the_population_ones_so_inference_matches_training():
  # Issue 18: with 2 steps an epoch the moving averages lagged the weights and the test accuracy
  # fell to chance; precise BN sets them to the statistics of the current weights.
  from app.models.layers import recompute_batch_norm_statistics  # pylint: disable=g-import-not-at-top
  model = _nested_bn_model()
  x = np.random.default_rng(0).normal(3, 1, (6, 24, 32, 3)).astype("float32")
  model(x, training=True)  # one moving-average step: 10% of the way from (0, 1)
  assert not np.allclose(model(x, training=False), model(x, training=True), atol=1e-2)
  assert recompute_batch_norm_statistics(model, [x[:4], x[4:]]) == 2
  # Over the whole batch at once the population statistics are that batch's: inference now
  # normalises as training does (up to bf16 rounding of the activations).
  np.testing.assert_allclose(model(x, training=False), model(x, training=True), atol=2e-2)
  outer = model.get_layer("outer_bn")
  conv = np.asarray(keras.ops.cast(model.layers[1](x), "float64"))
  np.testing.assert_allclose(outer.moving_mean, conv.mean((0, 1, 2)), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(outer.moving_variance, conv.var((0, 1, 2)), rtol=1e-4)
  assert outer.population is None  # recording ends with the call


def test_recomputing_leaves_frozen_layers_and_an_empty_set_of_batches_alone():
  from app.models.layers import recompute_batch_norm_statistics  # pylint: disable=g-import-not-at-top
  model = _nested_bn_model("float32")
  model.get_layer("outer_bn").trainable = False
  assert recompute_batch_norm_statistics(model, []) == 1  # the inner one, with nothing to read
  inner = model.get_layer("inner").get_layer("inner_bn")
  np.testing.assert_array_equal(inner.moving_variance, np.ones(4))
  recompute_batch_norm_statistics(model, [np.full((2, 8, 8, 3), 5.0, "float32")])
  np.testing.assert_array_equal(model.get_layer("outer_bn").moving_mean, np.zeros(8))
  assert not np.allclose(inner.moving_variance, 1.0)


def test_bfloat16_batch_statistics_and_pooling_accumulate_in_float32():
  # Issue 18's first suspect, measured not guilty: over 331x500 positions of values 3 +- 1, a
  # sum accumulated in bfloat16 (8-bit mantissa) would stall; the fused kernel's statistics and
  # global average pooling are as in float32, up to bf16 rounding of the pooled result.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = tf.cast(tf.random.stateless_normal((2, 331, 500, 2), seed=(1, 2), mean=3.0), "bfloat16")
  values = np.asarray(tf.cast(x, "float64"))
  _, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, tf.ones([2]), tf.zeros([2]))
  # float32 accumulation: within 1e-4 (an AVX2 CPU's kernels: 1.02e-5); bfloat16 accumulation
  # would be off by ~2**-8.
  np.testing.assert_allclose(mean, values.mean((0, 1, 2)), rtol=1e-4)
  np.testing.assert_allclose(variance, values.var((0, 1, 2)), rtol=1e-3)
  pooled = keras.layers.GlobalAveragePooling2D(dtype="mixed_bfloat16")(x)
  np.testing.assert_allclose(np.asarray(tf.cast(pooled, "float64")), values.mean((1, 2)),
                             rtol=2 ** -8)
