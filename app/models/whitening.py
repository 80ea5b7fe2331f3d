"""Patch whitening: a frozen first convolution that decorrelates image patches, its filters
computed from the training images (David Page's DAWNBench follow-ups; Keller Jordan's airbench,
where it is worth about as much as 3 of 10 epochs).

For k x k patches with C channels (n = k*k*C values), the filters are the eigenvectors of the
patch covariance scaled by 1/sqrt(eigenvalue + eps), and their negatives: 2n output channels
whose responses to a patch are uncorrelated with unit variance. `init_from_data(model, dataset)`
is the one call that sets them, after build_model and before training.
"""

import keras
import numpy as np

EPS = 5e-4  # airbench's eps: keeps the near-zero-variance directions from blowing up
MAX_IMAGES = 5000  # airbench estimates the covariance from the first 5,000 training images


@keras.saving.register_keras_serializable(package="app")
class PatchWhitening(keras.layers.Layer):
  """A `patch_size` x `patch_size` valid convolution with frozen filters and a trained bias.

  (B, H, W, C) -> (B, H - k + 1, W - k + 1, 2 k k C). Until set_filters() gives it the data's
  whitening filters it holds a random (He-normal) frozen projection."""

  def __init__(self, patch_size=2, **kwargs):
    super().__init__(**kwargs)
    self.patch_size = patch_size

  def build(self, input_shape):
    k, channels = self.patch_size, input_shape[-1]
    self.kernel = self.add_weight(name="kernel", shape=(k, k, channels, 2 * k * k * channels),
                                  initializer="he_normal", trainable=False)
    self.bias = self.add_weight(name="bias", shape=(2 * k * k * channels,), initializer="zeros")

  def call(self, inputs):
    return keras.ops.conv(inputs, self.kernel, strides=1, padding="valid") + self.bias

  def compute_output_shape(self, input_shape):
    k = self.patch_size
    side = lambda s: None if s is None else s - k + 1
    return (input_shape[0], side(input_shape[1]), side(input_shape[2]),
            2 * k * k * input_shape[-1])

  def set_filters(self, covariance, eps=EPS):
    """Whitening filters from the (n, n) covariance of flattened (k, k, C) patches."""
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    filters = eigenvectors.T / np.sqrt(np.maximum(eigenvalues, 0.0) + eps)[:, None]  # (n, n)
    filters = np.concatenate([filters, -filters])  # (2n, n): both signs survive a ReLU/GELU
    kernel = filters.reshape(-1, *self.kernel.shape[:3]).transpose(1, 2, 3, 0)  # (k, k, C, 2n)
    self.kernel.assign(kernel.astype("float32"))

  def get_config(self):
    return {**super().get_config(), "patch_size": self.patch_size}


def patch_covariance(images, patch_size):
  """(N, H, W, C) images -> the (n, n) second-moment matrix of their k x k patches, each
  flattened in (k, k, C) order, the order of a Conv2D kernel's first three axes."""
  patches = np.lib.stride_tricks.sliding_window_view(images, (patch_size, patch_size), axis=(1, 2))
  # (N, H-k+1, W-k+1, C, k, k) -> (N * positions, k * k * C)
  patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, patch_size * patch_size * images.shape[-1])
  patches = patches.astype(np.float64)
  return patches.T @ patches, len(patches)


def init_from_data(model, dataset, max_images=MAX_IMAGES):
  """Sets every PatchWhitening layer of a build_model() model from up to `max_images` images of
  `dataset` (batches of (raw images, labels)); the images pass through the layers before it
  (normalize, ...) first. Reads nothing when the model has no such layer."""
  network = next(layer for layer in model.layers if isinstance(layer, keras.Model))  # build_model's
  targets = [layer for layer in getattr(network, "layers", []) if isinstance(layer, PatchWhitening)]
  if not targets:
    return
  normalize = model.get_layer("normalize")
  for layer in targets:
    before = keras.Model(network.input, layer.input)  # the layers the images pass first
    total, count, seen = 0.0, 0, 0
    for images, _ in dataset:
      images = images[:max_images - seen]
      inputs = keras.ops.convert_to_numpy(before(normalize(images), training=False))
      moments, patches = patch_covariance(inputs, layer.patch_size)
      total, count, seen = total + moments, count + patches, seen + len(images)
      if seen >= max_images:
        break
    layer.set_filters(total / count)
