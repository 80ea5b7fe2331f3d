"""Reading a finished run back: its resolved config, metrics, checkpoints and held-out data.

A run directory (app.training) holds config.yaml, metrics.json and checkpoints/{best,last}.keras.
Export and evaluation start from one; this module turns a missing or foreign file into a
UsageError that says what to pass instead, and loads checkpoints in Keras's safe mode only.
"""

import json
import os
import zipfile

import ml_collections
import yaml

from app.serving import formats as export_formats
from app.serving import parity
from app.serving import saved_model as serving
from app.core.errors import UsageError

CHECKPOINTS = ("best", "last")  # checkpoints/<name>.keras, written by app.callbacks


def _with_schema_defaults(loaded, schema):
  """A run's config with keys added to the schema since the run filled from the schema."""
  merged = dict(loaded)
  for key, value in schema.items():
    if key not in merged:
      merged[key] = value
    elif isinstance(value, dict) and isinstance(merged[key], dict):
      merged[key] = _with_schema_defaults(merged[key], value)
  return merged


def load_config(run_dir):
  """The resolved config a run saved in <run_dir>/config.yaml."""
  path = os.path.join(run_dir, "config.yaml")
  if not os.path.isfile(path):
    raise UsageError(f"{run_dir} is not a run directory (no config.yaml); pass the --output_dir "
                     "of a finished python -m app.train run")
  with open(path) as f:
    loaded = yaml.safe_load(f)
  if not isinstance(loaded, dict):
    raise UsageError(f"{path} does not hold a config; pass the run directory app.train wrote")
  return config_from_dict(loaded)


def config_from_dict(loaded):
  """A saved resolved config (config.yaml, or an export's metadata) as a ConfigDict."""
  from configs import default  # pylint: disable=g-import-not-at-top
  return ml_collections.ConfigDict(_with_schema_defaults(loaded, default.get_config().to_dict()))


def load_metrics(run_dir):
  """metrics.json of a run ({} if the run did not get that far)."""
  path = os.path.join(run_dir, "metrics.json")
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    return json.load(f)


def checkpoint_path(run_dir, checkpoint):
  """'best' / 'last' -> <run_dir>/checkpoints/<name>.keras; anything else is a path as given."""
  if checkpoint in CHECKPOINTS:
    return os.path.join(run_dir, "checkpoints", f"{checkpoint}.keras")
  return checkpoint


def load_checkpoint(path):
  """A `.keras` model, loaded in safe mode: a file holding Python code (a Lambda layer, a pickled
  function) is refused rather than run."""
  from app.models import load_model  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise UsageError(f"checkpoint {path} does not exist; pass a .keras file or --checkpoint=best")
  if not path.endswith(".keras") or not zipfile.is_zipfile(path):
    raise UsageError(f"{path} is not a .keras model file; pass a checkpoint written by app.train "
                     "(checkpoints/best.keras)")
  try:
    return load_model(path)
  except ValueError as e:
    if "safe_mode" in str(e):
      raise UsageError(
          f"refusing to load {path}: it holds Python code (e.g. a Lambda layer) that safe mode "
          "will not deserialize; rebuild the model without Lambda layers") from None
    raise UsageError(f"cannot load {path} as a Keras model ({str(e).splitlines()[0]}); pass a "
                     "checkpoint written by app.train") from None
  except (OSError, KeyError, zipfile.BadZipFile) as e:
    raise UsageError(f"cannot load {path} as a Keras model ({e}); pass an intact .keras "
                     "checkpoint") from None


def load_data(config, batch_size=None):
  """The run's data (app.data.pipeline.Datasets), split as it was in training."""
  from app.data import pipeline  # pylint: disable=g-import-not-at-top
  from app.data import sources  # pylint: disable=g-import-not-at-top
  source = sources.load(config.data)
  return pipeline.build(source, config.data, batch_size or config.train.batch_size, config.seed)


def check_compatible(input_shape, num_classes, data, what):
  """A model taking `input_shape` images with `num_classes` outputs fits the data."""
  if tuple(input_shape) != tuple(data.image_shape):
    raise UsageError(f"{what} takes images of shape {tuple(input_shape)}, but the data has "
                     f"{tuple(data.image_shape)}; pass the data set it was trained on")
  if num_classes != len(data.class_names):
    raise UsageError(f"{what} has {num_classes} classes, but the data has "
                     f"{len(data.class_names)}; pass the data set it was trained on")


def export_metadata(config, metrics):
  """What an export records about the run it came from (serving adds the model's own spec)."""
  return {"run_dir": config.output_dir,
          "metrics": {k: metrics[k] for k in ("test_accuracy", "test_loss", "test_split")
                      if k in metrics},
          "config": config.to_dict()}


def export_run(run_dir, checkpoint="best", export_dir=None, name=None, formats=None,
               parity_images=None):
  """Exports a run's checkpoint (app.serving), checked on its held-out images; returns the
  version folder. Unset arguments take the run's config (export.dir, name, export.*)."""
  config = load_config(run_dir)
  name = config.name if name is None else name
  serving.check_name(name)
  formats = export_formats.parse(config.export.formats if formats is None else formats)
  path = checkpoint_path(run_dir, checkpoint)
  model = load_checkpoint(path)
  data = load_data(config)
  check_compatible(model.input_shape[1:], model.output_shape[-1], data, f"checkpoint {path}")
  metadata = dict(export_metadata(config, load_metrics(run_dir)), checkpoint=path)
  count = config.export.parity_images if parity_images is None else parity_images
  return serving.export_saved_model(
      model, config.export.dir if export_dir is None else export_dir, name, data.class_names,
      metadata, parity_images=parity.take_images(data.test, count), formats=formats)
