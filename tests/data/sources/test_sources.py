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


def test_a_limit_keeps_each_class_share_seeded_and_in_order():
  labels = np.repeat(np.arange(3, dtype=np.int32), [90, 9, 1])  # class by class, as folders list
  examples = sources.Examples(labels=labels, records=np.arange(100))
  kept = examples.limited(10, seed=0)
  assert np.bincount(kept.labels).tolist() == [8, 1, 1]  # shares 9, 0.9, 0.1; one at least
  assert np.all(np.diff(kept.records) > 0)  # in the examples' order
  assert kept.records.tolist() == examples.limited(10, seed=0).records.tolist()
  assert kept.records.tolist() != examples.limited(10, seed=1).records.tolist()
  assert examples.limited(0, seed=0) is examples and examples.limited(100, seed=0) is examples
  few = sources.Examples(labels=np.repeat(np.arange(5, dtype=np.int32), 4)).limited(3, seed=0)
  assert sorted(np.bincount(few.labels, minlength=5)) == [0, 0, 1, 1, 1]  # fewer than classes
