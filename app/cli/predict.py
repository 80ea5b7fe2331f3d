r"""Classify image files with an exported model: top-k classes and probabilities per file.

  python -m app.predict --model=saved_models/fashion_mnist/1 shoe.png shirt.jpg
  python -m app.predict --model=saved_models/cifar_mini/1 --top_k=5 --format=csv photos/ > out.csv
  python -m app.predict --model=saved_models/cifar_mini/1 --format=json photos/

Arguments after the flags are image files (JPEG, PNG, GIF, BMP) or folders (searched
recursively for images). Files go through the export's serve_bytes signature, so the answer is
what TF Serving gives. A file that cannot be read or decoded gets one `error:` line on stderr
(and its own row in the output); the others are still predicted, and the exit status is 2.

Only exports this application wrote are loaded (their files must match the SHA-256 hashes the
export recorded); --trust_model loads another SavedModel, whose graph then runs as a program.
"""

from app import cli  # sets up logging before TensorFlow loads  # pylint: disable=g-bad-import-order

import sys

from absl import app, flags

flags.DEFINE_string("model", None, "Export version folder, e.g. saved_models/<name>/1 (required).")
flags.DEFINE_integer("top_k", 3, "Classes to list per image, best first.")
flags.DEFINE_enum("format", "table", ["table", "csv", "json"], "Output format on stdout.")
flags.DEFINE_integer("batch_size", 64, "Images per call to the model.")
flags.DEFINE_boolean("trust_model", False, "Load an export that this application did not write "
                     "(or that was changed since): a SavedModel is a program that may read and "
                     "write files, so only with this flag is one run that fails its content-hash "
                     "check (docs/SERVING.md).")


def main(argv):
  if not flags.FLAGS.model:
    cli.fail("--model is required: an export version folder such as saved_models/<name>/1")
  if flags.FLAGS.batch_size < 1:
    cli.fail(f"--batch_size must be positive; received {flags.FLAGS.batch_size}")
  from app.serving import predict as prediction  # pylint: disable=g-import-not-at-top
  from app.serving import saved_model as serving  # pylint: disable=g-import-not-at-top
  files = prediction.list_images(argv[1:])
  loaded, metadata = serving.load_export(flags.FLAGS.model, trust=flags.FLAGS.trust_model)
  rows = prediction.predict_files(loaded, metadata, files, flags.FLAGS.top_k,
                                  flags.FLAGS.batch_size)
  sys.stdout.write(prediction.OUTPUT_FORMATS.get(flags.FLAGS.format)(rows))
  failed = [row for row in rows if row["error"]]
  for row in failed:
    print(f"error: {row['file']}: {row['error']}", file=sys.stderr)
  return 2 if failed else 0


def run():
  """Console-script entry point (convtrain-predict)."""
  cli.adopt_as_main(__name__)
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  run()
