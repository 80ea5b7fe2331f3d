"""app/serving/saved_model.py: versioned, atomic, float32 SavedModel exports whose signatures serve what the
Keras model computes (resized, decoded and named in the graph), checked at export."""

import hashlib
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from app.data import images as images_lib
from app.data import pipeline
from app.data.sources import Examples
from app.serving import integrity
from app.serving import parity
from app.serving import saved_model as serving
from app.core.errors import UsageError
from configs import default
from tests.serving import crafted

CLASSES = ["ant", "bee", "cat"]


@pytest.fixture(scope="module")
def model(make_tiny_model):
  return make_tiny_model()


@pytest.fixture(scope="module")
def images():
  return np.random.default_rng(0).integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)


def tree_digest(path):
  digests = {}
  for directory, _, files in os.walk(path):
    for name in files:
      with open(os.path.join(directory, name), "rb") as f:
        digests[os.path.relpath(os.path.join(directory, name), path)] = (
            hashlib.sha256(f.read()).hexdigest())
  return digests


def test_two_exports_make_versions_1_and_2_and_leave_1_untouched(tmp_path, model, images):
  metadata = {"metrics": {"test_accuracy": 0.5}}
  first = serving.export_saved_model(model, str(tmp_path), "tiny", CLASSES, metadata, images)
  assert first == os.path.join(str(tmp_path), "tiny", "1")
  before = tree_digest(first)
  second = serving.export_saved_model(model, str(tmp_path), "tiny", CLASSES, metadata, images)
  assert second == os.path.join(str(tmp_path), "tiny", "2")
  assert tree_digest(first) == before
  assert sorted(os.listdir(tmp_path / "tiny")) == ["1", "2"]  # no hidden .export-* left behind
  assert "assets.extra/tf_serving_warmup_requests" in before  # in the version never overwritten
  assert serving.existing_versions(str(tmp_path / "tiny")) == [1, 2]
  for version, path in ((1, first), (2, second)):
    written = serving.read_metadata(path)
    assert written["version"] == version
    assert written["metrics"] == {"test_accuracy": 0.5}
    assert written["class_names"] == CLASSES and written["input_shape"] == [12, 12, 1]
    assert written["dtype"] == "float32"
    assert set(written["signatures"]) == {"serving_default", "serve_uint8", "serve_bytes", "serve"}
    assert written["preprocessing"]["normalize"] == {"mean": [100.0], "variance": [3000.0]}
  assert metadata == {"metrics": {"test_accuracy": 0.5}}  # caller's dict untouched


def test_signatures_resize_decode_and_name_the_classes(tmp_path, model, images):
  path = serving.export_saved_model(model, str(tmp_path), "tiny", CLASSES, {}, images)
  loaded = tf.saved_model.load(path)
  expected = model.predict(images.astype(np.float32), verbose=0)

  outputs = loaded.signatures["serving_default"](images=tf.constant(images, tf.float32))
  np.testing.assert_allclose(outputs["probabilities"], expected, atol=1e-6)
  ids, names = outputs["top_class_ids"].numpy(), outputs["top_class_names"].numpy()
  assert ids.shape == (16, 3) and ids.dtype == np.int32
  np.testing.assert_array_equal(ids[:, 0], expected.argmax(-1))
  assert [[n.decode() for n in row] for row in names] == [[CLASSES[i] for i in row] for row in ids]
  np.testing.assert_allclose(outputs["top_probabilities"][:, 0], expected.max(-1), atol=1e-6)
  np.testing.assert_allclose(loaded.signatures["serve_uint8"](images=tf.constant(images))[
      "probabilities"], expected, atol=1e-6)
  np.testing.assert_allclose(loaded.serve(images.astype(np.float32)), expected, atol=1e-6)

  # Any size: a 20x20 batch is resized in the graph as the training pipeline resizes (bilinear,
  # clipped, rounded), and a PNG of it through serve_bytes gives the same answer.
  large = np.random.default_rng(1).integers(0, 256, (2, 20, 20, 1), dtype=np.uint8)
  resized = np.round(np.clip(tf.image.resize(large.astype(np.float32), [12, 12]), 0, 255))
  expected_large = model.predict(resized, verbose=0)
  served = loaded.signatures["serving_default"](images=tf.constant(large, tf.float32))
  np.testing.assert_allclose(served["probabilities"], expected_large, atol=1e-6)
  encoded = tf.stack([tf.io.encode_png(image) for image in large])
  from_bytes = loaded.signatures["serve_bytes"](image_bytes=encoded)
  np.testing.assert_allclose(from_bytes["probabilities"], expected_large, atol=1e-6)


