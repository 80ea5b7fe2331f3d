r"""The model registry: every name, and for a model and an input size its parameters and FLOPs.

  python -m app.models                                     # names and one-line descriptions
  python -m app.models --model=resnet20 --input_size=32x32x3
  python -m app.models --model=all --input_size=28x28x1    # every model at Fashion-MNIST's size
  python -m app.models --model=wide_resnet --depth=28 --width=160   # WRN-28-10

FLOPs are per image, 2 x multiply-adds of the convolutions and dense layers (app/models/stats.py).
Run as `python -m app.models`: nothing imports this module (it defines flags).
"""

import functools

from app import cli  # pylint: disable=g-bad-import-order

from absl import app, flags

flags.DEFINE_string("model", None, "A registered model, or 'all'; without it, list the names.")
flags.DEFINE_string("input_size", "32x32x3", "Image size HEIGHTxWIDTHxCHANNELS (channels 1 or 3).")
flags.DEFINE_integer("num_classes", 10, "Classes of the classifier head.")
flags.DEFINE_integer("width", 0, "config.model.width; 0 = the family's default.")
flags.DEFINE_integer("depth", 0, "config.model.depth; 0 = the family's default.")


def _input_shape(text):
  from app.core.errors import UsageError  # pylint: disable=g-import-not-at-top
  try:
    shape = tuple(int(side) for side in text.lower().split("x"))
  except ValueError:
    shape = ()
  if len(shape) != 3 or min(shape) < 1 or shape[2] not in (1, 3):
    raise UsageError(f"--input_size={text} is not HEIGHTxWIDTHxCHANNELS with 1 or 3 channels; "
                     "pass e.g. --input_size=32x32x3")
  return shape


def describe(build):
  """First line of the builder's docstring, with a named variant's fixed arguments."""
  func = getattr(build, "func", build)
  line = (func.__doc__ or "").strip().splitlines()[0].rstrip(".")
  if isinstance(build, functools.partial):
    line += " [" + ", ".join(f"{k}={v}" for k, v in build.keywords.items()) + "]"
  return line


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {' '.join(argv[1:])}; every setting is a --flag")
  from app.models import MODELS  # pylint: disable=g-import-not-at-top
  from app.models.stats import flops_per_image  # pylint: disable=g-import-not-at-top
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  if FLAGS.model is None:
    for name in MODELS.names():
      print(f"{name:20s} {describe(MODELS.get(name))}")
    return
  shape = _input_shape(FLAGS.input_size)
  names = MODELS.names() if FLAGS.model == "all" else [FLAGS.model]
  builders = [MODELS.get(name) for name in names]  # an unknown name fails before any building
  sizes = {key: getattr(FLAGS, key) for key in ("width", "depth") if getattr(FLAGS, key)}
  print(f"{'model':20s} {'built as':20s} {'parameters':>12s} {'MFLOPs/image':>13s}  "
        f"(input {'x'.join(map(str, shape))}, {FLAGS.num_classes} classes)")
  for name, build in zip(names, builders):
    model = build(shape, FLAGS.num_classes, **sizes)
    print(f"{name:20s} {model.name:20s} {model.count_params():12,d} "
          f"{flops_per_image(model) / 1e6:13.2f}")


def run():
  """Console-script entry point (convtrain-models)."""
  cli.adopt_as_main(__name__)
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  run()
