"""Evaluation in depth: load a .keras checkpoint or an export, predict a split (optionally with
flip test-time augmentation), and write the report of app/evaluate/metrics.py's numbers
(app/evaluate/report.py) into the run directory."""

import os

import numpy as np

from app.core import summaries
from app.core.run_dir import RunDir, config_from_dict
from app.core.errors import UsageError
from app.evaluate import metrics
from app.evaluate import report
from app.evaluate import verdict
from app.models import TTA
from app.serving import runs
from app.serving import saved_model as serving


def with_flip_tta(predict_fn):
  """`predict_fn` averaging each image's probabilities with its left-right mirror image's, by the
  layers of model.tta="flip" (app/models): one batch of [images; mirrors], then the mean of its
  two halves (in float64, as the rest of the evaluation's numbers)."""
  make_views, mean = TTA["flip"]
  views, average = make_views(dtype="float32"), mean(dtype="float64")
  return lambda images: average(predict_fn(views(images)))


def predict(predict_fn, dataset, tta_flip=False):
  """Runs `predict_fn` (float32 images -> probabilities) over a batched (images, one-hot labels)
  dataset; returns (probabilities float64 [N, K], labels int [N], images uint8 [N, H, W, C]).
  With `tta_flip` each image's probabilities are averaged with its mirror image's."""
  if tta_flip:
    predict_fn = with_flip_tta(predict_fn)
  probabilities, labels, images = [], [], []
  for batch, onehot in dataset:
    probabilities.append(np.asarray(predict_fn(batch), np.float64))
    labels.append(np.argmax(onehot, axis=-1))
    images.append(np.clip(np.round(np.asarray(batch)), 0, 255).astype(np.uint8))
  return np.concatenate(probabilities), np.concatenate(labels), np.concatenate(images)


def _load(run_dir, model_path, trust_model=False):
  """(predict_fn, input_shape, num_classes, config, run_dir, model_path) for a .keras checkpoint
  or an export; the data config comes from the run (or the export's recorded recipe). The run
  directory (where the report goes by default) is the one given, or the one holding the
  checkpoint: never a path an export's metadata names."""
  if model_path is None:
    if run_dir is None:
      raise UsageError("nothing to evaluate; pass --run_dir=RUN (its best checkpoint) or "
                       "--model=PATH (a .keras checkpoint or an export version folder)")
    model_path = RunDir(run_dir).checkpoint("best")
  if os.path.isdir(model_path):
    loaded, metadata = serving.load_export(model_path, trust=trust_model)
    if run_dir:
      config = RunDir(run_dir).load_config()
    elif isinstance(metadata.get("config"), dict):
      config = config_from_dict(metadata["config"], f"the recipe in "
                                f"{os.path.join(model_path, serving.METADATA_FILE)}")
    else:
      raise UsageError(f"export {model_path} records no recipe to read its data set from; pass "
                       "--run_dir=RUN, the run it was exported from")
    return (lambda images: loaded.serve(images).numpy(), metadata["input_shape"],
            len(metadata["class_names"]), config, run_dir, model_path)
  model = runs.load_checkpoint(model_path)
  if run_dir is None:
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(model_path)))
    if not os.path.isfile(os.path.join(run_dir, "config.yaml")):
      raise UsageError(f"{model_path} is not in a run directory; pass --run_dir=RUN, the run "
                       "whose data set to evaluate on")
  return (model.predict_on_batch, model.input_shape[1:], model.output_shape[-1],
          RunDir(run_dir).load_config(), run_dir, model_path)


def _report_dir(report_dir, run_dir):
  """--report_dir if new or empty, else the first free <run_dir>/evaluation[-N]/."""
  if report_dir:
    if os.path.exists(report_dir) and (not os.path.isdir(report_dir) or os.listdir(report_dir)):
      raise UsageError(f"report dir {report_dir} already exists and is not empty; pass a new "
                       "--report_dir")
    return report_dir
  if not run_dir:
    raise UsageError("no place for the report: an export is evaluated into --report_dir=DIR, or "
                     "into --run_dir=RUN's evaluation/ folder; pass one of them")
  if not os.path.isdir(run_dir):
    raise UsageError(f"the model's run directory {run_dir} is not here to hold the report; pass "
                     "--report_dir=DIR")
  base, number = os.path.join(run_dir, "evaluation"), 1
  while os.path.exists(base if number == 1 else f"{base}-{number}"):
    number += 1
  return base if number == 1 else f"{base}-{number}"


def tensorboard_dir(report_dir, run_dir):
  """Where the report's TensorBoard run goes: for a report in a run directory, the run's own
  log dir (<run dir>/tensorboard/evaluation, beside Keras's train and validation), so
  `tensorboard --logdir RUN_DIR` shows it with the training curves; else
  <report dir>/tensorboard."""
  if run_dir:
    relative = os.path.relpath(os.path.abspath(report_dir), os.path.abspath(run_dir))
    if relative.split(os.sep)[0] != os.pardir:  # evaluation/, evaluation-2/, or deeper
      return os.path.join(run_dir, summaries.LOG_DIR, relative.replace(os.sep, "_"))
  return os.path.join(report_dir, summaries.LOG_DIR)


def evaluate(run_dir=None, model_path=None, split="test", tta_flip=False, report_dir=None,
             dataset=None, data_dir=None, limit=None, batch_size=256, worst=25,
             trust_model=False):
  """Evaluates a run's best checkpoint, or `model_path` (a .keras checkpoint or an export), on
  the run's data (or `dataset`/`data_dir`) and writes the report; returns (report dir, results).
  An export is loaded only if this application wrote it, unless `trust_model`."""
  if split not in ("test", "validation"):
    raise UsageError(f"split {split!r} must be 'test' or 'validation'")
  predict_fn, input_shape, num_classes, config, run_dir, model_path = _load(
      run_dir, model_path, trust_model)
  if dataset is not None:
    config.data.name, config.data.data_dir = dataset, ""
  if data_dir is not None:
    config.data.data_dir = os.path.expanduser(data_dir)
  if limit is not None:
    config.data.limit = limit
  report_dir = _report_dir(report_dir, run_dir)
  data = runs.load_data(config, batch_size)
  runs.check_compatible(input_shape, num_classes, data, model_path)
  probabilities, labels, images = predict(
      predict_fn, data.test if split == "test" else data.validation, tta_flip)
  results = dict(metrics.compute(probabilities, labels, data.class_names), model=model_path,
                 data=config.data.to_dict(), split=data.test_split if split == "test" else split,
                 tta="flip" if tta_flip else "none")
  # A model no better than always answering the split's most common class (as app.train warns).
  results["warnings"] = verdict.chance_level(
      results["accuracy"], np.bincount(labels, minlength=num_classes), results["split"])
  results = report.write(report_dir, results, probabilities, labels, images, data.class_names,
                         metrics.worst_mistakes(probabilities, labels, worst),
                         tensorboard_dir(report_dir, run_dir))
  verdict.report(results["warnings"])
  return report_dir, results
