"""`python -m app.predict`: runs the predict command, app/cli/predict.py, as the main module (so its
docstring and flags are what --help shows). Commands live in app/cli/; this name is the public one."""

import runpy

if __name__ == "__main__":
  runpy.run_module("app.cli.predict", run_name="__main__", alter_sys=True)
