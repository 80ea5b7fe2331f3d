"""--weights=imagenet (app/models/applications.py): keras.applications' own no-top ImageNet file,
found in the Keras cache ($KERAS_HOME/models) under the name keras.applications downloads it
as, is what loads; a failed download with nothing usable in the cache is one line naming the
cache path; a width without a file is refused up front; EfficientNet gets the input rescaling
keras.applications adds to its file. No test touches the network: every download is blocked."""

import inspect
import os
import socket
import urllib.error

import h5py
import keras
import numpy as np
import pytest
from keras.src.applications import efficientnet, mobilenet_v2, mobilenet_v3
from keras.src.legacy.saving import legacy_h5_format  # the format of keras.applications' files

from app import config as config_lib
from app.core.errors import UsageError
from app.keras_compat import all_layers
from app.models import applications, build_model
from app.models.applications import backbone_of
from configs import default
from tests import commands

MOBILENET_V2_05 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_{side}_no_top.h5"


def no_network(origin, *args, **kwargs):
  raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))


def http_404(origin, *args, **kwargs):
  raise urllib.error.HTTPError(origin, 404, "Not Found", None, None)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
  """An empty Keras cache, and every download refused as with no network."""
  home = tmp_path / "keras_home"
  monkeypatch.setenv("KERAS_HOME", str(home))
  monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", no_network)
  return home


def model_config(name, width):
  config = default.get_config().model
  config.name, config.width, config.weights = name, width, applications.IMAGENET
  return config


