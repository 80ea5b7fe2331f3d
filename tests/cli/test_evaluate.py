"""python -m app.evaluate as a user runs it: a report in the run directory whose numbers agree
with model.evaluate; optional flip TTA and exported models; bad input is one line, exit 2."""

import json
import os
import shutil

import keras
import pytest

from app.core.run_dir import RunDir
from app.models import load_model
from app.serving import integrity
from app.serving.runs import load_data
from tests import commands, tensorboard_events
from tests.serving import crafted

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPORT_FILES = {"report.md", "report.json", "confusion_matrix.png", "worst_mistakes.png",
                "reliability.png"}


def run_evaluate(*args):
  return commands.run("app.evaluate", *args)


def test_report_numbers_agree_with_model_evaluate(trained_run):
  result = run_evaluate(f"--run_dir={trained_run.run_dir}")
  assert result.returncode == 0, result.stderr[-3000:]
  report_dir = os.path.join(trained_run.run_dir, "evaluation")
  assert f"report {report_dir}/report.md" in result.stdout
  assert set(os.listdir(report_dir)) == REPORT_FILES
  report = json.loads(open(os.path.join(report_dir, "report.json")).read())

  model = load_model(os.path.join(trained_run.run_dir, "checkpoints", "best.keras"))
  model.compile(loss=keras.losses.CategoricalCrossentropy(),
                metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                         keras.metrics.TopKCategoricalAccuracy(5, name="top5")])
  data = load_data(RunDir(trained_run.run_dir).load_config(), 256)
  expected = model.evaluate(data.test, verbose=0, return_dict=True)
  assert report["images"] == data.num_test == 600
  assert report["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)
  assert report["top5_accuracy"] == pytest.approx(expected["top5"], abs=1e-6)
  assert report["cross_entropy"] == pytest.approx(expected["loss"], rel=1e-4)
  assert report["accuracy"] == pytest.approx(trained_run.metrics["test_accuracy"], abs=1e-6)
  assert sum(map(sum, report["confusion_matrix"])) == 600
  assert 0 <= report["expected_calibration_error"] <= 1
  markdown = open(os.path.join(report_dir, "report.md")).read()
  assert f"| accuracy | {report['accuracy']:.4f} |" in markdown
  assert "![confusion matrix](confusion_matrix.png)" in markdown
  # Issue 21: the report, and the run's schedule, in the run's TensorBoard log dir beside Keras's
  # epochs (`tensorboard --logdir RUN_DIR`), read back by TensorBoard's event reader.
  board = tensorboard_events.runs(trained_run.run_dir)
  assert {"tensorboard/train", "tensorboard/validation"} <= set(board)
  assert board["tensorboard/evaluation"]["evaluation/accuracy"] == (
      "scalars", [(0, pytest.approx(report["accuracy"]))])
  assert board["tensorboard/evaluation"]["evaluation/confusion_matrix"][0] == "images"
  plugin, schedule = board["tensorboard/learning_rate_schedule"][
      "learning_rate_schedule/learning_rate"]
  peak = RunDir(trained_run.run_dir).load_config().optim.peak_learning_rate
  assert plugin == "scalars" and [rate for _, rate in schedule] == [pytest.approx(peak)] * len(
      schedule)  # the fixture's constant schedule


def test_an_export_with_flip_tta_and_a_second_report_beside_the_first(trained_run):
  first = os.path.join(trained_run.run_dir, "evaluation")
  os.makedirs(first, exist_ok=True)  # as if evaluated before: it must stay as it is
  before = sorted(os.listdir(first))
  result = run_evaluate(f"--model={trained_run.export_path}", f"--run_dir={trained_run.run_dir}",
                        "--tta_flip", "--limit=200")
  assert result.returncode == 0, result.stderr[-3000:]
  second = os.path.join(trained_run.run_dir, "evaluation-2")
  assert set(os.listdir(second)) == REPORT_FILES
  assert sorted(os.listdir(first)) == before
  report = json.loads(open(os.path.join(second, "report.json")).read())
  assert (report["tta"], report["images"], report["model"]) == (
      "flip", 200, trained_run.export_path)
  board = tensorboard_events.runs(trained_run.run_dir)["tensorboard/evaluation-2"]  # issue 21
  assert board["evaluation/accuracy"] == ("scalars", [(0, pytest.approx(report["accuracy"]))])


@pytest.mark.parametrize("case,args,expected", [
    ("unsafe", ["--model={unsafe}", "--run_dir={run}"], "refusing to load"),
    ("not a SavedModel", ["--model={tmp}", "--run_dir={run}"], "is not a SavedModel"),
    ("report dir taken", ["--run_dir={run}", "--report_dir={run}"], "already exists and is not empty"),
    ("nothing to evaluate", [], "nothing to evaluate"),
])
def test_bad_input_is_one_line_exit_2(trained_run, tmp_path, unsafe_keras_file, case, args,
                                      expected):
  before = sorted(os.listdir(trained_run.run_dir))
  result = run_evaluate(*[a.format(tmp=tmp_path, run=trained_run.run_dir,
                                   unsafe=unsafe_keras_file) for a in args])
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and expected in last, last
  assert sorted(os.listdir(trained_run.run_dir)) == before


def _refused_in_one_line(result, *words):
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and all(w in last for w in words), last


def test_a_hostile_export_neither_runs_nor_chooses_where_the_report_goes(trained_run, tmp_path):
  """Issue 19 (12): a SavedModel whose signature calls tf.io.write_file ran under app.evaluate,
  and the report went into whatever run_dir the model's metadata.json named."""
  marker, victim = tmp_path / "written_by_the_model", tmp_path / "victim"
  victim.mkdir()
  hostile = crafted.hostile_saved_model(str(tmp_path / "hostile"), trained_run.export_path,
                                        str(marker))
  crafted.edit_metadata(hostile, run_dir=str(victim))
  _refused_in_one_line(run_evaluate(f"--model={hostile}", f"--report_dir={tmp_path / 'report'}"),
                       "was not written by this application", "--trust_model")
  assert not marker.exists() and not (tmp_path / "report").exists()
  # Even trusted, and even for an export of ours, the report never goes where metadata points.
  for model, trust in ((hostile, ["--trust_model"]), (trained_run.export_path, [])):
    copy = shutil.copytree(model, tmp_path / "copy")
    if not trust:  # our own export, its metadata pointing at the victim (hash recomputed)
      crafted.edit_metadata(str(copy), run_dir=str(victim))
      integrity.write(str(copy))
    _refused_in_one_line(run_evaluate(f"--model={copy}", *trust), "no place for the report",
                         "--report_dir")
    assert os.listdir(victim) == []
    shutil.rmtree(copy)


def test_help_documents_every_flag():
  result = run_evaluate("--help")
  assert result.returncode == 0
  for flag in ("--run_dir", "--model", "--split", "--tta_flip", "--report_dir", "--dataset",
               "--data_dir", "--limit", "--batch_size", "--worst", "--trust_model"):
    assert flag in result.stdout, flag
