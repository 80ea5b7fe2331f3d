"""app/data/idx.py: real Fashion-MNIST files, IDX files written here, and damaged files."""

import gzip
import os
import struct

import numpy as np
import pytest

from app.data.sources.idx import read_idx
from app.core.errors import UsageError


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
