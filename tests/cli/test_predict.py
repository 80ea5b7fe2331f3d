"""python -m app.predict as a user runs it: files and folders -> top-k as a table, CSV or JSON,
agreeing with TF Serving's own saved_model_cli; bad files are reported, the rest predicted."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests import commands
from tests.serving import crafted

SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


def run_predict(*args):
  return commands.run("app.predict", *args)


@pytest.fixture(scope="module")
def jpegs(cifar_mini_dir):
  """Three real JPEGs of the shared CIFAR-10 mini set (RGB 32x32: the Fashion-MNIST export
  decodes them to grayscale and resizes them to 28x28 in its graph)."""
  folder = os.path.join(cifar_mini_dir, "test", "cat")
  return [os.path.join(folder, name) for name in sorted(os.listdir(folder))[:3]]


def test_json_csv_and_table_list_the_top_k(trained_run, jpegs):
  model = f"--model={trained_run.export_path}"
  as_json = run_predict(model, "--format=json", "--top_k=2", *jpegs)
  assert as_json.returncode == 0, as_json.stderr[-3000:]
  rows = json.loads(as_json.stdout)
  assert [row["file"] for row in rows] == jpegs
  for row in rows:
    assert row["error"] is None and [p["rank"] for p in row["predictions"]] == [1, 2]
    probabilities = [p["probability"] for p in row["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1
    assert all(p["class_name"] == trained_run.metrics["class_names"][p["class_id"]]
               for p in row["predictions"])

  folder = os.path.dirname(jpegs[0])
  as_csv = run_predict(model, "--format=csv", "--top_k=1", folder)
  assert as_csv.returncode == 0, as_csv.stderr[-3000:]
  records = list(csv.DictReader(io.StringIO(as_csv.stdout)))
  assert len(records) == len(os.listdir(folder)) == 20
  by_file = {r["file"]: r for r in records}
  for row in rows:
    assert int(by_file[row["file"]]["class_id"]) == row["predictions"][0]["class_id"]

  table = run_predict(model, jpegs[0])
  assert table.returncode == 0, table.stderr[-3000:]
  lines = table.stdout.splitlines()
  assert lines[0].split() == ["file", "rank", "class_id", "class", "probability"]
  assert len(lines) == 1 + 3 and lines[1].startswith(jpegs[0])  # top_k defaults to 3


def test_saved_model_cli_run_on_the_bytes_signature_gives_the_same_class(trained_run, jpegs,
                                                                          tmp_path):
  with open(jpegs[0], "rb") as f:
    data = f.read()
  # Every byte escaped: saved_model_cli splits --input_exprs at ';' before it parses them.
  literal = "b'" + "".join(f"\\x{b:02x}" for b in data) + "'"
  result = subprocess.run(
      [SAVED_MODEL_CLI, "run", "--dir", trained_run.export_path, "--tag_set", "serve",
       "--signature_def", "serve_bytes", "--input_exprs", f"image_bytes=[{literal}]",
       "--outdir", str(tmp_path)], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  served_class = int(np.load(tmp_path / "top_class_ids.npy")[0, 0])
  served_name = np.load(tmp_path / "top_class_names.npy", allow_pickle=True)[0, 0].decode()

  predicted = run_predict(f"--model={trained_run.export_path}", "--format=json", jpegs[0])
  assert predicted.returncode == 0, predicted.stderr[-3000:]
  top = json.loads(predicted.stdout)[0]["predictions"][0]
  assert (top["class_id"], top["class_name"]) == (served_class, served_name)
  np.testing.assert_allclose(top["probability"],
                             np.load(tmp_path / "top_probabilities.npy")[0, 0], atol=1e-6)


def test_bad_files_are_reported_per_file_and_the_rest_predicted(trained_run, jpegs, tmp_path):
  corrupt = tmp_path / "corrupt.jpg"
  corrupt.write_bytes(open(jpegs[0], "rb").read()[:200])
  text = tmp_path / "notes.txt"
  text.write_text("not an image")
  result = run_predict(f"--model={trained_run.export_path}", "--format=json", jpegs[0],
                       str(corrupt), str(text), jpegs[1])
  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert errors == [f"error: {corrupt}: not a decodable image (JPEG, PNG, GIF or BMP); skipped",
                    f"error: {text}: not a decodable image (JPEG, PNG, GIF or BMP); skipped"]
  rows = json.loads(result.stdout)
  assert [bool(row["predictions"]) for row in rows] == [True, False, False, True]


@pytest.mark.parametrize("args,expected", [
    (["--model={tmp}"], "is not a SavedModel (no saved_model.pb)"),
    (["--model={exports}/tiny"], "pass a version folder such as"),
    ([], "--model is required"),
    (["--model={export}", "--top_k=0"], "top_k=0 must be between 1 and the 10 classes"),
])
def test_bad_input_is_one_line_exit_2(trained_run, jpegs, tmp_path, args, expected):
  args = [a.format(tmp=tmp_path, exports=trained_run.export_dir, export=trained_run.export_path)
          for a in args]
  result = run_predict(*args, jpegs[0])
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr and result.stdout == ""
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and expected in last, last


def test_a_hostile_saved_model_is_refused_in_one_line_and_never_runs(trained_run, jpegs,
                                                                     tmp_path):
  """Issue 19 (12): a SavedModel whose signature calls tf.io.write_file, with our metadata copied
  in, wrote its file through app.predict. Refused unless --trust_model, which runs it."""
  marker = tmp_path / "written_by_the_model"
  hostile = crafted.hostile_saved_model(str(tmp_path / "hostile"), trained_run.export_path,
                                        str(marker))
  result = run_predict(f"--model={hostile}", jpegs[0])
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert "was not written by this application" in last and "--trust_model" in last, last
  assert result.stdout == "" and not marker.exists()
  trusted = run_predict(f"--model={hostile}", "--trust_model", jpegs[0])
  assert trusted.returncode == 0, trusted.stderr[-3000:]
  assert marker.exists()  # the user's consent: the graph ran


def test_help_documents_every_flag():
  result = run_predict("--help")
  assert result.returncode == 0
  for flag in ("--model", "--top_k", "--format", "--batch_size", "--trust_model"):
    assert flag in result.stdout, flag
