"""app/data/sources/tfds.py, --dataset=tfds:NAME: a TFDS data set read offline from a local
data_dir.

The data set is prepared here from Fashion-MNIST images with TFDS's own writer, so TFDS reads real
TFDS files (dataset_info.json, features.json, TFRecord shards) and nothing is downloaded.
"""

import json
import os

import numpy as np
import pytest

from app.data import sources
from app.data.sources import tfds as tfds_source
from app.core.errors import UsageError

from tests import commands
TRAIN, TEST = 600, 200


@pytest.fixture(scope="module")
def fashion_mnist(fashion_mnist_dir):
  del fashion_mnist_dir
  from configs import default  # pylint: disable=g-import-not-at-top
  return sources.load(default.get_config().data)


def store_tiny_fashion(root, fashion_mnist):
  """TFDS data set "tiny_fashion" in `root`: the first TRAIN and TEST images of `fashion_mnist`
  (a Source), written by TFDS's own writer."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  split = lambda ex, n: tf.data.Dataset.from_tensor_slices({"image": ex.images[:n],
                                                            "label": ex.labels[:n]})
  tfds.dataset_builders.store_as_tfds_dataset(
      name="tiny_fashion", version="1.0.0", data_dir=root, disable_shuffling=True,
      features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(28, 28, 1)),
          "label": tfds.features.ClassLabel(names=sources.FASHION_MNIST_CLASSES)}),
      split_datasets={"train": split(fashion_mnist.train, TRAIN),
                      "test": split(fashion_mnist.test, TEST)})


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory, fashion_mnist):
  root = str(tmp_path_factory.mktemp("tfds"))
  store_tiny_fashion(root, fashion_mnist)
  return root


def test_reads_the_images_labels_and_class_names(tfds_dir, data_config, fashion_mnist):
  data_config.name, data_config.data_dir = "tfds:tiny_fashion", tfds_dir
  source = sources.load(data_config)
  assert (len(source.train), len(source.test)) == (TRAIN, TEST)
  assert tuple(source.image_shape) == (28, 28, 1)
  assert source.class_names == sources.FASHION_MNIST_CLASSES
  np.testing.assert_array_equal(source.train.images, fashion_mnist.train.images[:TRAIN])
  np.testing.assert_array_equal(source.test.labels, fashion_mnist.test.labels[:TEST])
  assert "tiny_fashion" in source.description


def test_resizes_and_converts_channels_like_folders(tfds_dir, data_config):
  data_config.name, data_config.data_dir = "tfds:tiny_fashion", tfds_dir
  data_config.image_size, data_config.channels = 32, 3
  source = sources.load(data_config)
  assert source.train.images.shape == (TRAIN, 32, 32, 3) and source.train.images.dtype == np.uint8
  # grayscale -> RGB repeats the channel
  np.testing.assert_array_equal(source.train.images[..., 0], source.train.images[..., 2])


@pytest.mark.parametrize("name, message", [
    ("tfds:no_such_set_xyz", "TFDS has no data set 'no_such_set_xyz'"),
    ("tfds:mnist", "is not prepared in"),  # registered, but neither prepared nor downloaded here
    ("tfds:", "needs a TFDS name"),
])
def test_refuses_unknown_unprepared_or_missing_names(tfds_dir, data_config, name, message):
  data_config.name, data_config.data_dir = name, tfds_dir
  with pytest.raises(UsageError, match=message):
    sources.load(data_config)


def test_too_large_for_memory_is_refused(tfds_dir, data_config):
  data_config.name, data_config.data_dir = "tfds:tiny_fashion", tfds_dir
  data_config.in_memory_max_gb = 1e-5
  with pytest.raises(UsageError, match="in_memory_max_gb"):
    sources.load(data_config)


def test_download_cache_is_recognised_by_tfds_file_names(tmp_path):
  """A complete download cache (files named as TFDS names them) lets a set be prepared offline."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core.download import resource  # pylint: disable=g-import-not-at-top
  builder = tfds.builder("mnist", data_dir=str(tmp_path))
  infos = list(builder.url_infos.items())
  assert not tfds_source._all_downloaded(builder, str(tmp_path))
  for url, info in infos[:-1]:
    (tmp_path / resource.get_dl_fname(url, info.checksum)).write_bytes(b"")
  assert not tfds_source._all_downloaded(builder, str(tmp_path))  # one file still missing
  url, info = infos[-1]
  (tmp_path / resource.get_dl_fname(url, info.checksum)).write_bytes(b"")
  assert tfds_source._all_downloaded(builder, str(tmp_path))


def test_train_cli_trains_on_a_tfds_set(tfds_dir, tmp_path):
  result = commands.run(
      "app.train", "--dataset=tfds:tiny_fashion", f"--data_dir={tfds_dir}", "--epochs=1",
      "--model=simple_cnn", "--config.model.width=8", "--batch_size=100",
      "--mixed_precision=float32", "--config.optim.warmup_epochs=0", "--config.name=tfds_tiny",
      f"--output_dir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'exports'}", timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
  # By default 10% of the training split is held out for validation; the test split is TFDS's.
  assert (metrics["num_train"], metrics["num_validation"], metrics["num_test"]) == (
      TRAIN - TRAIN // 10, TRAIN // 10, TEST)
  assert metrics["test_split"] == "test" and metrics["selected_on"] == "validation"
  assert metrics["class_names"] == sources.FASHION_MNIST_CLASSES
  assert os.path.isdir(metrics["export_path"])
