r"""Where a training step's time goes: a summary of the trace that --config.train.profile_steps
records (TensorFlow's profiler, through Keras's TensorBoard callback), read through the profiler
plugin's own analyses (xprof, the code behind TensorBoard's Profile tab; the `[profile]` extra).

  pip install -e '.[profile]'
  python -m app.train --config=configs/cifar10_93.py --config.train.profile_steps=10,19 ...
  python -m app.step_profile --run_dir=runs/cifar10_93-20261129-100000   (app/cli/step_profile.py)

Every figure is one of xprof's, so a TensorFlow release that renames its trace events is xprof's
to follow, not ours:
- the steps and their time: the input pipeline analyzer's step table. xprof finds a step by its
  marker, which Keras 3 does not write (callbacks.StepMarkedTensorBoard does); of more than five
  steps it leaves out the first and the last, as possibly incomplete;
- the split of a step (the same table): input (the step waiting for its batch), compute (the ops'
  time on the host and on the device), on accelerators kernel launch, device-to-device copies and
  collectives, compilation, and "all others": Python and Keras, the executor between ops;
- compute by kind of op (convolutions and matrix products, batch norm, optimizer update, casts
  and variable reads, other element-wise ops): each kind's share of the framework op stats' self
  time (an op's time minus that of ops it calls), times the compute time of the step;
- the op types: the framework op stats' self time, summed by op type;
- the input pipeline beside the step: the analyzer's input-processing time (the tf.data
  iterators' self time);
- xprof's own verdicts: the analyzer's input conclusion and the overview page's bottleneck.
What the analyses lack that the earlier reader of raw traces gave:
- the framework overhead in two (the executor with no op running inside a step; Python and Keras
  between steps): xprof reports one "all others", and on a CPU it counts the executor's own time
  as host compute, so that time is now spread over the kinds of op;
- which thread ran an op: the op stats hold the ops of tf.data's map functions (augmentation)
  beside the step's, so they are counted in the kinds and op types, and the input pipeline's
  figure is the iterators' own time, without those ops' time.

The command prints Markdown and writes <run_dir>/step_profile.json. Keep the traced steps inside
one epoch, so that no evaluation falls between them.
"""

import contextlib
import glob
import json
import os
import re
import tempfile

from app.core.console import native_stderr_hidden
from app.core.errors import UsageError

# The analyses read (xprof's tool names, as TensorBoard's Profile tab lists them).
TOOLS = ("input_pipeline_analyzer", "framework_op_stats", "overview_page")
INSTALL = ("the step profile reads the trace with the profiler plugin, xprof, which is not "
           "installed: pip install -e '.[profile]' in the checkout (or pip install xprof==2.24.2)")
# Op kinds, first match wins: (kind, test on (op name, op type)).
KINDS = (
    ("convolution / matmul", lambda name, kind: re.search(r"Conv|MatMul|Einsum", kind)),
    ("batch norm", lambda name, kind: "BatchNorm" in kind or re.search(r"batch_?norm|/bn|_bn",
                                                                       name, re.I)),
    ("optimizer update", lambda name, kind: kind.startswith("ResourceApply") or re.search(
        r"(^|/)(SGD|adam|adamw|rmsprop|adagrad|lion|optimizer|loss_scale_optimizer)[^/]*/",
        name, re.I)),
    ("casts / variable reads and writes", lambda name, kind: kind in (
        "Cast", "ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
        "Identity", "_Recv", "_Send")),
    ("other element-wise / pooling / loss", lambda name, kind: True),
)
INPUT = "input: waiting for the batch"
# The step table's other parts of a step (ms columns), in the order printed; a part with no time
# in the trace (no accelerator: no kernel launch) is left out.
OTHER_PARTS = (
    ("kernel launch", ("kernelLaunchTimeMs",)),
    ("device to device, collectives", ("deviceToDeviceTimeMs", "deviceCollectivesTimeMs")),
    ("compilation", ("compileTimeMs",)),
    ("output", ("outfeedTimeMs",)),
)
FRAMEWORK = "framework: Python, Keras, executor between ops (xprof: all others)"
# Where the step table puts the ops' time: the op stats' host_or_device -> the table's column.
COMPUTE = {"Host": "hostComputeTimeMs", "Device": "deviceComputeTimeMs"}
# Op stats' rows that are no op of a step: the host's idle time, and the tf.data iterators
# (xprof's type "Dataset"), which the input pipeline's figure counts.
NOT_STEP_OPS = ("IDLE", "Dataset")


