"""`python -m app.export`: runs the export command, app/cli/export.py, as the main module (so its
docstring and flags are what --help shows). Commands live in app/cli/; this name is the public one."""

import runpy

if __name__ == "__main__":
  runpy.run_module("app.cli.export", run_name="__main__", alter_sys=True)
