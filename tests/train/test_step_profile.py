"""app/train/step_profile.py: the breakdown of hand-made xprof analyses, a real traced run end to
end (its steps marked for xprof by callbacks.StepMarkedTensorBoard), and the missing plugin."""

import json
import os
import sys

import pytest

from app.train import step_profile
from app.core.errors import UsageError

from tests import commands

STEP_COLUMNS = ("stepnum", "hostComputeTimeMs", "deviceComputeTimeMs", "infeedTimeMs",
                "kernelLaunchTimeMs", "otherTimeMs", "stepTimeMs")
OP_COLUMNS = ("rank", "host_or_device", "type", "operation", "total_self_time")


def _table(columns, rows, properties=None):
  """One data table as xprof serves it to the Profile tab (Google's DataTable JSON)."""
  return {"cols": [{"id": column, "label": column} for column in columns],
          "rows": [{"c": [{"v": value} for value in row]} for row in rows],
          "p": properties or {}}


def _analyses(step_rows):
  """The three analyses, each a list of tables in an order unlike xprof's (they are found by
  column): two 60 ms steps of 30 ms host compute (20 convolution, 5 batch norm, 5 add, by self
  time), 10 ms device compute (a matmul), 4 ms input, 2 ms kernel launch, 14 ms of the rest."""
  conclusion = "Your program is HIGHLY input-bound because 6.7% of the step time is input."
  return {
      "input_pipeline_analyzer": [
          _table(("opName", "count", "timeInMs", "selfTimeInMs"),
                 [("Iterator::Root::Prefetch", 2, 2.0, 1.5), ("Iterator::Root::Map", 2, 1.5, 1.5)]),
          _table(STEP_COLUMNS, step_rows, {"input_conclusion": conclusion}),
          _table((), ()),
      ],
      "framework_op_stats": [_table(OP_COLUMNS, [
          (1, "Host", "IDLE", "IDLE", 100000.0),  # us
          (2, "Host", "_MklNativeConv2D", "StatefulPartitionedCall/net/conv/Conv2D", 20000.0),
          (3, "Host", "_MklNativeFusedBatchNormV3", "StatefulPartitionedCall/net/bn/FusedBatchNorm",
           5000.0),
          (4, "Host", "AddV2", "StatefulPartitionedCall/net/add", 5000.0),
          (5, "Host", "Dataset", "Iterator::Root::Prefetch", 3000.0),  # the input pipeline's
          (6, "Device", "MatMul", "StatefulPartitionedCall/net/dense/MatMul", 8000.0),
      ])],
      "overview_page": [_table(("tip_type", "link"), (),
                               {"bottleneck": "input", "statement": conclusion})],
  }


TWO_STEPS = [("train 7", 30.0, 10.0, 4.0, 2.0, 14.0, 60.0),
             ("train 8", 30.0, 10.0, 4.0, 2.0, 14.0, 60.0)]


def test_breakdown_of_hand_made_analyses():
  summary = step_profile.summarize(_analyses(TWO_STEPS), traced_steps=2)
  parts = {row["part"]: row["per_step_ms"] for row in summary["parts"]}
  assert summary["steps"] == 2 and summary["step_ms"] == pytest.approx(60.0)
  assert summary["step_names"] == ["train 7", "train 8"]
  assert summary["wall_seconds"] == pytest.approx(0.12)
  assert parts == pytest.approx({
      "input: waiting for the batch": 4.0,
      "convolution / matmul": 30.0,  # 20 of the host's 30 ms, and the device's 10
      "batch norm": 5.0,
      "other element-wise / pooling / loss": 5.0,
      "kernel launch": 2.0,
      step_profile.FRAMEWORK: 14.0,
  })
  assert list(parts)[0] == step_profile.INPUT and list(parts)[-1] == step_profile.FRAMEWORK
  assert sum(row["share"] for row in summary["parts"]) == pytest.approx(1.0)
  assert summary["input_share"] == pytest.approx(4 / 60)
  assert summary["input_pipeline_ms_per_step"] == pytest.approx(1.5)  # 3 ms of iterators / 2
  # The host's idle time and the tf.data iterators are no ops of a step.
  assert [row["type"] for row in summary["op_types"]] == [
      "_MklNativeConv2D", "MatMul", "_MklNativeFusedBatchNormV3", "AddV2"]
  assert summary["op_types"][0]["share_of_op_time"] == pytest.approx(20 / 38)
  assert summary["xprof"]["bottleneck"] == "input"
  text = step_profile.markdown(summary, 64)
  assert text.startswith("2 steps analysed, 0.12 s: 60.0 ms per step (1,067 images/s at batch 64).")
  assert "| convolution / matmul | 30.0 | 50.0% |" in text
  assert "xprof: Your program is HIGHLY input-bound" in text