def save_legacy_h5(model, path):
  """Weights in the format of keras.applications' downloads (Keras 2 .h5)."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_the_file_in_the_keras_cache_is_what_loads(keras_home):
  stock = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.5, include_top=False,
                                         weights=None)
  conv = stock.get_layer("Conv1")
  conv.kernel.assign(np.arange(np.prod(conv.kernel.shape), dtype="float32").reshape(
      conv.kernel.shape) / 1000)  # recognisable: no initializer draws this
  # 32x32 images: keras.applications has no file of that size and takes the 224 one
  save_legacy_h5(stock, str(keras_home / "models" / MOBILENET_V2_05.format(side=224)))
  ours = build_model(model_config("mobilenet_v2", 16), (32, 32, 3), 10, [0.0] * 3, [1.0] * 3)
  np.testing.assert_array_equal(backbone_of(ours).get_layer("Conv1").kernel, conv.kernel)
  for a, b in zip(stock.get_weights(), backbone_of(ours).get_weights(), strict=True):
    np.testing.assert_array_equal(a, b)
  # No second rescaling to [-1, 1]: ours (before the backbone) is the only one in the model.
  rescalings = [layer.name for layer in all_layers(ours)
                if isinstance(layer, keras.layers.Rescaling)]
  assert sorted(rescalings) == ["to_backbone_range", "to_pixels"], rescalings


@pytest.mark.parametrize("side, file_side", [(96, 96), (160, 160), (32, 224), (0, 224)])
def test_the_file_of_the_image_size_as_keras_applications_picks_it(keras_home, side, file_side):
  for stored in (96, 160, 224):
    path = keras_home / "models" / MOBILENET_V2_05.format(side=stored)
    os.makedirs(path.parent, exist_ok=True)
    path.write_bytes(b"")  # MobileNetV2's files have no md5 in Keras: any file in the cache does
  path = applications.imagenet_weights_file("mobilenet_v2", 0.5, side)
  assert path == str(keras_home / "models" / MOBILENET_V2_05.format(side=file_side))


@pytest.mark.parametrize("failure, reason", [(no_network, "Temporary failure in name resolution"),
                                             (http_404, "404 -- Not Found")])
def test_offline_with_an_empty_cache_is_one_line(keras_home, monkeypatch, failure, reason):
  monkeypatch.setattr("keras.src.utils.file_utils.urlretrieve", failure)
  with pytest.raises(UsageError) as error:
    build_model(model_config("mobilenet_v3_small", 16), (32, 32, 3), 10, [0.0] * 3, [1.0] * 3)
  message, name = str(error.value), "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
  url = applications.IMAGENET_FILES["mobilenet_v3_small"][0] + name
  assert message.startswith(f"the ImageNet weights of mobilenet_v3_small could not be downloaded "
                            f"from {url} (")
  assert reason in message and "\n" not in message
  assert f"they are not in the Keras cache, {keras_home / 'models' / name}; put the file" in message
  assert message.endswith("or pass a local weights file with --weights=PATH")
  assert not (keras_home / "models" / name).exists()  # no partial file left behind


def test_the_command_offline_with_an_empty_cache_is_one_line_exit_2(tmp_path, fashion_mnist_dir):
  """The documented command, with nowhere to download from: every proxy variable points at the
  discard port (nothing listens: refused at once), so no test run can reach the network."""
  env = {key: value for key, value in os.environ.items() if key.lower() != "no_proxy"}
  proxy = "http://127.0.0.1:9"
  env.update(KERAS_HOME=str(tmp_path / "keras_home"), http_proxy=proxy, https_proxy=proxy,
             HTTP_PROXY=proxy, HTTPS_PROXY=proxy)
  run_dir, exports = tmp_path / "run", tmp_path / "exports"
  result = commands.run("app.train", "--model=mobilenet_v3_small", "--weights=imagenet",
                        "--config.data.limit=40", "--epochs=1", f"--output_dir={run_dir}",
                        f"--export_dir={exports}", env=env, timeout=300)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  cache = (tmp_path / "keras_home" / "models" /
           "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5")
  assert last.startswith("error: the ImageNet weights of mobilenet_v3_small could not be "
                         "downloaded from https://storage.googleapis.com/"), last
  assert f"they are not in the Keras cache, {cache};" in last and "--weights=PATH" in last, last
  assert not run_dir.exists() and not exports.exists()


def test_a_cached_file_that_fails_keras_md5_check_is_named(keras_home):
  path = keras_home / "models" / "efficientnetb0_notop.h5"
  os.makedirs(path.parent)
  path.write_bytes(b"truncated")
  with pytest.raises(UsageError, match=f"the copy in the Keras cache, {path}, fails its md5 check"):
    applications.imagenet_weights_file("efficientnet_b0", 1.0, 32)


@pytest.mark.parametrize("name, width, widths", [
    ("mobilenet_v2", 8, "(alpha 0.25); pass --config.model.width=16 or 24 or 32 (alpha 0.5, 0.75, "
                        "1; 0 = alpha 1), or weights of your own with --weights=PATH"),
    ("mobilenet_v3_small", 32, "(alpha 2); pass --config.model.width=12 or 16 (alpha 0.75, 1; ")])
def test_a_width_without_imagenet_weights_is_refused_up_front(name, width, widths, tmp_path):
  config = default.get_config()
  config.output_dir = str(tmp_path)
  config.model.update(model_config(name, width))
  with pytest.raises(UsageError) as error:
    config_lib.validate(config)
  message = str(error.value)
  assert message.startswith(f"keras.applications has no ImageNet weights for {name} at "
                            f"--config.model.width={width}")
  assert widths in message and "\n" not in message


def test_imagenet_with_a_width_that_has_a_file_validates(tmp_path):
  config = default.get_config()
  config.output_dir = str(tmp_path)
  config.model.update(model_config("mobilenet_v2", 24))
  config_lib.validate(config)


def test_efficientnet_gets_the_input_rescaling_keras_adds_to_its_file():
  """keras.applications.EfficientNet with weights="imagenet": x / 255, Normalization(mean,
  variance=std) (the file's values), Rescaling(1 / sqrt(std)) (tensorflow/tensorflow#49930).
  Folded into the variance, the same stem computes (x / 255 - mean) / std."""
  inputs = keras.Input((4, 4, 3))
  x = keras.layers.Rescaling(1 / 255)(inputs)
  x = keras.layers.Normalization(axis=3)(x)
  backbone = keras.Model(inputs, x)
  backbone.layers[-1].set_weights([np.array(applications.IMAGENET_MEAN),
                                   np.array(applications.IMAGENET_STD), np.array(0)])
  backbone.layers[-1].finalize_state()  # as loading a file does
  pixels = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
  keras_stem = backbone(pixels) / np.sqrt(applications.IMAGENET_STD)
  applications._fold_input_rescaling(backbone)  # pylint: disable=protected-access
  np.testing.assert_allclose(backbone(pixels), keras_stem, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      keras_stem, (pixels / 255 - applications.IMAGENET_MEAN) / applications.IMAGENET_STD,
      rtol=1e-5, atol=1e-5)


def test_the_file_table_is_keras_applications_own():
  """Names, origins and md5s as the installed keras.applications hands them to get_file."""
  table = applications.IMAGENET_FILES
  assert table["mobilenet_v2"][0] == mobilenet_v2.BASE_WEIGHT_PATH
  assert table["mobilenet_v3_small"][0] == table["mobilenet_v3_large"][0] == \
      mobilenet_v3.BASE_WEIGHT_PATH
  assert table["efficientnet_b0"][0] == efficientnet.BASE_WEIGHTS_PATH
  for size in ("small", "large"):
    for alpha in table[f"mobilenet_v3_{size}"][1]:
      assert table[f"mobilenet_v3_{size}"][4][alpha] == \
          mobilenet_v3.WEIGHTS_HASHES[f"{size}_224_{alpha}_float"][1]
  assert table["efficientnet_b0"][4][1.0] == efficientnet.WEIGHTS_HASHES["b0"][1]
  for module, ending in ((mobilenet_v2, '{float(alpha)}_{rows}_no_top.h5"'),
                         (mobilenet_v3, 'f"weights_mobilenet_v3_{model_name}_no_top_v2.h5"'),
                         (efficientnet, 'file_suffix = "_notop.h5"')):
    assert ending in inspect.getsource(module), module.__name__
