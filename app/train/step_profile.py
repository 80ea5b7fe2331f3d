r"""Where a training step's time goes: a summary of the trace that --config.train.profile_steps
records (TensorFlow's profiler, through Keras's TensorBoard callback).

  python -m app.train --config=configs/cifar10_93.py --config.train.profile_steps=10,19 ...
  python -m app.step_profile --run_dir=runs/cifar10_93-20261129-100000   (app/cli/step_profile.py)

Splits the traced steps' wall time three ways, the profile issue 8 asks for:
- input: the step waiting for its batch (IteratorGetNext);
- compute: the TensorFlow ops of the step function, by kind (convolutions and matrix products,
  batch norm, optimizer update, casts and variable reads, other element-wise ops), each by its
  self time (an op's time minus that of ops it calls);
- framework overhead: Python and Keras between steps (callbacks, logs: the gaps between the step
  function's calls) and the executor's time inside a step when no op runs (dispatch, allocation).
The command prints Markdown and writes <run_dir>/step_profile.json. Keep the traced steps inside one epoch,
so that no evaluation falls between them.
"""

import collections
import glob
import os
import re

from app.core.errors import UsageError


# Python-side events that are one call of the compiled train step (Keras's TF trainer).
STEP_EVENTS = ("multi_step_on_iterator", "one_step_on_iterator", "one_step_on_data")
# Executor ops ("<name scope>/<op name>:<OpType>") as TensorFlow's host tracer names them.
_OP = re.compile(r"^(?P<scope>.*):(?P<type>_?[A-Z][A-Za-z0-9_]*)$")
# The step's wait for its batch: the iterator's get-next calls (they run asynchronously).
INPUT_WAITS = ("IteratorGetNextOp::DoCompute", "IteratorGetNextAsOptionalOp::DoCompute")
# Op kinds, first match wins: (kind, test on (scope, type)).
KINDS = (
    ("convolution / matmul", lambda scope, kind: re.search(r"Conv|MatMul|Einsum", kind)),
    ("batch norm", lambda scope, kind: "BatchNorm" in kind or re.search(r"batch_?norm|/bn|_bn",
                                                                         scope, re.I)),
    ("optimizer update", lambda scope, kind: kind.startswith("ResourceApply") or re.search(
        r"(^|/)(SGD|adam|adamw|rmsprop|adagrad|lion|optimizer|loss_scale_optimizer)[^/]*/",
        scope, re.I)),
    ("casts / variable reads and writes", lambda scope, kind: kind in (
        "Cast", "ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
        "Identity", "_Recv", "_Send")),
    ("other element-wise / pooling / loss", lambda scope, kind: True),
)


def _kind(name):
  match = _OP.match(name)
  scope, op_type = match.group("scope"), match.group("type")
  return next(kind for kind, test in KINDS if test(scope, op_type)), op_type


def _self_times(events):
  """[(start, end, name)] on one thread -> [(name, self time)]: nested events' time is taken from
  the event that contains them."""
  out, stack = [], []  # stack: [start, end, name, child time]
  for start, end, name in sorted(events, key=lambda e: (e[0], -e[1])):
    while stack and start >= stack[-1][1]:
      done = stack.pop()
      out.append((done[2], done[1] - done[0] - done[3]))
    if stack:
      stack[-1][3] += end - start
    stack.append([start, end, name, 0])
  out += [(done[2], done[1] - done[0] - done[3]) for done in stack]
  return out


def _union(intervals):
  total, last_end = 0, None
  for start, end in sorted(intervals):
    if last_end is None or start > last_end:
      total, last_end = total + end - start, end
    elif end > last_end:
      total, last_end = total + end - last_end, end
  return total


