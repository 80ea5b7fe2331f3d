"""app/core/memory.py: the sizes a user writes (--gpu_memory_limit=8GiB) read as bytes."""

import pytest

from app.core import memory


@pytest.mark.parametrize("text, size", [
    ("8GiB", 8 * 2**30), ("8G", 8 * 2**30), ("8 gb", 8 * 2**30), ("1.5T", int(1.5 * 2**40)),
    ("512MiB", 512 * 2**20), ("512", 512 * 2**20), (".5g", 2**29), ("2kb", 2048), ("100B", 100)])
def test_sizes_read_in_binary_units_a_bare_number_in_mib(text, size):
  assert memory.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "8XB", "-1G", "0", "0.4b", "8 G B", "1e3"])
def test_what_is_no_positive_size_is_none(text):
  assert memory.parse_size(text) is None
