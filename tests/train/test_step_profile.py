"""app/train/step_profile.py: the breakdown of a hand-made trace, and a real traced run end to end."""

import json


import pytest
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from app.train import step_profile
from app.core.errors import UsageError

from tests import commands
MS = 10 ** 9  # picoseconds


def _trace(lines):
  """{line name: [(event name, start ms, duration ms)]} -> an XSpace with one host plane."""
  space = xplane_pb2.XSpace()
  plane = space.planes.add(name="/host:CPU")
  ids = {}
  for line_name, events in lines.items():
    line = plane.lines.add(name=line_name, timestamp_ns=0)
    for name, start, duration in events:
      if name not in ids:
        ids[name] = len(ids) + 1
        plane.event_metadata[ids[name]].id = ids[name]
        plane.event_metadata[ids[name]].name = name
      line.events.add(metadata_id=ids[name], offset_ps=start * MS, duration_ps=duration * MS)
  return space


def test_breakdown_of_a_hand_made_trace():
  # Two 40 ms steps with 20 ms of Python between them (window 0-100 ms). In each: a 30 ms
  # function-call op holding a 20 ms convolution and a 5 ms batch norm (5 ms of its own), 4 ms of
  # waiting for the batch, 6 ms with nothing running. A tf.data thread augments beside it.
  space = _trace({
      "python": [("multi_step_on_iterator", 0, 40), ("multi_step_on_iterator", 60, 40)],
      "tf_Compute/1": [
          ("StatefulPartitionedCall:StatefulPartitionedCall", 4, 30),
          ("StatefulPartitionedCall/net/conv/convolution:_MklNativeConv2D", 6, 20),
          ("StatefulPartitionedCall/net/group0_bn1/FusedBatchNormV3:_MklNativeFusedBatchNormV3",
           27, 5),
          ("ExecutorState::Process", 0, 40),  # not an op: no "name:Type"
          ("StatefulPartitionedCall:StatefulPartitionedCall", 64, 30),
          ("StatefulPartitionedCall/net/conv/convolution:_MklNativeConv2D", 66, 20),
          ("StatefulPartitionedCall/net/group0_bn1/FusedBatchNormV3:_MklNativeFusedBatchNormV3",
           87, 5),
          ("StatefulPartitionedCall/sgd/AssignSubVariableOp:AssignSubVariableOp", 150, 5),  # after
      ],
      "tf_data_iterator_get_next/1": [("IteratorGetNextOp::DoCompute", 0, 4),
                                      ("IteratorGetNextOp::DoCompute", 60, 4)],
      "tf_data_private_threadpool/1": [("GatherV2:GatherV2", 10, 3), ("MirrorPad:MirrorPad", 70, 3)],
  })
  summary = step_profile.summarize(space)
  parts = {row["part"]: row["per_step_ms"] for row in summary["parts"]}
  assert summary["steps"] == 2 and summary["step_ms"] == pytest.approx(50.0)
  assert parts == pytest.approx({
      "input: waiting for the batch": 4.0,
      "convolution / matmul": 20.0,
      "batch norm": 5.0,
      "other element-wise / pooling / loss": 5.0,  # the call op's own time
      "framework: executor, no op running": 6.0,
      "framework: Python / Keras between steps": 10.0,
  })
  assert sum(row["share"] for row in summary["parts"]) == pytest.approx(1.0)
  assert summary["input_pipeline_ms_per_step"] == pytest.approx(3.0)
  assert [row["type"] for row in summary["op_types"]][:2] == [
      "_MklNativeConv2D", "_MklNativeFusedBatchNormV3"]
  assert "| convolution / matmul | 20.0 | 40.0% |" in step_profile.markdown(summary, 64)


def test_a_trace_without_training_steps_is_refused():
  with pytest.raises(UsageError, match="profile_steps"):
    step_profile.summarize(_trace({"tf_Compute/1": [("a/b:Conv2D", 0, 5)]}))


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
  assert summary["steps"] == 4
  parts = {row["part"]: row["share"] for row in summary["parts"]}
  assert parts["convolution / matmul"] > 0.05  # the convolutions were seen and classified
  assert sum(parts.values()) == pytest.approx(1.0, abs=0.01)
  assert "images/s at batch 100" in result.stdout


def test_run_without_a_trace_gets_one_line(tmp_path):
  result = commands.run("app.step_profile", f"--run_dir={tmp_path}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      f"error: {tmp_path} holds no profiler trace; train with "
      "--config.train.profile_steps=START,STOP (e.g. 10,19) first"]
