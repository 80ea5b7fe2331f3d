"""app/data/sources/__init__.py: the registry that finds each source module's loader by name."""

import numpy as np
import pytest

from app.core.errors import UsageError
from app.data import sources
from app.data.sources import DATASETS


def test_every_source_module_registers_its_loader():
  assert DATASETS.names() == ["fashion_mnist", "folder", "idx", "tfds", "tfrecord"]


def test_tfds_names_find_the_tfds_loader():
  assert sources.dataset_kind("tfds:cifar10") == "tfds"
  assert sources.dataset_kind("folder") == "folder"


def test_an_unknown_name_lists_the_known_ones(data_config):
  data_config.name = "imagenet"
  with pytest.raises(UsageError, match="unknown dataset 'imagenet'; choose one of: fashion_mnist"):
    sources.load(data_config)


def test_a_subset_keeps_every_field_in_step():
  examples = sources.Examples(labels=np.arange(4, dtype=np.int32),
                              paths=np.array(["a", "b", "c", "d"]), shards=("s",))
  subset = examples.subset(np.array([3, 1]))
  assert len(subset) == 2 and subset.paths.tolist() == ["d", "b"]
  assert subset.labels.tolist() == [3, 1] and subset.images is None and subset.shards == ("s",)