def profiled_steps(profile_steps):
  """--config.train.profile_steps ("START,STOP", validated by app.config; "" = off) as the range
  of the 1-based training steps it traces."""
  if not profile_steps:
    return range(0)
  start, stop = (int(step) for step in str(profile_steps).split(","))
  return range(start, stop + 1)


def _kind(name, op_type):
  return next(kind for kind, test in KINDS if test(name, op_type))


def _rows(tables, column):
  """The rows of the data table (Google's DataTable JSON, as xprof serves it to the Profile tab)
  that has this column, as dicts by column id; found by column, not by the tables' order."""
  table = next((t for t in tables if any(c.get("id") == column for c in t.get("cols", ()))), None)
  if table is None:
    return [], {}
  ids = [c["id"] for c in table["cols"]]
  return [{i: cell.get("v") if cell else None for i, cell in zip(ids, row["c"])}
          for row in table.get("rows", ())], table.get("p", {})


def analyses(trace):
  """The profiler plugin's analyses of one trace file (*.xplane.pb): {tool: its data tables}."""
  try:
    from xprof.convert import raw_to_tool_data  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UsageError(INSTALL) from None
  out = {}
  # xprof logs its progress (and a bad file's complaints) from C++ to fd 2: hidden, as
  # TensorFlow's are, unless TF_CPP_MIN_LOG_LEVEL=0 asks for them; a failure is our one line.
  quiet = (native_stderr_hidden() if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0"
           else contextlib.nullcontext())
  # xprof caches what it derives beside the trace: a link in a scratch folder leaves the run
  # directory as training wrote it (and its cache serves the three analyses).
  with tempfile.TemporaryDirectory() as session, quiet:
    link = os.path.join(session, os.path.basename(trace))
    os.symlink(os.path.abspath(trace), link)
    for tool in TOOLS:
      try:
        data, _ = raw_to_tool_data.xspace_to_tool_data([link], tool, {})
      except ValueError as error:
        data, why = None, str(error)
      else:
        why = "no result"
      if not data:
        raise UsageError(f"xprof cannot analyse {trace} ({tool}: {why}); is it a profiler trace "
                         "written by --config.train.profile_steps?")
      out[tool] = json.loads(data)
  return out