def _non_square_files(folder, channels):
  """JPEG and PNG files (made with Pillow) of wide, tall and off-size images -> their paths."""
  rng = np.random.default_rng(5)
  paths = []
  for k, (height, width) in enumerate(((21, 37), (45, 19), (12, 30), (40, 12), (24, 24))):
    pixels = rng.integers(0, 256, (height, width, channels), np.uint8)
    path = os.path.join(folder, f"{k}.{'png' if k % 2 else 'jpg'}")
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels).save(path)
    paths.append(path)
  return paths


@pytest.mark.parametrize("policy", ["resize", "crop", "pad", "crop(0.8)"])  # 0.8: data.eval_crop
def test_every_signature_applies_the_training_resize_policy(tmp_path, images, policy):
  """Issue 20 (9): an export of a model that returns its input pixels. Each signature hands it,
  for non-square files, the pixels the training pipeline (ordered_batches, same data.resize)
  decodes from the same files; the policy is recorded in the metadata."""
  shape = (12, 12, 3)
  pixels_model = keras.Sequential([keras.Input(shape), keras.layers.Flatten()])
  names = [str(k) for k in range(int(np.prod(shape)))]
  paths = _non_square_files(str(tmp_path), shape[-1])
  examples = Examples(labels=np.zeros(len(paths), np.int32), paths=np.array(paths))
  (trained_on, _), = pipeline.ordered_batches(examples, shape, len(paths), cache=False,
                                               resize=policy).as_numpy_iterator()
  path = serving.export_saved_model(pixels_model, str(tmp_path / "exports"), "pixels", names, {},
                                    np.repeat(images, 3, -1), resize=policy)
  recorded = serving.read_metadata(path)["preprocessing"]
  assert (recorded["resize"], recorded["eval_crop"]) == ("crop", 0.8) if policy == "crop(0.8)" \
      else (policy, 1.0)
  loaded = tf.saved_model.load(path)
  served = lambda outputs: outputs["probabilities"].numpy().reshape(-1, *shape)

  encoded = [open(p, "rb").read() for p in paths]
  np.testing.assert_array_equal(
      served(loaded.signatures["serve_bytes"](image_bytes=tf.constant(encoded))), trained_on)
  for data, expected in zip(encoded, trained_on):
    decoded = images_lib.decode(data, shape[-1])[None]  # the file's own size
    np.testing.assert_array_equal(
        served(loaded.signatures["serve_uint8"](images=decoded)), expected[None])
    np.testing.assert_array_equal(
        served(loaded.signatures["serving_default"](images=tf.cast(decoded, tf.float32))),
        expected[None])


def test_parity_is_checked_on_every_signature_and_recorded(tmp_path, model, images):
  path = serving.export_saved_model(model, str(tmp_path), "tiny", CLASSES, {}, images)
  checks = serving.read_metadata(path)["parity"]
  for signature in ("serving_default", "serve_uint8", "serve_bytes", "serve"):
    record = checks[f"saved_model/{signature}"]
    assert record["passed"] and record["images"] == 16, record
    assert record["max_abs_diff"] <= 1e-5 and record["tolerance"] == 1e-5
  for signature in ("serving_default", "serve_uint8", "serve_bytes"):
    # Issue 20 (9): and on non-square copies, against the model fed the training pipeline's resize
    record = checks[f"saved_model/{signature}/non_square"]
    assert record["passed"] and record["images"] == 16 and record["top1_agreement"] == 1.0, record
  assert checks["saved_model/float_dtypes"] == {"dtypes": ["float32"], "passed": True}


