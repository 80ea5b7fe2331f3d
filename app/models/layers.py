"""Layers our model families share."""

import keras


@keras.saving.register_keras_serializable(package="app")
class BatchNormalization(keras.layers.BatchNormalization):
  """keras.layers.BatchNormalization that, on the TensorFlow backend, runs TF's fused kernel.

  Keras 3 computes batch norm from separate ops (moments, then normalise, with casts to float32);
  TF's FusedBatchNormV3 does it in one oneDNN kernel with a fused gradient. On this 2-core CPU
  that trains the default Fashion-MNIST net about 1.9x faster under mixed_bfloat16 (tools/bench_batchnorm.py,
  docs/BENCHMARKS.md). Weights, config and results on other backends are Keras's own.
  """

  def call(self, inputs, training=None, mask=None):
    if (keras.backend.backend() != "tensorflow" or mask is not None or self.renorm
        or len(inputs.shape) != 4 or self.axis not in (-1, 3) or not (self.scale and self.center)):
      return super().call(inputs, training=training, mask=mask)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    training = bool(training) and self.trainable
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, tf.cast(self.gamma, "float32"), tf.cast(self.beta, "float32"),
        mean=None if training else tf.cast(self.moving_mean, "float32"),
        variance=None if training else tf.cast(self.moving_variance, "float32"),
        epsilon=self.epsilon, is_training=training)
    if training:
      self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
      self.moving_variance.assign(
          self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
    return outputs
