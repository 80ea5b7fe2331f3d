"""app/data/sources/idx.py: real Fashion-MNIST files, IDX files written here, damaged files, and
the "idx" and "fashion_mnist" sources (with the inputs they refuse)."""

import gzip
import os
import struct

import numpy as np
import pytest

from app.core.errors import UsageError
from app.data.sources import DATASETS, idx
from app.data.sources.idx import read_idx
from configs import default


def idx_bytes(array, type_code):
  """The IDX encoding of `array`: 0, 0, type code, ndim, big-endian sizes, big-endian data."""
  header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, data):
  opener = gzip.open if str(path).endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(data)
  return str(path)


def test_reads_real_fashion_mnist(fashion_mnist_dir):
  images = read_idx(os.path.join(fashion_mnist_dir, "train-images-idx3-ubyte.gz"))
  labels = read_idx(os.path.join(fashion_mnist_dir, "train-labels-idx1-ubyte.gz"))
  assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (60000,) and labels.dtype == np.uint8
  assert set(np.unique(labels)) == set(range(10))
  assert images.max() == 255 and images.min() == 0


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("array, type_code", [
    (np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), 0x08),
    (np.array([-7, 0, 300, 2**31 - 1], dtype=np.int32), 0x0C),
    (np.array([[1.5, -2.25], [0.0, 1e6]], dtype=np.float32), 0x0D),
])
def test_round_trip(tmp_path, array, type_code, suffix):
  path = write(tmp_path / f"data-idx{suffix}", idx_bytes(array, type_code))
  read = read_idx(path)
  assert read.shape == array.shape
  assert read.dtype.kind == array.dtype.kind and read.dtype.itemsize == array.dtype.itemsize
  np.testing.assert_array_equal(read, array)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("keep", [2, 6, 13, 50])  # inside magic, inside sizes, inside data
def test_truncated_file_is_a_usage_error(tmp_path, suffix, keep):
  data = idx_bytes(np.ones((3, 5, 5), np.uint8), 0x08)
  path = write(tmp_path / f"cut-idx{suffix}", data[:keep])
  with pytest.raises(UsageError, match="cut-idx"):
    read_idx(path)