def test_a_failed_parity_check_exports_nothing(tmp_path, model, images, monkeypatch):
  monkeypatch.setattr(parity, "SAVED_MODEL_TOLERANCE", -1.0)  # nothing can pass
  with pytest.raises(parity.ParityError, match="nothing was exported"):
    serving.export_saved_model(model, str(tmp_path), "tiny", CLASSES, {}, images)
  assert os.listdir(tmp_path / "tiny") == []


def test_a_mixed_precision_model_exports_a_float32_graph(tmp_path, images, make_tiny_model):
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    mixed = make_tiny_model()
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert {layer.dtype_policy.name for layer in mixed._flatten_layers()} >= {"mixed_bfloat16"}  # pylint: disable=protected-access
  twin = serving.float32_model(mixed)
  assert {layer.dtype_policy.name for layer in twin._flatten_layers()} == {"float32"}  # pylint: disable=protected-access

  path = serving.export_saved_model(mixed, str(tmp_path), "mixed", CLASSES, {}, images,
                                    resize="crop")
  loaded = tf.saved_model.load(path)
  assert {v.dtype for v in loaded.variables if v.dtype.is_floating} == {tf.float32}
  served = loaded.signatures["serving_default"](images=tf.constant(images, tf.float32))
  assert served["probabilities"].dtype == tf.float32
  np.testing.assert_allclose(served["probabilities"], twin.predict(images.astype(np.float32),
                                                                   verbose=0), atol=1e-5)
  # bfloat16 keeps 8 bits of mantissa: the trained model and its float32 copy agree to ~1e-2.
  np.testing.assert_allclose(served["probabilities"], mixed.predict(images.astype(np.float32),
                                                                    verbose=0), atol=5e-2)
  parity_records = serving.read_metadata(path)["parity"]
  assert parity_records["saved_model/float_dtypes"]["passed"]
  assert parity_records["saved_model/serve_bytes/non_square"]["passed"]  # cropped as in training


def test_a_float32_model_is_exported_as_it_is(model):
  assert serving.float32_model(model) is model


