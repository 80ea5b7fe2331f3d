"""A finished run as export and evaluation read it back: its checkpoints (loaded in Keras's safe
mode only), its data split as in training, and its export (app/serving/saved_model.py)."""

import os
import zipfile

from app.core.errors import UsageError
from app.core.run_dir import RunDir
from app.serving import formats as export_formats
from app.serving import parity
from app.serving import saved_model as serving


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
  from app.data import pipeline, sources  # pylint: disable=g-import-not-at-top
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
  run = RunDir(run_dir)
  config = run.load_config()
  name = config.name if name is None else name
  serving.check_name(name)
  formats = export_formats.parse(config.export.formats if formats is None else formats)
  path = run.checkpoint(checkpoint)
  model = load_checkpoint(path)
  data = load_data(config)
  check_compatible(model.input_shape[1:], model.output_shape[-1], data, f"checkpoint {path}")
  metadata = dict(export_metadata(config, run.load_metrics()), checkpoint=path)
  count = config.export.parity_images if parity_images is None else parity_images
  return serving.export_saved_model(
      model, config.export.dir if export_dir is None else export_dir, name, data.class_names,
      metadata, parity_images=parity.take_images(data.test, count), formats=formats,
      resize=config.data.resize)
