"""Every registered augmentation op: shapes, dtypes, value ranges, labels; host and device."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from app.data import augment
from app.core.errors import UsageError

SPECS = {
    "flip": "flip", "crop": "crop(pad=2)", "rotate": "rotate(factor=0.1)",
    "zoom": "zoom(factor=0.2)", "translate": "translate(factor=0.2)",
    "color_jitter": "color_jitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1)",
    "erase": "erase(factor=1.0)", "randaugment": "randaugment(num_ops=2, factor=0.5)",
    "mixup": "mixup(alpha=0.4)", "cutmix": "cutmix(factor=1.0)",
    "resized_crop": "resized_crop(scale=0.35)",
}


def test_every_registered_op_is_covered():
  assert sorted(SPECS) == augment.AUGMENTATIONS.names()


@pytest.fixture(params=["float32", "mixed_bfloat16"])
def policy(request):
  """The global Keras dtype policy while the test builds and runs its ops (a run sets
  mixed_bfloat16 before it builds the pipeline and the model), restored afterwards."""
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(request.param)
  yield request.param
  keras.config.set_dtype_policy(previous)


@pytest.fixture(scope="module")
def batch():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (16, 12, 12, 3)).astype("float32")
  labels = tf.one_hot(np.arange(16) % 4, 4).numpy()
  return images, labels


def eagerly(augmenter, images, labels):
  out_images, out_labels = augmenter(tf.constant(images), tf.constant(labels))
  return out_images.numpy(), out_labels.numpy()


def in_dataset(augmenter, images, labels):
  ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(len(images)).map(augmenter)
  out_images, out_labels = next(iter(ds))
  return out_images.numpy(), out_labels.numpy()


@pytest.mark.parametrize("run", [eagerly, in_dataset], ids=["eager", "dataset"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_op_keeps_shape_dtype_range_and_valid_labels(name, run, batch, policy):
  """Host ops compute in float32 on float32 0..255 images whatever the global policy (issue 20:
  under mixed_bfloat16 mixup failed with "Input 'y' of 'Mul' Op has type bfloat16")."""
  images, labels = batch
  out_images, out_labels = run(augment.parse(SPECS[name]), images, labels)
  assert out_images.shape == images.shape and out_images.dtype == np.float32
  assert out_labels.dtype == np.float32
  assert out_images.min() >= -1e-3 and out_images.max() <= 255 + 1e-3
  assert out_labels.shape == labels.shape
  np.testing.assert_allclose(out_labels.sum(axis=1), 1.0, atol=1e-5)
  assert (out_labels >= -1e-6).all()
  if name not in ("mixup", "cutmix"):
    np.testing.assert_array_equal(out_labels, labels)  # image ops leave labels alone
  if name != "flip":  # flip may leave a batch unchanged only with chance 2**-16
    assert not np.array_equal(out_images, images) or name in ("zoom",)


# Each op at a strength that leaves the images unchanged (flip: of a symmetric image; mixup and
# cutmix: of a batch of copies).
IDENTITIES = {
    "flip": "flip", "crop": "crop(pad=0)", "rotate": "rotate(factor=0.0)",
    "zoom": "zoom(factor=0.0)", "translate": "translate(factor=0.0)",
    "color_jitter": "color_jitter(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)",
    "erase": "erase(factor=0.0)", "randaugment": "randaugment(num_ops=0)",
    "mixup": "mixup(alpha=0.4)", "cutmix": "cutmix(factor=1.0)",
    "resized_crop": "resized_crop(scale=1.0, ratio=1.0)",  # the whole image, resized to itself
}


@pytest.mark.parametrize("name", sorted(IDENTITIES))
def test_host_op_computes_in_float32_whatever_the_global_policy(name, policy):
  """Pixels 0..255 with a fraction: bfloat16 (8 significant bits) rounds them by up to 0.5,
  which is how the Keras layers built under mixed_bfloat16 computed (max error 0.3 here)."""
  assert sorted(IDENTITIES) == sorted(SPECS)
  image = np.random.default_rng(0).integers(0, 255, (1, 12, 12, 3))
  image = np.maximum(image, image[:, :, ::-1]) + 0.3
  images = np.repeat(image, 8, axis=0).astype("float32")
  labels = tf.one_hot(np.zeros(8, int), 4).numpy()
  out_images, _ = eagerly(augment.parse(IDENTITIES[name]), images, labels)
  np.testing.assert_allclose(out_images, images, atol=1e-3)


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
def test_mixed_labels_follow_the_images(name, batch):
  images, labels = batch
  tf.random.set_seed(1)
  out_images, out_labels = eagerly(augment.parse(SPECS[name]), images, labels)
  mixed = (out_labels > 1e-4).sum(axis=1)
  assert mixed.max() <= 2 and (mixed == 2).any()


def test_resized_crop_zooms_into_a_box_of_the_image_and_replays_with_its_seed():
  """Each image is a box of at least `scale` of its area, resized back: a quarter-area box of a
  left-right ramp spans at most about half of the ramp's range; a seed draws the same boxes."""
  ramp = np.tile(np.linspace(0, 255, 32, dtype=np.float32)[None, :, None], (32, 1, 3))
  images = tf.constant(np.repeat(ramp[None], 8, axis=0))
  out = augment.resized_crop(images, scale=(0.25, 0.3), ratio=(1.0, 1.0),
                             seed=tf.constant([1, 2])).numpy()
  spans = out[:, 0, -1, 0] - out[:, 0, 0, 0]
  assert (spans > 0).all() and (spans < 0.6 * 255).all()
  again = augment.resized_crop(images, scale=(0.25, 0.3), ratio=(1.0, 1.0),
                               seed=tf.constant([1, 2])).numpy()
  np.testing.assert_array_equal(out, again)


