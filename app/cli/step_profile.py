r"""Where a training step's time goes (app/train/step_profile.py): the trace that
--config.train.profile_steps records, read through the profiler plugin's analyses (xprof, the
`[profile]` extra), split into input, compute by kind and framework overhead.

  pip install -e '.[profile]'
  python -m app.train --config=configs/cifar10_93.py --config.train.profile_steps=10,19 ...
  python -m app.step_profile --run_dir=runs/cifar10_93-20261129-100000

Prints Markdown and writes <run_dir>/step_profile.json. Keep the traced steps inside one epoch,
so that no evaluation falls between them.
"""

import os

from app import cli  # sets up logging before TensorFlow loads  # pylint: disable=g-bad-import-order

from absl import app, flags

from app.core import files
from app.core.run_dir import RunDir
from app.train.step_profile import analyses, markdown, profiled_steps, summarize, trace_files

flags.DEFINE_string("run_dir", None, "Run directory of a python -m app.train run made with "
                    "--config.train.profile_steps=START,STOP.")
flags.DEFINE_integer("top", 12, "Op types to list by self time.")


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {' '.join(argv[1:])}; every setting is a --flag")
  f = flags.FLAGS
  if not f.run_dir or not os.path.isdir(f.run_dir):
    cli.fail(f"--run_dir must be a run directory of python -m app.train; received {f.run_dir!r}")
  if f.top < 0:
    cli.fail(f"--top must be >= 0; received {f.top}")
  paths = trace_files(f.run_dir)
  if not paths:
    cli.fail(f"{f.run_dir} holds no profiler trace; train with "
             "--config.train.profile_steps=START,STOP (e.g. 10,19) first")
  config = (RunDir(f.run_dir).load_config()
            if os.path.isfile(os.path.join(f.run_dir, "config.yaml")) else None)
  summary = summarize(analyses(paths[-1]), f.top,
                      len(profiled_steps(config.train.profile_steps)) if config else None)
  summary["trace"] = paths[-1]
  batch_size = config.train.batch_size if config else None
  files.write_json(os.path.join(f.run_dir, "step_profile.json"), summary)
  print(markdown(summary, batch_size))



def run():
  """Console-script entry point (convtrain-step-profile)."""
  cli.adopt_as_main(__name__)
  app.run(cli.run_main(main), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  run()
