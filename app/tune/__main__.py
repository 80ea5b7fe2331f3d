"""`python -m app.tune`: runs the tune command, app/cli/tune.py, as the main module (so its
docstring and flags are what --help shows). Commands live in app/cli/; this name is the public one."""

import runpy

if __name__ == "__main__":
  runpy.run_module("app.cli.tune", run_name="__main__", alter_sys=True)
