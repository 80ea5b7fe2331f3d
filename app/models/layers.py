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

  While `population` is a list (recompute_batch_norm_statistics), a call normalises with the
  batch's own statistics and appends them there instead of updating the moving averages.
  """

  def __init__(self, *args, bias_lr_scale=1.0, **kwargs):
    super().__init__(*args, **kwargs)
    self.bias_lr_scale = float(bias_lr_scale)
    self.population = None  # recompute_batch_norm_statistics: its batches' (mean, var, count)

  def get_config(self):
    return {**super().get_config(), "bias_lr_scale": self.bias_lr_scale}

  def _bias_factor(self):
    return self.bias_lr_scale ** 0.5 if self.center else 1.0

  def _fused(self, inputs):
    """Whether TF's fused kernel computes this layer's batch norm of `inputs`."""
    return (keras.backend.backend() == "tensorflow" and not self.renorm and len(inputs.shape) == 4
            and self.axis in (-1, 3) and self.center)

  def _fused_scale_offset(self, channels):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels], "float32")
    return gamma, tf.cast(self.beta, "float32") * self._bias_factor()

  def call(self, inputs, training=None, mask=None):
    if self.population is not None:
      return self._normalise_and_record(inputs)
    if mask is not None or not self._fused(inputs):
      outputs = super().call(inputs, training=training, mask=mask)
      if self._bias_factor() != 1.0:  # y = norm * gamma + beta, plus (factor - 1) * beta
        outputs = outputs + keras.ops.cast((self._bias_factor() - 1.0) * self.beta, outputs.dtype)
      return outputs
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    training = bool(training) and self.trainable
    gamma, beta = self._fused_scale_offset(inputs.shape[-1])
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

  def _normalise_and_record(self, inputs):
    """Training-mode batch norm (the batch's own statistics, in float32) that records them for
    recompute_batch_norm_statistics instead of updating the moving averages."""
    axis = self.axis % len(inputs.shape)
    count = keras.ops.cast(keras.ops.size(inputs), "float32") / inputs.shape[axis]
    if self._fused(inputs):  # float32 statistics of bf16 inputs without a float32 copy of them
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      gamma, beta = self._fused_scale_offset(inputs.shape[-1])
      outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
          inputs, gamma, beta, epsilon=self.epsilon, is_training=True)
      variance = variance * (count - 1.0) / count  # the kernel's is unbiased (n / (n - 1))
    else:
      values = keras.ops.cast(inputs, "float32")
      mean, variance = keras.ops.moments(values, [i for i in range(len(inputs.shape)) if i != axis])
      gamma = keras.ops.cast(self.gamma, "float32") if self.scale else None
      beta = keras.ops.cast(self.beta, "float32") * self._bias_factor() if self.center else None
      outputs = keras.ops.cast(keras.ops.batch_normalization(
          values, mean, variance, axis, offset=beta, scale=gamma, epsilon=self.epsilon),
          self.compute_dtype)
    self.population.append((mean, variance, count))
    return outputs

  def set_population_statistics(self, records):
    """The moving mean and variance := those over all the inputs of `records`, (mean, variance,
    count) per batch (within-batch variance plus the spread of the means), computed in float64."""
    if not records:
      return
    means, variances, counts = (np.array([keras.ops.convert_to_numpy(t) for t in column],
                                         np.float64) for column in zip(*records))
    shares = counts / counts.sum()
    mean = shares @ means
    self.moving_mean.assign(mean.astype("float32"))
    self.moving_variance.assign((shares @ (variances + means ** 2) - mean ** 2).astype("float32"))


def batch_norm_layers(model):
  """The trainable BatchNormalization layers (ours) of `model`, nested models included; frozen
  ones (a transfer run's backbone) keep the statistics they came with."""
  for layer in getattr(model, "layers", ()):
    if isinstance(layer, BatchNormalization):
      if layer.trainable:
        yield layer
    else:
      yield from batch_norm_layers(layer)


def _batch_statistics(model, layers):
  """A function of an image batch: each of `layers`' [(mean, variance, count)] in `model`. Kept
  on the model, so its graph is traced once a run, not at every validation (0.5-0.9 s a trace
  for a small net); a model whose trainable layers changed (a transfer run's) gets a new one."""
  cached = getattr(model, "_batch_norm_statistics", None)
  if cached and cached[0] == [id(layer) for layer in layers]:
    return cached[1]

  def batch_statistics(images):
    for layer in layers:
      layer.population = []
    try:
      model(images, training=False)
      return [layer.population for layer in layers]
    finally:
      for layer in layers:
        layer.population = None

  if keras.backend.backend() == "tensorflow":  # a graph: 3.8 s against 10 s eager (221 images)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    batch_statistics = tf.function(batch_statistics, reduce_retracing=True)
  setattr(model, "_batch_norm_statistics", ([id(layer) for layer in layers], batch_statistics))
  return batch_statistics


def recompute_batch_norm_statistics(model, batches):
  """Precise BN (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", sec. 3; what
  torch.optim.swa_utils.update_bn does): sets every batch-norm layer's moving mean and variance to
  the population statistics of its inputs over `batches` (image batches the model takes) under
  the current weights, each layer normalising with its batch's statistics as in training, the rest
  of the model (augmentation, dropout) in inference mode. Returns the number of layers set.

  The moving averages lag the weights: at momentum 0.9 they average about the last 10 steps, so
  in a run of few steps they mix in much earlier weights (and 0.9 ** 24 = 8% of their start
  values). Measured 2026-12-02 on the hymenoptera photos at 500x369 (221 training images,
  configs/fashion_mnist.py under mixed_bfloat16): at batch 128, 2 steps an epoch, their moving
  variances ended at 0.68-0.87 of the final weights' and validation answered the majority class
  from epoch 6 on; test accuracy 0.542 (chance) before, 0.693 with the statistics recomputed; at
  batch 256 (1 step an epoch) 0.451 and 0.647. Training itself is unchanged (same history).
  Not a precision effect (float32 lags alike): on a (2, 331, 500, 8) bf16 tensor of values 3 +- 1
  TF's fused kernel returns float32 statistics equal to those of the same values in float32 (8e-6
  and 1.9e-4 off float64's mean and variance), bf16 global average pooling is float64's mean
  rounded to bf16 (1.4e-3; a sum accumulated in bf16 would stall, off by 100%), and the bf16 run's
  weights evaluated in float32 predicted the same 153 classes."""
  layers = list(batch_norm_layers(model))
  per_batch = [_batch_statistics(model, layers)(images) for images in batches]
  for index, layer in enumerate(layers):
    layer.set_population_statistics([record for batch in per_batch for record in batch[index]])
  return len(layers)


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
