"""app/export.py: versioned, atomic SavedModel exports that serve what the Keras model computes."""

import hashlib
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from app import export
from app.errors import UsageError


@pytest.fixture(scope="module")
def model():
  keras.utils.set_random_seed(0)
  inputs = keras.Input((4, 4, 1), name="image")
  x = keras.layers.Flatten()(inputs)
  outputs = keras.layers.Dense(3, activation="softmax")(x)
  return keras.Model(inputs, outputs)


def digest(path):
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def test_two_exports_make_versions_1_and_2(tmp_path, model):
  metadata = {"class_names": ["a", "b", "c"], "accuracy": 0.5}
  first = export.export_saved_model(model, str(tmp_path), "tiny", metadata)
  assert first == os.path.join(str(tmp_path), "tiny", "1")
  pb_digest = digest(os.path.join(first, "saved_model.pb"))
  first_files = sorted(os.path.relpath(os.path.join(d, f), first)
                       for d, _, files in os.walk(first) for f in files)

  second = export.export_saved_model(model, str(tmp_path), "tiny", metadata)
  assert second == os.path.join(str(tmp_path), "tiny", "2")
  assert digest(os.path.join(first, "saved_model.pb")) == pb_digest
  assert sorted(os.path.relpath(os.path.join(d, f), first)
                for d, _, files in os.walk(first) for f in files) == first_files
  assert sorted(os.listdir(tmp_path / "tiny")) == ["1", "2"]  # no hidden .export-* left behind
  assert export.existing_versions(str(tmp_path / "tiny")) == [1, 2]

  for version, path in ((1, first), (2, second)):
    with open(os.path.join(path, export.METADATA_FILE)) as f:
      assert json.load(f) == dict(metadata, version=version)
  assert metadata == {"class_names": ["a", "b", "c"], "accuracy": 0.5}  # caller's dict untouched


def test_served_model_matches_keras(tmp_path, model):
  path = export.export_saved_model(model, str(tmp_path), "tiny", {})
  x = np.random.default_rng(1).uniform(0, 255, (5, 4, 4, 1)).astype(np.float32)
  loaded = tf.saved_model.load(path)
  np.testing.assert_allclose(loaded.serve(x).numpy(), model(x).numpy(), atol=1e-6)
  serving = loaded.signatures["serving_default"]
  (served,) = serving(tf.constant(x)).values()
  np.testing.assert_allclose(served.numpy(), model(x).numpy(), atol=1e-6)


def test_next_version_follows_the_highest(tmp_path, model):
  os.makedirs(tmp_path / "tiny" / "7")
  os.makedirs(tmp_path / "tiny" / "notes")
  path = export.export_saved_model(model, str(tmp_path), "tiny", {})
  assert path == os.path.join(str(tmp_path), "tiny", "8")


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", "/abs"])
def test_bad_names(tmp_path, model, name):
  with pytest.raises(UsageError, match="plain folder name"):
    export.export_saved_model(model, str(tmp_path), name, {})
  assert not os.listdir(tmp_path)