def summarize(xspace, top=12):
  """A TensorFlow XSpace (the profiler's .xplane.pb, parsed) -> the breakdown as a dict; times in
  seconds."""
  host = next((plane for plane in xspace.planes if plane.name == "/host:CPU"), None)
  if host is None:
    raise UsageError("the trace has no host plane (/host:CPU); was it recorded by "
                     "--config.train.profile_steps on this machine?")
  names = {key: meta.name for key, meta in host.event_metadata.items()}
  steps, ops, waits, pipeline = [], [], [], []  # spans: (start, end[, name]) in picoseconds
  for line in host.lines:
    base = line.timestamp_ns * 1000
    spans = [(base + e.offset_ps, base + e.offset_ps + e.duration_ps, names[e.metadata_id])
             for e in line.events]
    steps += [(start, end) for start, end, name in spans if name in STEP_EVENTS]
    waits += [(start, end) for start, end, name in spans if name in INPUT_WAITS]
    thread_ops = [span for span in spans if _OP.match(span[2]) and "::" not in span[2]]
    # tf.data runs its map functions' ops on its own threads, beside the step: input work.
    (pipeline if line.name.startswith("tf_data") else ops).append(thread_ops)
  if not steps:
    raise UsageError("the trace holds no training step (no Keras train-step call on the Python "
                     "thread); trace steps of model.fit with --config.train.profile_steps=START,STOP")
  steps.sort()
  first, last = steps[0][0], steps[-1][1]
  window, in_steps = last - first, sum(end - start for start, end in steps)
  inside = lambda spans: [span for span in spans if span[0] >= first and span[1] <= last]
  ops = [inside(thread) for thread in ops]
  op_spans = [span[:2] for thread in ops for span in thread]
  op_busy, busy = _union(op_spans), _union(op_spans + inside(waits))
  by_kind, by_type = collections.Counter(), collections.Counter()
  for thread in ops:
    for name, self_time in _self_times(thread):
      kind, op_type = _kind(name)
      by_kind[kind] += self_time
      by_type[op_type] += self_time
  op_total = sum(by_kind.values())
  seconds = lambda ps: ps / 1e12
  # Ops can overlap on the executor's threads: each kind's share of the ops' busy time is its
  # share of their summed self time, so the kinds add up to the time some op runs.
  scale = op_busy / op_total if op_total else 0.0
  rows = [{"part": "input: waiting for the batch", "seconds": seconds(busy - op_busy)}]
  rows += [{"part": kind, "seconds": seconds(by_kind[kind] * scale)}
           for kind, _ in KINDS if by_kind[kind]]
  rows.append({"part": "framework: executor, no op running", "seconds": seconds(in_steps - busy)})
  rows.append({"part": "framework: Python / Keras between steps", "seconds": seconds(window - in_steps)})
  for row in rows:
    row["share"] = row["seconds"] / seconds(window)
    row["per_step_ms"] = 1000 * row["seconds"] / len(steps)
  pipeline_ops = sum(end - start for thread in pipeline for start, end, _ in inside(thread))
  return {
      "steps": len(steps),
      "wall_seconds": seconds(window),
      "step_ms": 1000 * seconds(window) / len(steps),
      "parts": rows,
      # CPU time of the tf.data threads' ops (augmentation), which run beside the step.
      "input_pipeline_ms_per_step": 1000 * seconds(pipeline_ops) / len(steps),
      "op_types": [{"type": op_type, "seconds": seconds(t), "share_of_op_time": t / op_total}
                   for op_type, t in by_type.most_common(top)],
  }


def markdown(summary, batch_size=None):
  lines = [f"{summary['steps']} steps traced, {summary['wall_seconds']:.2f} s: "
           f"{summary['step_ms']:.1f} ms per step"
           + (f" ({batch_size * 1000 / summary['step_ms']:,.0f} images/s at batch {batch_size})"
              if batch_size else "") + ".", "",
           "| part of the step | ms per step | share |", "|---|---:|---:|"]
  lines += [f"| {row['part']} | {row['per_step_ms']:.1f} | {100 * row['share']:.1f}% |"
            for row in summary["parts"]]
  lines += ["", f"Beside the step, the input pipeline's ops (tf.data threads) took "
            f"{summary['input_pipeline_ms_per_step']:.1f} ms of CPU per step."]
  lines += ["", "| op type | self time, share of op time |", "|---|---:|"]
  lines += [f"| {row['type']} | {100 * row['share_of_op_time']:.1f}% |"
            for row in summary["op_types"]]
  return "\n".join(lines)


def trace_files(run_dir):
  """The profiler's trace files of a run, newest last."""
  return sorted(glob.glob(os.path.join(run_dir, "tensorboard", "train", "plugins", "profile",
                                       "*", "*.xplane.pb")))
