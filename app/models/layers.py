"""Layers our model families share."""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="app")
class BatchNormalization(keras.layers.BatchNormalization):
  """keras.layers.BatchNormalization that, on the TensorFlow backend, runs TF's fused kernel, and
  whose bias may learn faster than the other weights.

  Keras 3 computes batch norm from separate ops (moments, then normalise, with casts to float32);
  TF's FusedBatchNormV3 does it in one oneDNN kernel with a fused gradient. On this 2-core CPU
  that trains the default Fashion-MNIST net about 1.9x faster under mixed_bfloat16
  (tools/bench_batchnorm.py, docs/BENCHMARKS.md). Weights, config and results on other backends
  are Keras's own.

  `bias_lr_scale` (airbench94: 64, with scale=False): the layer adds beta * sqrt(bias_lr_scale),
  so the stored beta's gradient is sqrt(bias_lr_scale) times larger and plain or momentum SGD
  moves the effective bias bias_lr_scale times faster than at the shared rate, a per-variable
  rate without a second optimizer (adaptive optimizers such as Adam are scale-free, so there it
  does little).
  """

  def __init__(self, *args, bias_lr_scale=1.0, **kwargs):
    super().__init__(*args, **kwargs)
    self.bias_lr_scale = float(bias_lr_scale)

  def get_config(self):
    return {**super().get_config(), "bias_lr_scale": self.bias_lr_scale}

  def _bias_factor(self):
    return self.bias_lr_scale ** 0.5 if self.center else 1.0

  def call(self, inputs, training=None, mask=None):
    if (keras.backend.backend() != "tensorflow" or mask is not None or self.renorm
        or len(inputs.shape) != 4 or self.axis not in (-1, 3) or not self.center):
      outputs = super().call(inputs, training=training, mask=mask)
      if self._bias_factor() != 1.0:  # y = norm * gamma + beta, plus (factor - 1) * beta
        outputs = outputs + keras.ops.cast((self._bias_factor() - 1.0) * self.beta, outputs.dtype)
      return outputs
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    training = bool(training) and self.trainable
    channels = inputs.shape[-1]
    gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels], "float32")
    beta = tf.cast(self.beta, "float32") * self._bias_factor()
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, gamma, beta,
        mean=None if training else tf.cast(self.moving_mean, "float32"),
        variance=None if training else tf.cast(self.moving_variance, "float32"),
        epsilon=self.epsilon, is_training=training)
    if training:
      self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
      self.moving_variance.assign(
          self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
    return outputs


@keras.saving.register_keras_serializable(package="app")
class FlipConcat(keras.layers.Layer):
  """Flip test-time augmentation, first half: at inference, appends each image's left-right
  mirror to the batch ([x; flip(x)], twice the batch); identity in training. PairMean averages
  the two halves of the network's output again, so validation, test, predict and the export all
  see the flip-averaged probabilities (batch norm runs per image at inference, so the doubled
  batch changes nothing else)."""

  def call(self, inputs, training=None):
    if training:
      return inputs
    return keras.ops.concatenate([inputs, keras.ops.flip(inputs, axis=2)], axis=0)

  def compute_output_shape(self, input_shape):
    return input_shape


@keras.saving.register_keras_serializable(package="app")
class PairMean(keras.layers.Layer):
  """Flip test-time augmentation, second half: at inference, the mean of the batch's first and
  second halves (each image's and its mirror's probabilities); identity in training."""

  def call(self, inputs, training=None):
    if training:
      return inputs
    half = keras.ops.shape(inputs)[0] // 2
    return (inputs[:half] + inputs[half:]) / 2

  def compute_output_shape(self, input_shape):
    return input_shape


@keras.saving.register_keras_serializable(package="app")
class MirrorTranslateConcat(keras.layers.Layer):
  """Mirror + translate test-time augmentation (airbench's tta_level=2), first half: at
  inference, six views of each image stacked along the batch, [x; up-left; down-right] and the
  three mirrored, the translations by one pixel of the reflection-padded image; identity in
  training. ViewMean(MIRROR_TRANSLATE_WEIGHTS) averages the six predictions again."""

  def call(self, inputs, training=None):
    if training:
      return inputs
    padded = keras.ops.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
    views = [inputs, padded[:, :-2, :-2], padded[:, 2:, 2:]]
    return keras.ops.concatenate(views + [keras.ops.flip(view, axis=2) for view in views], axis=0)

  def compute_output_shape(self, input_shape):
    return input_shape


# The weights of MirrorTranslateConcat's views: the image and its mirror 1/4 each, the four
# translated views 1/8 each (airbench: half the untranslated pair, half the translated pairs).
MIRROR_TRANSLATE_WEIGHTS = (0.25, 0.125, 0.125, 0.25, 0.125, 0.125)


@keras.saving.register_keras_serializable(package="app")
class ViewMean(keras.layers.Layer):
  """Test-time augmentation, second half: at inference, the batch holds len(weights) views of
  each image one block after the other; returns their weighted mean; identity in training."""

  def __init__(self, weights, **kwargs):
    super().__init__(**kwargs)
    self.view_weights = tuple(float(w) for w in weights)

  def call(self, inputs, training=None):
    if training:
      return inputs
    views = keras.ops.reshape(inputs, (len(self.view_weights), -1, inputs.shape[-1]))
    weights = keras.ops.convert_to_tensor(self.view_weights, dtype=inputs.dtype)
    return keras.ops.einsum("v,vbc->bc", weights, views)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "weights": list(self.view_weights)}


@keras.saving.register_keras_serializable(package="app")
class PartialDirac(keras.initializers.Initializer):
  """A convolution kernel whose first min(in, out) filters are the identity (each passes its own
  input channel through unchanged) and whose others come from `base`: airbench's
  `nn.init.dirac_(w[:w.size(1)])`, which starts every conv near the identity map (in Keller
  Jordan's airbench ablations it took 94% on CIFAR-10 from 17 to 14 epochs)."""

  def __init__(self, base="glorot_uniform"):
    self.base_name, self.base = base, keras.initializers.get(base)

  def __call__(self, shape, dtype=None):
    kernel = self.base(shape, dtype=dtype)
    height, width, inputs, outputs = shape
    count = min(inputs, outputs)
    identity = np.zeros((height, width, inputs, count), "float32")
    identity[height // 2, width // 2, np.arange(count), np.arange(count)] = 1.0
    identity = keras.ops.cast(identity, kernel.dtype)
    return keras.ops.concatenate([identity, kernel[..., count:]], axis=-1)

  def get_config(self):
    return {"base": self.base_name}
