r"""Export a finished run's checkpoint for TF Serving: <export_dir>/<name>/<next version>/.

  python -m app.export --run_dir=runs/fashion_mnist-20261128-110000
  python -m app.export --run_dir=runs/x --checkpoint=last --formats=onnx,litert
  python -m app.export --run_dir=runs/x --export_dir=/srv/models --name=fashion

The SavedModel is float32 (also after mixed-precision training) with the signatures
serving_default (float32 images of any size), serve_uint8, serve_bytes (encoded JPEG/PNG) and
serve; it is checked against the Keras model on the run's held-out images before it is renamed
into place, and an existing version is never touched. Metadata (class names, input spec,
preprocessing, metrics, recipe, parity results) goes to assets.extra/metadata.json.
"""

from app import cli  # sets up logging before TensorFlow loads  # pylint: disable=g-bad-import-order

from absl import app, flags

flags.DEFINE_string("run_dir", None, "Run directory written by python -m app.train (required).")
flags.DEFINE_string("checkpoint", "best",
                    "best | last (checkpoints/<name>.keras of the run) or a path to a .keras file.")
flags.DEFINE_string("export_dir", None, "Export root; default: the run's config.export.dir.")
flags.DEFINE_string("name", None, "Export name (one folder name); default: the run's config.name.")
flags.DEFINE_string("formats", None, "Also write these formats beside the SavedModel, each "
                    "parity-checked in its own runtime: onnx, litert, or onnx,litert; '' for "
                    "none. Default: the run's config.export.formats.")
flags.DEFINE_integer("parity_images", None, "Held-out test images the export is checked on; "
                     "default: the run's config.export.parity_images.")


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {' '.join(argv[1:])}; every setting is a --flag")
  if not flags.FLAGS.run_dir:
    cli.fail("--run_dir is required: the directory of a finished python -m app.train run")
  from app.serving import runs  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  if f.parity_images is not None and f.parity_images < 1:
    cli.fail(f"--parity_images must be positive; received {f.parity_images}")
  path = runs.export_run(f.run_dir, checkpoint=f.checkpoint, export_dir=f.export_dir,
                         name=f.name, formats=f.formats, parity_images=f.parity_images)
  print(f"exported {path}")


def run():
  """Console-script entry point (convtrain-export)."""
  cli.adopt_as_main(__name__)
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  run()
