"""Pipeline switches: file cache, determinism, class weights, resize policy in build()."""

import os

import numpy as np

from app.data import pipeline
from app.data.sources import DATASETS
from app.train.fitting import class_weights
from configs import default


def config_for(cifar_mini_dir, **changes):
  config = default.get_config()
  config.data.name, config.data.data_dir = "folder", cifar_mini_dir
  for key, value in changes.items():
    section, leaf = key.split(".")
    config[section][leaf] = value
  return config


def test_cache_dir_writes_cache_files_and_gives_the_same_batches(cifar_mini_dir, tmp_path):
  plain = config_for(cifar_mini_dir)  # decoded once into memory (in_memory_max_gb)
  cached = config_for(cifar_mini_dir, **{"data.cache_dir": str(tmp_path / "cache"),
                                         "data.in_memory_max_gb": 0.0})  # streamed, file cache
  batches = []
  for config in (plain, cached):
    data = pipeline.build(DATASETS.get("folder")(config.data), config.data, 100, seed=0)
    batches.append([x for x, _ in data.test.as_numpy_iterator()])
  assert any(name.startswith("test") for name in os.listdir(tmp_path / "cache"))
  for a, b in zip(*batches):
    np.testing.assert_array_equal(a, b)


def test_determinism_switch_reaches_the_dataset_options(cifar_mini_dir):
  for deterministic in (True, False):
    config = config_for(cifar_mini_dir, **{"data.deterministic": deterministic})
    data = pipeline.build(DATASETS.get("folder")(config.data), config.data, 100, seed=0)
    assert data.train.options().deterministic is deterministic


def test_balanced_class_weights_on_request(cifar_mini_dir):
  config = config_for(cifar_mini_dir, **{"data.validation_split": 0.0})  # all 150 train
  source = DATASETS.get("folder")(config.data)
  source.train = source.train.subset(np.arange(150))  # the first 150 files: 2 classes
  data = pipeline.build(source, config.data, 50, seed=0)
  assert class_weights(data, config) is None
  config.train.class_weights = True
  weights = class_weights(data, config)
  assert list(data.class_counts[:2]) == [100, 50] and data.class_counts[2:].sum() == 0
  assert weights == {0: 150 / (10 * 100), 1: 150 / (10 * 50)}  # n / (classes x count)


def test_small_file_data_is_decoded_once_into_memory(cifar_mini_dir):
  config = config_for(cifar_mini_dir)
  source = DATASETS.get("folder")(config.data)
  decoded = pipeline.in_memory(source.test, source.image_shape, "resize", 1.0)
  assert decoded.images.shape == (200, 32, 32, 3) and decoded.paths is None
  assert pipeline.in_memory(source.test, source.image_shape, "resize", 1e-6) is source.test


def batches(dataset):
  return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_each_epoch_replays_alone_for_a_resumed_run(cifar_mini_dir):
  """Epoch e's batches (order and flip/crop draws) depend on (seed, e) only: built on their own,
  as a run resumed at epoch e builds them, or less the batches done, they are the same."""
  config = config_for(cifar_mini_dir, **{"data.augment": "flip|crop(pad=4)", "data.limit": 300})
  data = pipeline.build(DATASETS.get("folder")(config.data), config.data, 64, seed=3)
  two = batches(pipeline.training_batches(data, 0, 2))
  assert len(two) == 2 * data.steps_per_epoch == 10
  second = batches(pipeline.training_batches(data, 1, 2))
  resumed = batches(pipeline.training_batches(data, 1, 2, skip=2))
  for (x, y), (x2, y2) in zip(two[5:], second):
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
  for (x, _), (x2, _) in zip(two[7:], resumed):
    np.testing.assert_array_equal(x, x2)
  assert not np.array_equal(two[0][0], two[5][0])  # epochs differ from each other
  rerun = pipeline.build(DATASETS.get("folder")(config.data), config.data, 64, seed=3)
  np.testing.assert_array_equal(batches(pipeline.training_batches(rerun, 0, 1))[0][0], two[0][0])
