"""TensorBoard summaries beyond Keras's callback (which logs each epoch under
<run dir>/tensorboard/train and validation): the learning-rate schedule and range test, the
evaluation report, a search's HParams. `tensorboard --logdir RUN_DIR` (or SEARCH_DIR) shows them.

Written with TensorBoard's own summary protos and event-file writer, no TensorFlow op: the search
process writes the HParams between its trials, and a TensorFlow op there would start TensorFlow's
runtime, which takes nearly all of each GPU's memory the trial subprocesses need.

Each write() leaves one whole event file: it is filled in a staging folder inside the log dir
(app/core/staging.py) and renamed into place, so TensorBoard never reads half of one and a kill
leaves the old file or the new one.
"""

import glob
import os
import shutil
import struct
import time

import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.plugins.text import summary_v2 as text_summary
# Not underscored, and the writer behind TensorBoard's framework-free tensorboard.summary.Writer
# (which writes scalars only) and PyTorch's SummaryWriter; checked with tensorboard 2.21.
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

from app.core import staging

LOG_DIR = "tensorboard"  # in a run directory: Keras's TensorBoard callback's folder, and ours
_EVENTS = "events.out.tfevents.*"
_STAGING = ".summaries-"


def event_files(log_dir):
  """The event files directly in `log_dir` (not its subfolders: other TensorBoard runs)."""
  return sorted(glob.glob(os.path.join(log_dir, _EVENTS)))


def write(log_dir, summaries, replace=True):
  """Writes `summaries`, (step, summary_pb2.Summary) pairs, as a new event file in `log_dir`: one
  TensorBoard run. `replace`: the event files an earlier write left there are removed once the
  new one is in place (a redrawn schedule, an evaluation run again into the same folder)."""
  os.makedirs(log_dir, exist_ok=True)
  staging.remove_abandoned(log_dir, _STAGING)
  folder, lock = staging.new_folder(log_dir, _STAGING)
  try:
    writer = EventFileWriter(folder)
    try:
      for step, summary in summaries:
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))
    finally:
      writer.close()
    earlier = event_files(log_dir) if replace else []
    for path in event_files(folder):
      os.replace(path, os.path.join(log_dir, os.path.basename(path)))
    for path in earlier:
      os.remove(path)
  finally:
    shutil.rmtree(folder, ignore_errors=True)
    staging.release(lock)


def scalar(tag, value, step=0, description=None):
  """A (step, summary) of a number: the Scalars tab."""
  return step, scalar_summary.scalar_pb(tag, np.float32(value), description)


def scalars(values, step=0, prefix=""):
  """A scalar() per `values` item ({tag: number}), tagged `prefix` + tag."""
  return [scalar(prefix + tag, value, step) for tag, value in values.items()]


def text(tag, markdown, step=0):
  """A (step, summary) of Markdown text: the Text tab (tables included)."""
  return step, text_summary.text_pb(tag, markdown)


def png(tag, path, step=0, description=None):
  """A (step, summary) of the PNG at `path` (a figure app/core/plots.py drew): the Images tab
  shows the figure the run directory holds. The image plugin's tensor: width, height, then the
  encoded image, as its own summaries store it."""
  with open(path, "rb") as f:
    encoded = f.read()
  width, height = struct.unpack(">II", encoded[16:24])  # the PNG header's IHDR chunk
  summary = summary_pb2.Summary()
  summary.value.add(
      tag=tag, metadata=image_metadata.create_summary_metadata(None, description),
      tensor=tensor_util.make_tensor_proto([str(width).encode(), str(height).encode(), encoded],
                                           dtype=np.object_))
  return step, summary
