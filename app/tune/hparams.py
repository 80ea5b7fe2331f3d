"""A search's TensorBoard HParams dashboard: `tensorboard --logdir SEARCH_DIR`.

KerasTuner writes it from inside a trial's `fit` (its TensorBoard callback's wrapper); our trials
are app.train subprocesses, which never reach that code, so KerasTuner's dashboard would be empty
(keras-tuner#418, #427). The search process writes it instead, from each finished trial's result
(after every trial: app/tune/results.py):

  <search_dir>/events.out.tfevents.*          the experiment: each searched key with its domain,
                                              and the metrics val_accuracy, train_seconds and the
                                              objective
  <search_dir>/trials/<id>/events.out.tfevents.*   the trial's session: its values, metrics and
                                              status (a failed trial has no metrics)

Each trial's own app.train logs (trials/<id>/run/tensorboard/train, validation) lie under its
session, so the Scalars tab shows its epochs beside it. Written once per trial and never again
(a resumed search skips the trials it has written).
"""

import os

from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import summary as hparams_summary

from app.core import summaries

HYPERBAND_EPOCHS = "tuner/epochs"  # the leaderboard's column for a Hyperband round's epochs
_FINISHED = {"COMPLETED": api_pb2.STATUS_SUCCESS, "FAILED": api_pb2.STATUS_FAILURE}


def _value(value):
  """A value the HParams summary takes (bool, int, float, str): NumPy scalars as Python's
  (Bayesian optimisation proposes np.float64), anything else as its str()."""
  value = value.item() if hasattr(value, "item") else value
  return value if isinstance(value, (bool, int, float, str)) else str(value)


def _domain(param):
  """The dashboard's domain of an app.tune.space.Param: its interval, or its choices."""
  if param.kind == "int":
    return hp.IntInterval(int(param.values[0]), int(param.values[1]))
  if param.kind in ("float", "log"):
    return hp.RealInterval(float(param.values[0]), float(param.values[1]))
  values = [_value(v) for v in param.values]
  if {type(v) for v in values} == {int, float}:  # choice(0.5, 1): one type for the domain
    values = [float(v) for v in values]
  return hp.Discrete(values)


def metric_names(plan):
  """val_accuracy, train_seconds and the objective (once where it is val_accuracy)."""
  return list(dict.fromkeys(("val_accuracy", "train_seconds", plan.objective.name)))


def _descriptions(plan):
  objective = plan.objective
  return {
      "val_accuracy": "best validation accuracy of the trial's epochs (search.validation_split "
                      "of the training split)",
      "train_seconds": "wall seconds the trial's app.train trained (metrics.json)",
      objective.name: "the search objective ({}){}".format(
          "higher is better" if objective.direction == "max" else "lower is better",
          "; the best validation accuracy" if objective.name == "val_accuracy" else ""),
  }


def _hparams(plan):
  declared = [hp.HParam(p.key, _domain(p)) for p in plan.params]
  if plan.search.tuner == "hyperband":
    declared.append(hp.HParam(HYPERBAND_EPOCHS, hp.IntInterval(1, int(plan.epochs)),
                              description="the Hyperband round's epochs"))
  return declared


def write_experiment(plan):
  """The experiment at the search root, once (its space and objective cannot change: a search
  dir made for another is refused, app/tune/fingerprint.py)."""
  if summaries.event_files(plan.search_dir):
    return
  descriptions = _descriptions(plan)
  metrics = [hp.Metric(name, description=descriptions[name]) for name in metric_names(plan)]
  summaries.write(plan.search_dir, [(0, hp.hparams_config_pb(_hparams(plan), metrics))])


def _session_end(status):
  """The session's end (its status): summary.session_end_pb (summary_v2 has none), a TensorFlow
  proto, as TensorBoard's own Summary proto for the event-file writer."""
  return summary_pb2.Summary.FromString(hparams_summary.session_end_pb(status).SerializeToString())


def write_session(plan, trial, metrics):
  """The trial's session in <search_dir>/trials/<id>: its values, `metrics` ({name: number},
  those of metric_names the trial has) and its status."""
  names = [h.name for h in _hparams(plan)]
  values = {k: _value(v) for k, v in trial.hyperparameters.values.items() if k in names}
  summaries.write(os.path.join(plan.search_dir, "trials", trial.trial_id), [
      (0, hp.hparams_pb(values, trial_id=trial.trial_id)), *summaries.scalars(metrics),
      (0, _session_end(_FINISHED[trial.status]))], replace=False)


def write(plan, trials, metric):
  """The experiment, then a session for each finished trial that has none yet. `metric(trial,
  name)`: the trial's value of a metric, or None."""
  write_experiment(plan)
  for trial in trials:
    if trial.status not in _FINISHED:
      continue
    if summaries.event_files(os.path.join(plan.search_dir, "trials", trial.trial_id)):
      continue
    values = {name: metric(trial, name) for name in metric_names(plan)}
    if trial.status == "COMPLETED":
      values[plan.objective.name] = trial.score
    write_session(plan, trial, {k: v for k, v in values.items() if v is not None})