def test_next_version_follows_the_highest(tmp_path, model):
  os.makedirs(tmp_path / "tiny" / "7")
  os.makedirs(tmp_path / "tiny" / "notes")
  path = serving.export_saved_model(model, str(tmp_path), "tiny", CLASSES, {})
  assert path == os.path.join(str(tmp_path), "tiny", "8")
  metadata = serving.read_metadata(path)
  assert metadata["parity"] == {}  # no images given: nothing to check on
  assert metadata["warmup"] is None  # nor to warm TF Serving up with
  assert not os.path.exists(os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", "/abs", "../up", "a\\b", ".hidden"])
def test_names_that_are_not_one_plain_folder_are_refused(tmp_path, model, name):
  with pytest.raises(UsageError, match="plain folder name"):
    serving.export_saved_model(model, str(tmp_path), name, CLASSES, {})
  assert not os.listdir(tmp_path)


def test_load_export_refuses_what_is_not_an_export(tmp_path, model):
  with pytest.raises(UsageError, match="is not a SavedModel .* saved_models/<name>/1"):
    serving.load_export(str(tmp_path))
  path = serving.export_saved_model(model, str(tmp_path), "tiny", CLASSES, {})
  with pytest.raises(UsageError, match=f"pass a version folder such as {path}"):
    serving.load_export(str(tmp_path / "tiny"))
  os.remove(os.path.join(path, serving.METADATA_FILE))
  with pytest.raises(UsageError, match="without assets.extra/metadata.json"):
    serving.load_export(path)


def test_metadata_is_json_with_the_recipe(tmp_path, model):
  recipe = default.get_config().to_dict()
  path = serving.export_saved_model(model, str(tmp_path), "tiny", CLASSES, {"config": recipe})
  with open(os.path.join(path, serving.METADATA_FILE)) as f:
    assert json.load(f)["config"]["export"]["dir"] == "saved_models"


# === Issue 19 (12, 13): only exports of ours are loaded, every foreign file is one line ===

@pytest.fixture(scope="module")
def ours(tmp_path_factory, model):
  """One export of ours (no parity images: the quickest), copied by each test that changes it."""
  return serving.export_saved_model(model, str(tmp_path_factory.mktemp("ours")), "tiny", CLASSES,
                                    {"run_dir": "/nowhere/victim"})


@pytest.fixture
def copy_of_ours(ours, tmp_path):
  return shutil.copytree(ours, str(tmp_path / "copy"))


def test_the_export_records_the_sha256_of_every_file_and_loads_back(ours):
  with open(os.path.join(ours, integrity.RECORD)) as f:
    record = json.load(f)
  assert record["writer"] == "convtrain" and record["algorithm"] == "sha256"
  digests = tree_digest(ours)
  del digests[integrity.RECORD]
  assert record["files"] == digests
  assert {"saved_model.pb", serving.METADATA_FILE} <= set(digests)
  loaded, metadata = serving.load_export(ours)
  assert metadata["class_names"] == CLASSES and "serve_bytes" in loaded.signatures


def test_a_hostile_saved_model_is_refused_before_it_runs_unless_trusted(ours, tmp_path):
  """Item 12: a SavedModel whose signatures call tf.io.write_file, with our metadata copied in,
  ran when loaded and called; without --trust_model it is refused before TensorFlow parses it."""
  marker = str(tmp_path / "written_by_the_model")
  hostile = crafted.hostile_saved_model(str(tmp_path / "hostile"), ours, marker)
  with pytest.raises(UsageError, match="not written by this application.*--trust_model"):
    serving.load_export(hostile)
  # Our integrity record copied in too: its saved_model.pb is not the one hashed.
  shutil.copy(os.path.join(ours, integrity.RECORD),
              os.path.join(hostile, integrity.RECORD))
  with pytest.raises(UsageError, match=r"not as this application exported it \(.*saved_model.pb "
                                       r"changed"):
    serving.load_export(hostile)
  assert not os.path.exists(marker)
  loaded, _ = serving.load_export(hostile, trust=True)  # the user's explicit consent
  loaded.signatures["serve_bytes"](image_bytes=tf.constant([b""]))
  assert os.path.exists(marker)


def _write(path, name, data, mode="w"):
  with open(os.path.join(path, name), mode) as f:
    f.write(data)


@pytest.mark.parametrize("change,expected", [
    (lambda p: _write(p, "saved_model.pb", b"\0", "ab"), "saved_model.pb changed"),
    (lambda p: os.remove(os.path.join(p, "fingerprint.pb")), "fingerprint.pb missing"),
    (lambda p: _write(p, os.path.join("variables", "extra"), "x"), "variables/extra added"),
    (lambda p: crafted.edit_metadata(p, class_names=["a", "b"]), "metadata.json changed"),
    (lambda p: _write(p, integrity.RECORD, '{"writer": "conv'),
     "export integrity record .*integrity.json is damaged"),
    (lambda p: _write(p, integrity.RECORD, '{"files": []}'),
     "integrity.json is not an integrity record of this application"),
])
def test_a_changed_export_is_refused_naming_what_changed(copy_of_ours, change, expected):
  change(copy_of_ours)
  with pytest.raises(UsageError, match=expected):
    serving.load_export(copy_of_ours)


@pytest.mark.parametrize("change,expected", [
    (lambda p: _write(p, "saved_model.pb", b"garbage" * 10, "wb"),
     "cannot load .* as a SavedModel \\(OSError: Cannot parse"),
    (lambda p: _write(p, serving.METADATA_FILE, '{"class_na'),
     "export metadata .*metadata.json is damaged or not ours"),
    (lambda p: _write(p, serving.METADATA_FILE, '["a"]'),
     "metadata.json does not hold a dict"),
    (lambda p: crafted.edit_metadata(p, class_names=None), "has no list of class names"),
    (lambda p: crafted.edit_metadata(p, input_shape=[12, 12]), "has no input_shape"),
    (lambda p: crafted.edit_metadata(p, class_names=["a", "b", "c", "d"]),
     "names 4 classes but the model outputs 3 probabilities per image"),
])
def test_damaged_files_of_a_trusted_export_are_one_line_errors(copy_of_ours, change, expected):
  """Item 13: with --trust_model the hash is not checked, but a garbage graph or metadata (or a
  class list that does not fit the outputs: wrong labels, silently) is still one UsageError."""
  change(copy_of_ours)
  with pytest.raises(UsageError, match=expected):
    serving.load_export(copy_of_ours, trust=True)
