r"""Evaluate a model in depth and write a report (Markdown with pictures) into its run directory.

  python -m app.evaluate --run_dir=runs/fashion_mnist-20261128-110000        # its best.keras
  python -m app.evaluate --run_dir=runs/x --model=runs/x/checkpoints/last.keras --tta_flip
  python -m app.evaluate --model=saved_models/fashion_mnist/1 --report_dir=/tmp/report
  python -m app.evaluate --run_dir=runs/x --dataset=folder --data_dir=~/photos --split=test

Reports accuracy, top-5 accuracy, cross-entropy, per-class precision/recall/F1, a confusion
matrix, the worst mistakes and calibration (ECE, reliability diagram): report.md, report.json and
three PNGs in <run_dir>/evaluation/ (evaluation-2/, ... if taken; nothing is overwritten); an
export given without --run_dir needs --report_dir (the report never goes where a model's metadata
points). The same numbers, pictures and per-class table go to TensorBoard, in the run's
tensorboard/evaluation/ (evaluation-2/, ...; a report outside the run: <report_dir>/tensorboard/):
tensorboard --logdir <run_dir>. Only exports this application wrote are loaded, unless
--trust_model.
"""

from app import cli  # sets up logging before TensorFlow loads  # pylint: disable=g-bad-import-order

from absl import app, flags

flags.DEFINE_string("run_dir", None, "Run directory of python -m app.train: its data set, its "
                    "checkpoints/best.keras (unless --model) and where the report goes.")
flags.DEFINE_string("model", None, "A .keras checkpoint or an export version folder "
                    "(saved_models/<name>/<version>); default: the run's best checkpoint.")
flags.DEFINE_enum("split", "test", ["test", "validation"], "The split to evaluate on.")
flags.DEFINE_boolean("tta_flip", False, "Test-time augmentation: average each image's "
                     "probabilities with its left-right mirror image's.")
flags.DEFINE_string("report_dir", None, "Where the report goes (new or empty); default: "
                    "<run_dir>/evaluation, or evaluation-N when taken.")
flags.DEFINE_string("dataset", None, "Evaluate on this data source instead of the run's "
                    "(fashion_mnist, folder, idx).")
flags.DEFINE_string("data_dir", None, "Where --dataset (or the run's source) reads.")
flags.DEFINE_integer("limit", None, "Evaluate on a seeded subset of N images of the split, every "
                     "class keeping its share (0 = all); default: the run's config.data.limit.")
flags.DEFINE_integer("batch_size", 256, "Images per prediction batch.")
flags.DEFINE_integer("worst", 25, "Worst mistakes to show in worst_mistakes.png.")
flags.DEFINE_boolean("trust_model", False, "Load an export (--model=DIR) that this application "
                     "did not write (or that was changed since): a SavedModel is a program that "
                     "may read and write files, so only with this flag is one run that fails its "
                     "content-hash check (docs/SERVING.md). .keras files always load in safe "
                     "mode.")


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {' '.join(argv[1:])}; every setting is a --flag")
  f = flags.FLAGS
  for name in ("batch_size", "worst"):
    if f[name].value < 1:
      cli.fail(f"--{name} must be positive; received {f[name].value}")
  if f.limit is not None and f.limit < 0:
    cli.fail(f"--limit must be >= 0 (0 = all images); received {f.limit}")
  from app.evaluate import evaluate as evaluation  # pylint: disable=g-import-not-at-top
  report_dir, results = evaluation.evaluate(
      run_dir=f.run_dir, model_path=f.model, split=f.split, tta_flip=f.tta_flip,
      report_dir=f.report_dir, dataset=f.dataset, data_dir=f.data_dir, limit=f.limit,
      batch_size=f.batch_size, worst=f.worst, trust_model=f.trust_model)
  top_key = next(k for k in results if k.startswith("top") and k.endswith("_accuracy"))
  print(f"accuracy {results['accuracy']:.4f}, {top_key.replace('_', ' ')} {results[top_key]:.4f}, "
        f"macro F1 {results['macro_f1']:.4f}, ECE {results['expected_calibration_error']:.4f} "
        f"on {results['images']} images ({results['split']} split); report "
        f"{report_dir}/report.md")


def run():
  """Console-script entry point (convtrain-evaluate)."""
  cli.adopt_as_main(__name__)
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  run()