def test_steps_left_out_by_xprof_are_said_and_the_pipeline_is_per_traced_step():
  summary = step_profile.summarize(_analyses(TWO_STEPS), top=1, traced_steps=4)
  assert summary["steps"] == 2 and summary["traced_steps"] == 4
  assert summary["input_pipeline_ms_per_step"] == pytest.approx(0.75)  # the whole trace's / 4
  assert [row["type"] for row in summary["op_types"]] == ["_MklNativeConv2D"]
  assert step_profile.markdown(summary).startswith(
      "2 of 4 traced steps analysed (xprof leaves out the first and the last), 0.12 s: "
      "60.0 ms per step.")


def test_a_trace_without_step_markers_is_refused():
  with pytest.raises(UsageError, match="no training step .*profile_steps=START,STOP"):
    step_profile.summarize(_analyses([]))


def test_without_the_plugin_one_line_says_how_to_install_it(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "xprof", None)  # as if not installed: its import fails
  monkeypatch.setitem(sys.modules, "xprof.convert", None)
  with pytest.raises(UsageError) as refused:
    step_profile.analyses(str(tmp_path / "vm.xplane.pb"))
  assert "\n" not in str(refused.value) and "pip install -e '.[profile]'" in str(refused.value)


def test_traced_run_end_to_end(tmp_path, cifar_mini_dir):
  run_dir = tmp_path / "run"
  train = commands.run(
      "app.train", "--dataset=folder", f"--data_dir={cifar_mini_dir}", "--epochs=1",
      "--batch_size=100", "--model=simple_cnn", "--config.model.width=8",
      "--config.optim.warmup_epochs=0", "--config.export.enabled=False",
      "--config.train.profile_steps=3,6", f"--output_dir={run_dir}", timeout=600)
  assert train.returncode == 0, train.stderr[-3000:]
  result = commands.run("app.step_profile", f"--run_dir={run_dir}")
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((run_dir / "step_profile.json").read_text())
  # Every traced step was marked, and xprof found each (it keeps all of five or fewer).
  assert summary["steps"] == summary["traced_steps"] == 4
  assert summary["step_names"] == ["train 3", "train 4", "train 5", "train 6"]
  parts = {row["part"]: row["share"] for row in summary["parts"]}
  assert parts["convolution / matmul"] > 0.05  # the convolutions were seen and classified
  assert sum(parts.values()) == pytest.approx(1.0, abs=0.01)
  assert summary["xprof"]["input_conclusion"]
  assert "images/s at batch 100" in result.stdout
  # xprof's caches went to a scratch folder: the trace's folder is as training left it.
  assert os.listdir(os.path.dirname(summary["trace"])) == [os.path.basename(summary["trace"])]


def test_run_without_a_trace_gets_one_line(tmp_path):
  result = commands.run("app.step_profile", f"--run_dir={tmp_path}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      f"error: {tmp_path} holds no profiler trace; train with "
      "--config.train.profile_steps=START,STOP (e.g. 10,19) first"]