def test_device_layers_augment_in_training_and_are_identity_at_inference(batch):
  images, _ = batch
  layers = augment.parse("flip|rotate(factor=0.1)|translate(factor=0.1)", on_device=True).layers()
  model = keras.Sequential([keras.Input((12, 12, 3))] + layers)
  np.testing.assert_array_equal(model(images, training=False), images)
  assert not np.allclose(model(images, training=True), images)


DEVICE_OPS = sorted(name for name in SPECS if name not in ("crop", "mixup", "cutmix",
                                                           "resized_crop"))


@pytest.mark.parametrize("name", DEVICE_OPS)
def test_device_op_trains_inside_a_model_of_the_global_policy(name, batch, policy):
  """Input -> the op's layers -> pooling -> Dense, built under `policy` as a run builds its
  model: one training step runs and gives a finite loss."""
  images, labels = batch
  inputs = keras.Input(images.shape[1:])
  features = inputs
  for layer in augment.parse(SPECS[name], on_device=True).layers():
    features = layer(features)
  outputs = keras.layers.Dense(labels.shape[1], activation="softmax", dtype="float32")(
      keras.layers.GlobalAveragePooling2D()(features))
  model = keras.Model(inputs, outputs)
  model.compile(optimizer="sgd", loss="categorical_crossentropy")
  assert np.isfinite(model.train_on_batch(images, labels))


@pytest.mark.parametrize("name", DEVICE_OPS)
def test_device_layers_compute_in_float32_whatever_the_global_policy(name, policy):
  """As the host ops: they see the raw 0..255 pixels, before the normalising layer. RandomFlip's
  layer, made when the model is built (Augmenter.layers), took the global policy and rounded
  the pixels to bfloat16."""
  image = np.random.default_rng(0).integers(0, 255, (1, 12, 12, 3))
  images = np.repeat(np.maximum(image, image[:, :, ::-1]) + 0.3, 8, axis=0).astype("float32")
  model = keras.Sequential([keras.Input((12, 12, 3)),
                            *augment.parse(IDENTITIES[name], on_device=True).layers()])
  assert all(layer.compute_dtype == "float32" for layer in model.layers)
  np.testing.assert_allclose(model(images, training=True), images, atol=1e-3)


def test_device_ops_cover_every_op_with_a_layer():
  assert DEVICE_OPS == sorted(name for name in SPECS if augment.parse(SPECS[name]).ops[0].layer)


@pytest.mark.parametrize("spec", ["crop(pad=2)", "mixup", "cutmix"])
def test_host_only_ops_are_refused_on_device(spec):
  with pytest.raises(UsageError, match="runs in the host pipeline"):
    augment.parse(spec, on_device=True)