def test_truncated_gzip_stream_is_a_usage_error(tmp_path, fashion_mnist_dir):
  with open(os.path.join(fashion_mnist_dir, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
    data = f.read()
  path = tmp_path / "t10k-labels-idx1-ubyte.gz"
  path.write_bytes(data[:len(data) // 2])
  with pytest.raises(UsageError, match="intact copy"):
    read_idx(str(path))


def test_corrupt_gzip_stream_is_a_usage_error(tmp_path):
  data = bytearray(gzip.compress(idx_bytes(np.arange(4096, dtype=np.int32), 0x0C)))
  data[20:60] = bytes(b ^ 0xFF for b in data[20:60])  # damage the deflate stream, keep the header
  path = tmp_path / "corrupt-idx.gz"
  path.write_bytes(bytes(data))
  with pytest.raises(UsageError, match="corrupt-idx"):
    read_idx(str(path))


def test_longer_body_than_header_says_is_a_usage_error(tmp_path):
  data = idx_bytes(np.ones((2, 2), np.uint8), 0x08) + b"\0"
  with pytest.raises(UsageError, match="truncated or padded"):
    read_idx(write(tmp_path / "long-idx", data))


@pytest.mark.parametrize("magic", [b"\x1f\x8b\x08\x01", b"\x00\x01\x08\x01", b"\x00\x00\x07\x01"])
def test_bad_magic_is_a_usage_error(tmp_path, magic):
  data = magic + struct.pack(">I", 3) + b"abc"
  with pytest.raises(UsageError, match="bad magic"):
    read_idx(write(tmp_path / "bad-idx", data))


def test_plain_file_named_gz_is_a_usage_error(tmp_path):
  path = tmp_path / "plain-idx.gz"
  path.write_bytes(idx_bytes(np.ones(4, np.uint8), 0x08))
  with pytest.raises(UsageError, match="plain-idx.gz"):
    read_idx(str(path))


def test_missing_file_is_a_usage_error(tmp_path):
  with pytest.raises(UsageError, match="missing-idx"):
    read_idx(str(tmp_path / "missing-idx"))


@pytest.fixture(scope="module")
def fashion_mnist(fashion_mnist_dir):
  del fashion_mnist_dir  # the default location; the fixture fails clearly when it is missing
  return DATASETS.get("fashion_mnist")(default.get_config().data)


def test_fashion_mnist_from_default_location(fashion_mnist):
  assert len(fashion_mnist.train) == 60000 and len(fashion_mnist.test) == 10000
  assert fashion_mnist.train.images.shape == (60000, 28, 28, 1)
  assert fashion_mnist.train.images.dtype == np.uint8
  assert fashion_mnist.train.labels.dtype == np.int32
  assert fashion_mnist.train.paths is None
  assert tuple(fashion_mnist.image_shape) == (28, 28, 1)
  assert fashion_mnist.class_names == idx.FASHION_MNIST_CLASSES
  assert len(set(fashion_mnist.class_names)) == 10
  assert set(np.unique(fashion_mnist.test.labels)) == set(range(10))


def test_fashion_mnist_data_dir_without_files(tmp_path, data_config):
  data_config.data_dir = str(tmp_path)
  with pytest.raises(UsageError, match="not found"):
    DATASETS.get("fashion_mnist")(data_config)


def test_fashion_mnist_missing_data_dir(tmp_path, data_config):
  data_config.data_dir = str(tmp_path / "nowhere")
  with pytest.raises(UsageError, match="does not exist"):
    DATASETS.get("fashion_mnist")(data_config)


def test_idx_reads_fashion_mnist_dir(fashion_mnist_dir, data_config):
  data_config.name = "idx"
  data_config.data_dir = fashion_mnist_dir
  source = DATASETS.get("idx")(data_config)
  assert len(source.train) == 60000 and len(source.test) == 10000
  assert tuple(source.image_shape) == (28, 28, 1)
  assert source.class_names == [str(i) for i in range(10)]


@pytest.mark.parametrize("make_dir", [False, True])
def test_idx_refuses_missing_or_empty_dir(tmp_path, data_config, make_dir):
  data_config.data_dir = str(tmp_path / "idx")
  if make_dir:
    os.makedirs(data_config.data_dir)
  with pytest.raises(UsageError, match=data_config.data_dir):
    DATASETS.get("idx")(data_config)


def test_idx_needs_data_dir(data_config):
  with pytest.raises(UsageError, match="data_dir"):
    DATASETS.get("idx")(data_config)


@pytest.mark.parametrize("image_size, channels, resize", [(16, 0, "resize"), (0, 3, "resize"),
                                                          (20, 3, "pad")])
def test_image_size_and_channels_are_honoured_as_other_sources_do(fashion_mnist_dir, image_size,
                                                                  channels, resize):
  """data.image_size and data.channels used to be ignored by the IDX sources (28x28x1 whatever
  was asked), so a run's input shape was not the one configured."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from app.data import images as images_lib  # pylint: disable=g-import-not-at-top
  data = default.get_config().data
  data.data_dir, data.image_size, data.channels, data.resize = (fashion_mnist_dir, image_size,
                                                                channels, resize)
  source = DATASETS.get("fashion_mnist")(data)
  shape = (image_size or 28, image_size or 28, channels or 1)
  assert tuple(source.image_shape) == shape
  assert source.train.images.shape == (60000, *shape) and source.test.images.shape[1:] == shape
  raw = read_idx(os.path.join(fashion_mnist_dir, "t10k-images-idx3-ubyte.gz"))[:5, ..., None]
  expected = [images_lib.fit(tf.constant(image), shape, resize).numpy() for image in raw]
  np.testing.assert_array_equal(source.test.images[:5], np.stack(expected))
