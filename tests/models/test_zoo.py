"""The model zoo (app/models): every registered model builds for gray 28x28 and RGB 32x32 images
(the ImageNet families also 224x224), trains a step, saves to .keras and reloads with equal
outputs; parameter counts match the papers; too-small images are refused."""

import keras
import numpy as np
import pytest

from app import models
from app.core.errors import UsageError
from configs import default

SHAPES = [(28, 28, 1), (32, 32, 3)]
IMAGENET_FAMILIES = [name for name in models.MODELS.names() if models.takes(name, "weights")]
SMALL_WIDTH = 8  # every family at a small width: the harness checks wiring, not capacity


def model_config(name, width=SMALL_WIDTH):
  config = default.get_config().model
  config.name, config.width = name, width
  return config


def build(name, shape, num_classes=10, **overrides):
  config = model_config(name)
  for key, value in overrides.items():
    config[key] = value
  return models.build_model(config, shape, num_classes, [120.0] * shape[-1], [4000.0] * shape[-1])


def raw_images(count, shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (count, *shape)).astype(np.float32)


def train_one_step(model, shape, batch=4):
  """One SGD step, eagerly (a single step is cheaper than tracing a graph); returns the loss."""
  model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy",
                run_eagerly=True)
  before = [w.copy() for w in model.get_weights()]
  labels = keras.utils.to_categorical(np.arange(batch) % 10, 10)
  loss = model.train_on_batch(raw_images(batch, shape, seed=1), labels)
  assert np.isfinite(loss)
  assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_the_zoo_is_registered():
  assert {"simple_cnn", "vgg", "resnet", "resnet20", "resnet32", "resnet56", "resnet9",
          "preact_resnet18", "wide_resnet", "wrn16_4", "airbench", "mobilenet_v2",
          "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"} <= set(models.MODELS.names())
  assert set(IMAGENET_FAMILIES) == {"mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
                                    "efficientnet_b0"}


@pytest.fixture
def policy(request):
  """The global dtype policy for one test (the default recipes train mixed_bfloat16)."""
  keras.mixed_precision.set_global_policy(request.param)
  yield request.param
  keras.mixed_precision.set_global_policy("float32")


# Each family in both precisions: gray 28x28 under the recipes' mixed_bfloat16, RGB 32x32 in
# float32 (the combination matrix, tests/matrix/test_models.py, exports the families).
@pytest.mark.parametrize("shape, policy", [(SHAPES[0], "mixed_bfloat16"), (SHAPES[1], "float32")],
                         ids=["gray28-mixed_bfloat16", "rgb32-float32"], indirect=["policy"])
@pytest.mark.parametrize("name", models.MODELS.names())
def test_builds_trains_a_step_saves_and_reloads(tmp_path, name, shape, policy):
  keras.utils.set_random_seed(0)
  model = build(name, shape)
  assert any(layer.dtype_policy.name == policy for layer in model.layers)
  assert model.input_shape == (None, *shape)
  x = raw_images(2, shape)
  probabilities = keras.ops.convert_to_numpy(model(x, training=False))
  assert probabilities.shape == (2, 10) and probabilities.dtype == np.float32
  np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

  train_one_step(model, shape)

  path = str(tmp_path / f"{name}.keras")
  model.save(path)
  reloaded = models.load_model(path)
  np.testing.assert_allclose(reloaded(x, training=False), model(x, training=False), atol=1e-5)


@pytest.mark.parametrize("name", IMAGENET_FAMILIES)
def test_imagenet_families_build_and_train_at_224(name):
  keras.utils.set_random_seed(0)
  shape = (224, 224, 3)
  model = build(name, shape)
  assert model.output_shape == (None, 10)
  train_one_step(model, shape, batch=2)


# Published sizes: He et al. 2016 Table 6 (ResNet-20/56), Zagoruyko & Komodakis 2016 Table 1
# (WRN-16-4, WRN-28-10), Page 2018 (ResNet-9), kuangliu/pytorch-cifar (PreAct ResNet-18), the
# keras.applications table (MobileNetV2, EfficientNetB0 with their 1000-class heads).
PUBLISHED_PARAMETERS = {
    "resnet20": (0.27e6, (32, 32, 3), 10),
    "resnet56": (0.85e6, (32, 32, 3), 10),
    "wrn16_4": (2.7e6, (32, 32, 3), 10),
    "wrn28_10": (36.5e6, (32, 32, 3), 10),
    "resnet9": (6.5e6, (32, 32, 3), 10),
    "preact_resnet18": (11.17e6, (32, 32, 3), 10),
    "mobilenet_v2": (3.54e6, (224, 224, 3), 1000),
    "efficientnet_b0": (5.33e6, (224, 224, 3), 1000),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_parameter_count_matches_the_published_figure(name):
  published, shape, classes = PUBLISHED_PARAMETERS[name]
  count = models.MODELS.get(name)(shape, classes).count_params()
  assert abs(count - published) / published < 0.02, (name, count, published)


def test_variants_keep_their_depth_and_width_when_the_config_says_0():
  assert build("resnet56", (32, 32, 3), width=0).name == "resnet56"
  assert build("wrn16_4", (32, 32, 3), width=0).name == "wrn16_4"
  assert build("resnet56", (32, 32, 3), depth=20).name == "resnet20"  # a set key overrides


@pytest.mark.parametrize("name", models.MODELS.names())
def test_too_small_images_are_refused_with_the_minimum(name):
  with pytest.raises(UsageError, match=r"input size 3x3 is too small for .*needs at least \d+x\d+"):
    build(name, (3, 3, 3))


def test_imagenet_stem_upsamples_small_gray_images_and_maps_them_to_imagenet_pixels():
  network = build("mobilenet_v2", (28, 28, 1)).layers[-1]
  assert network.get_layer("upsample").output.shape[1:] == (32, 32, 3)
  to_pixels = network.get_layer("to_pixels")
  standardised = np.zeros((1, 2, 2, 3), "float32")  # the mean image maps to ImageNet's mean
  np.testing.assert_allclose(to_pixels(standardised)[0, 0, 0], [123.675, 116.28, 103.53], atol=1e-3)


@pytest.mark.parametrize("option, name", [("bn_momentum", "mobilenet_v3_small"),
                                          ("bn_momentum", "resnet9")])
def test_batch_norm_is_ours_at_the_configured_momentum(option, name):
  from app.models.layers import BatchNormalization  # pylint: disable=g-import-not-at-top
  model = build(name, (32, 32, 3), **{option: 0.8})
  layers = [layer for layer in model._flatten_layers() if  # pylint: disable=protected-access
            isinstance(layer, keras.layers.BatchNormalization)]
  assert layers and all(isinstance(layer, BatchNormalization) and layer.momentum == 0.8
                        for layer in layers)