@pytest.mark.parametrize("spec", ["rotate(angle=3)", "mixup(alpha='x', beta=2)", "nope(factor=1)"])
def test_bad_op_arguments_are_usage_errors(spec):
  with pytest.raises(UsageError):
    augment.parse(spec)


@pytest.fixture(scope="module")
def photos(cifar_mini_dir):
  """64 CIFAR-10 training photos, float32 0..255, from all ten classes."""
  folder = os.path.join(cifar_mini_dir, "train")
  paths = sorted(glob.glob(os.path.join(folder, "*", "*.jpg")))[::len(os.listdir(folder)) * 100 // 64]
  return np.stack([tf.io.decode_jpeg(tf.io.read_file(p)).numpy() for p in paths[:64]]
                  ).astype("float32")


def jittered(photos, **factors):
  keras.utils.set_random_seed(0)
  spec = "color_jitter(" + ", ".join(f"{k}={v}" for k, v in factors.items()) + ")"
  images, _ = eagerly(augment.parse(spec), photos, np.ones((len(photos), 1), "float32"))
  assert images.min() >= 0 and images.max() <= 255
  return images


def hsv(images):
  return tf.image.rgb_to_hsv(images / 255).numpy().astype(np.float64)


ZERO = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}


def test_color_jitter_saturation_scales_saturation_by_at_most_its_value(photos):
  """saturation=0.2: each image's saturation times a factor in [0.8, 1.2] (issue 20: Keras's
  RandomSaturation, handed 0.2, turned the photos grey: mean saturation 0.319 -> 0.023)."""
  before = hsv(photos)[..., 1].mean(axis=(1, 2))
  after = hsv(jittered(photos, **{**ZERO, "saturation": 0.2}))[..., 1].mean(axis=(1, 2))
  ratio = after[before > 0.05] / before[before > 0.05]  # grey photos have no saturation to scale
  assert 0.8 - 0.02 <= ratio.min() < 0.85 and 1.1 < ratio.max() <= 1.2 + 0.02, ratio


def test_color_jitter_hue_turns_the_hue_circle_by_at_most_its_value(photos):
  """hue=0.1: each image's hues turn by up to a tenth of the circle, either way."""
  before, after = hsv(photos), hsv(jittered(photos, **{**ZERO, "hue": 0.1}))
  colourful = (before[..., 1] > 0.3) & (before[..., 2] > 0.3)  # hue well defined
  turn = (after[..., 0] - before[..., 0] + 0.5) % 1 - 0.5  # signed, in turns
  per_image = np.array([np.median(t[c]) for t, c in zip(turn, colourful) if c.sum() > 20])
  assert 0.07 < np.abs(per_image).max() <= 0.1 + 0.01 and per_image.min() < 0 < per_image.max()


def test_color_jitter_brightness_shifts_by_at_most_its_fraction_of_the_range(photos):
  """brightness=0.1: every pixel of an image shifted by the same amount, up to 0.1 x 255."""
  shift = jittered(photos, **{**ZERO, "brightness": 0.1}) - photos
  unclipped = np.median(shift, axis=(1, 2, 3))
  assert 0.07 * 255 < np.abs(unclipped).max() <= 0.1 * 255 + 1e-3
  assert np.abs(shift).max() <= 0.1 * 255 + 1e-3


def test_color_jitter_contrast_scales_the_spread_by_at_most_its_value(photos):
  """contrast=0.2: each channel's spread around its mean times a factor in [0.8, 1.2]
  (clipping at 0 and 255 can only narrow it)."""
  ratio = jittered(photos, **{**ZERO, "contrast": 0.2}).std(axis=(1, 2)) / photos.std(axis=(1, 2))
  assert 0.8 - 0.01 <= ratio.min() < 0.85 and 1.1 < ratio.max() <= 1.2 + 0.01


def test_color_jitter_refuses_factors_out_of_range():
  for spec, message in [("color_jitter(saturation=1.5)", r"saturation must be in \[0, 1\]"),
                        ("color_jitter(hue=0.6)", r"hue must be in \[0, 0.5\]"),
                        ("color_jitter(contrast=-0.1)", r"contrast must be in \[0, 1\]")]:
    with pytest.raises(UsageError, match=message):
      augment.parse(spec)
