"""app/serving/predict.py: image files -> top-k rows through the export's bytes signature; a bad file
gets its own error row and the rest are still predicted."""

import csv
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from app.serving import predict as prediction
from app.serving import saved_model as serving
from app.data.sources.idx import read_idx
from app.core.errors import UsageError

CLASSES = [f"class{i}" for i in range(10)]


@pytest.fixture(scope="module")
def export(tmp_path_factory, make_tiny_model, fashion_mnist_dir):
  root = tmp_path_factory.mktemp("prediction")
  model = make_tiny_model(shape=(28, 28, 1), classes=10)
  images = read_idx(os.path.join(fashion_mnist_dir, "t10k-images-idx3-ubyte.gz"))[:4, ..., None]
  path = serving.export_saved_model(model, str(root / "exports"), "tiny", CLASSES, {}, images)
  folder = root / "images"
  folder.mkdir()
  for i, image in enumerate(images):
    (folder / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
  return model, path, images, folder


def test_list_images_expands_folders_and_keeps_files_as_given(tmp_path):
  (tmp_path / "sub").mkdir()
  for name in ("b.PNG", "a.jpg", "sub/c.gif", "notes.txt"):
    (tmp_path / name).write_bytes(b"x")
  files = prediction.list_images([str(tmp_path), str(tmp_path / "notes.txt")])
  assert files == [str(tmp_path / n) for n in ("a.jpg", "b.PNG", "sub/c.gif", "notes.txt")]
  with pytest.raises(UsageError, match="no images given"):
    prediction.list_images([])
  (tmp_path / "empty").mkdir()
  with pytest.raises(UsageError, match="holds no images"):
    prediction.list_images([str(tmp_path / "empty")])


def test_rows_hold_the_top_k_of_what_the_model_computes(export):
  model, path, images, folder = export
  loaded, metadata = serving.load_export(path)
  files = [str(folder / f"{i}.png") for i in range(4)]
  rows = prediction.predict_files(loaded, metadata, files, top_k=3, batch_size=3)
  expected = model.predict(images.astype(np.float32), verbose=0)
  assert [row["file"] for row in rows] == files
  for row, probabilities in zip(rows, expected):
    assert row["error"] is None
    ids = [p["class_id"] for p in row["predictions"]]
    assert ids == list(np.argsort(-probabilities, kind="stable")[:3])
    assert [p["class_name"] for p in row["predictions"]] == [CLASSES[i] for i in ids]
    assert [p["rank"] for p in row["predictions"]] == [1, 2, 3]
    np.testing.assert_allclose([p["probability"] for p in row["predictions"]],
                               probabilities[ids], atol=1e-6)


def test_a_bad_file_is_reported_on_its_row_and_the_rest_are_predicted(export, tmp_path):
  _, path, _, folder = export
  (tmp_path / "corrupt.png").write_bytes((folder / "0.png").read_bytes()[:40])
  (tmp_path / "notes.txt").write_text("not an image")
  files = [str(folder / "0.png"), str(tmp_path / "corrupt.png"), str(tmp_path / "notes.txt"),
           str(tmp_path / "missing.jpg"), str(folder / "1.png")]
  loaded, metadata = serving.load_export(path)
  rows = prediction.predict_files(loaded, metadata, files, top_k=2)
  assert [bool(row["predictions"]) for row in rows] == [True, False, False, False, True]
  assert "not a decodable image" in rows[1]["error"]
  assert "not a decodable image" in rows[2]["error"]
  assert "cannot read it" in rows[3]["error"]

  table = prediction.OUTPUT_FORMATS.get("table")(rows)
  assert "error: not a decodable image" in table and table.splitlines()[0].split() == [
      "file", "rank", "class_id", "class", "probability"]
  records = list(csv.DictReader(io.StringIO(prediction.OUTPUT_FORMATS.get("csv")(rows))))
  assert len(records) == 2 + 3 + 2  # two ranks for each good file, one row per bad file
  assert records[2]["file"].endswith("corrupt.png") and records[2]["error"]
  assert json.loads(prediction.OUTPUT_FORMATS.get("json")(rows)) == rows


def test_top_k_must_fit_the_classes(export):
  _, path, _, folder = export
  loaded, metadata = serving.load_export(path)
  with pytest.raises(UsageError, match="top_k=11 must be between 1 and the 10 classes"):
    prediction.predict_files(loaded, metadata, [str(folder / "0.png")], top_k=11)