def summarize(tool_data, top=12, traced_steps=None):
  """The profiler plugin's analyses of a trace (analyses()) -> the breakdown as a dict; times in
  seconds where a key says so, else ms. traced_steps (from profile_steps) scales the figures
  xprof gives for the whole trace (the input pipeline's) to one step; without it, the steps xprof
  analysed."""
  steps, _ = _rows(tool_data["input_pipeline_analyzer"], "stepTimeMs")
  steps = [step for step in steps if step.get("stepTimeMs")]
  if not steps:
    raise UsageError("the profiler finds no training step in the trace (no step markers: traces "
                     "recorded before the step profile used xprof have none); trace again with "
                     "python -m app.train --config.train.profile_steps=START,STOP")
  count = len(steps)
  per_step = lambda *columns: sum(step.get(c) or 0.0 for step in steps for c in columns) / count
  step_ms = per_step("stepTimeMs")

  ops, _ = _rows(tool_data["framework_op_stats"], "total_self_time")
  ops = [op for op in ops
         if op.get("type") not in NOT_STEP_OPS and op.get("host_or_device") in COMPUTE]
  self_time = {place: {} for place in COMPUTE}  # place -> kind -> us
  by_type = {}  # op type -> us
  for op in ops:
    place, op_type, micros = op["host_or_device"], op["type"], op["total_self_time"] or 0.0
    kind = _kind(op["operation"] or "", op_type)
    self_time[place][kind] = self_time[place].get(kind, 0.0) + micros
    by_type[op_type] = by_type.get(op_type, 0.0) + micros
  by_kind = {}  # kind -> ms per step: the step's compute time, split by the kinds' self time
  for place, column in COMPUTE.items():
    compute_ms, total = per_step(column), sum(self_time[place].values())
    for kind, micros in self_time[place].items():
      by_kind[kind] = by_kind.get(kind, 0.0) + compute_ms * micros / total
    if compute_ms and not total:  # a step's compute with no op stats: still counted
      by_kind[KINDS[-1][0]] = by_kind.get(KINDS[-1][0], 0.0) + compute_ms

  parts = [(INPUT, per_step("infeedTimeMs"))]
  parts += [(kind, by_kind[kind]) for kind, _ in KINDS if by_kind.get(kind)]
  parts += [(part, per_step(*columns)) for part, columns in OTHER_PARTS if per_step(*columns)]
  parts.append((FRAMEWORK, per_step("otherTimeMs")))
  rows = [{"part": part, "seconds": ms * count / 1000, "share": ms / step_ms, "per_step_ms": ms}
          for part, ms in parts]

  input_ops, _ = _rows(tool_data["input_pipeline_analyzer"], "selfTimeInMs")
  _, step_notes = _rows(tool_data["input_pipeline_analyzer"], "stepTimeMs")
  _, verdict = _rows(tool_data["overview_page"], "tip_type")
  op_total = sum(by_type.values())
  return {
      "steps": count,  # the steps xprof analysed, whose figures follow
      "step_names": [step["stepnum"] for step in steps],
      "traced_steps": traced_steps or count,
      "wall_seconds": step_ms * count / 1000,
      "step_ms": step_ms,
      "step_ms_min": min(step["stepTimeMs"] for step in steps),
      "step_ms_max": max(step["stepTimeMs"] for step in steps),
      "parts": rows,
      "input_share": rows[0]["share"],
      # Time of the tf.data iterators (reading, decoding, augmentation), beside the step.
      "input_pipeline_ms_per_step": sum(op.get("selfTimeInMs") or 0.0 for op in input_ops)
                                    / (traced_steps or count),
      "op_types": [{"type": op_type, "seconds": micros / 1e6,
                    "share_of_op_time": micros / op_total if op_total else 0.0}
                   for op_type, micros in sorted(by_type.items(), key=lambda item: -item[1])[:top]],
      "xprof": {"input_conclusion": step_notes.get("input_conclusion", ""),
                "bottleneck": verdict.get("bottleneck", ""),
                "statement": verdict.get("statement", "")},
  }


def markdown(summary, batch_size=None):
  analysed = (f"{summary['steps']} steps analysed" if summary["steps"] == summary["traced_steps"]
              else f"{summary['steps']} of {summary['traced_steps']} traced steps analysed "
                   "(xprof leaves out the first and the last)")
  lines = [f"{analysed}, {summary['wall_seconds']:.2f} s: {summary['step_ms']:.1f} ms per step"
           + (f" ({batch_size * 1000 / summary['step_ms']:,.0f} images/s at batch {batch_size})"
              if batch_size else "") + ".", "",
           "| part of the step | ms per step | share |", "|---|---:|---:|"]
  lines += [f"| {row['part']} | {row['per_step_ms']:.1f} | {100 * row['share']:.1f}% |"
            for row in summary["parts"]]
  lines += ["", f"Beside the step, the input pipeline (tf.data iterators) took "
            f"{summary['input_pipeline_ms_per_step']:.1f} ms per step."]
  if summary["xprof"]["input_conclusion"]:
    lines += ["", f"xprof: {summary['xprof']['input_conclusion']}"]
  lines += ["", "| op type | self time, share of op time |", "|---|---:|"]
  lines += [f"| {row['type']} | {100 * row['share_of_op_time']:.1f}% |"
            for row in summary["op_types"]]
  return "\n".join(lines)


def trace_files(run_dir):
  """The profiler's trace files of a run, newest last."""
  return sorted(glob.glob(os.path.join(run_dir, "tensorboard", "train", "plugins", "profile",
                                       "*", "*.xplane.pb")))
