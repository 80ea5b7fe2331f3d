"""What TensorBoard shows of a log dir, read by TensorBoard's own code: its event multiplexer
(the server's reader of every run under --logdir) and the HParams plugin's request handlers,
the ones behind the dashboard's table (get_experiment, list_session_groups)."""

import json

import numpy as np
import tensorflow as tf
from tensorboard import context
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import backend_context
from tensorboard.plugins.hparams import get_experiment
from tensorboard.plugins.hparams import list_session_groups


def _multiplexer(logdir):
  multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={
      "scalars": 0, "images": 0, "text": 0})  # 0: keep every step
  multiplexer.AddRunsFromDirectory(str(logdir))
  multiplexer.Reload()
  return multiplexer


def runs(logdir):
  """{run: {tag: (plugin, [(step, value)])}} for the runs under `logdir` (run names relative to
  it, as TensorBoard lists them): a scalar's value is a float, an image's the PNG bytes, a text's
  the str."""
  multiplexer, found = _multiplexer(logdir), {}
  for run, tags in multiplexer.Runs().items():
    for tag in tags.get("tensors", []):
      plugin = multiplexer.SummaryMetadata(run, tag).plugin_data.plugin_name
      values = []
      for event in multiplexer.Tensors(run, tag):
        array = tf.make_ndarray(event.tensor_proto)
        if plugin == "scalars":
          value = float(array)
        elif plugin == "images":  # [width, height, PNG ...]
          value = array[2]
        elif plugin == "text":
          value = np.asarray(array).item().decode()
        else:
          value = array
        values.append((event.step, value))
      found.setdefault(run, {})[tag] = (plugin, values)
  return found


def hparams(logdir):
  """(experiment, sessions) as the HParams dashboard gets them: the experiment's
  {"hparams": {name: domain dict}, "metrics": [tag]}, and per session (a trial's run)
  {"hparams": {name: value}, "metrics": {tag: value}, "status": name}."""
  multiplexer = _multiplexer(logdir)
  backend = backend_context.Context(base_plugin.TBContext(
      logdir=str(logdir), multiplexer=multiplexer,
      data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(logdir))))
  request_context = context.RequestContext()
  experiment = get_experiment.Handler(request_context, backend, "",
                                      api_pb2.GetExperimentRequest()).run()
  statuses = [api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE,
              api_pb2.STATUS_RUNNING]
  groups = list_session_groups.Handler(
      request_context, backend, "", api_pb2.ListSessionGroupsRequest(
          start_index=0, slice_size=1000, allowed_statuses=statuses)).run()
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  domains = {}
  for info in experiment.hparam_infos:
    as_dict = json.loads(json_format.MessageToJson(info))
    domains[info.name] = {k: v for k, v in as_dict.items() if k.startswith("domain")}
  summary = {"hparams": domains, "metrics": [m.name.tag for m in experiment.metric_infos]}
  sessions = {}
  for group in groups.session_groups:
    for session in group.sessions:
      sessions[session.name] = {
          "hparams": {k: json_format.MessageToDict(v) for k, v in group.hparams.items()},
          "metrics": {m.name.tag: m.value for m in session.metric_values},
          "status": api_pb2.Status.Name(session.status)}
  return summary, sessions
