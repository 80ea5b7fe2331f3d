"""A finished run as export and evaluation read it back: its checkpoints (loaded in Keras's safe
mode only), its data split as in training, and its export (app/serving/saved_model.py)."""

from app.core.errors import UsageError
from app.core.run_dir import RunDir
from app.serving import formats as export_formats
from app.serving import parity
from app.serving import saved_model as serving


def load_checkpoint(path):
  """A run's `.keras` checkpoint (app.models.load_model: safe mode only, anything else one
  UsageError)."""
  from app.models import load_model  # pylint: disable=g-import-not-at-top
  return load_model(path)


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


def test_figures(model, data):
  """{"test_accuracy", "test_loss", "test_split"} of a loaded checkpoint on the run's test split,
  with the loss the run trained with (its compile state)."""
  if not model.compiled:
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
  figures = model.evaluate(data.test, verbose=0, return_dict=True)
  return {"test_accuracy": float(figures["accuracy"]), "test_loss": float(figures["loss"]),
          "test_split": data.test_split}


def export_metadata(config, metrics):
  """What an export records about the run it came from (serving adds the model's own spec);
  from a run's metrics.json (app.train), its "warnings" too (app/evaluate/verdict.py: a model
  at chance, a late collapse; [] when fine)."""
  metadata = {"run_dir": config.output_dir,
              "metrics": {k: metrics[k] for k in ("test_accuracy", "test_loss", "test_split")
                          if k in metrics},
              "config": config.to_dict()}
  if "warnings" in metrics:
    metadata["warnings"] = metrics["warnings"]
  return metadata


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
  # The figures of the weights exported, not the run's last epoch (metrics.json).
  metadata = dict(export_metadata(config, test_figures(model, data)), checkpoint=path)
  count = config.export.parity_images if parity_images is None else parity_images
  return serving.export_saved_model(
      model, config.export.dir if export_dir is None else export_dir, name, data.class_names,
      metadata, parity_images=parity.take_images(data.test, count), formats=formats,
      resize=data.evaluation_resize)
