"""setup.cfg's console scripts and `convtrain <command>` (app/cli/__init__.py's dispatch): every
command in app/cli/ is installed under its name, and the dispatcher runs each as python -m does."""

import ast
import configparser
import importlib.util
import os
import sys

import pytest

from app import cli
from tests import commands


def console_scripts():
  parser = configparser.ConfigParser()
  parser.read(os.path.join(commands.REPO, "setup.cfg"))
  lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
  return dict(line.replace(" ", "").split("=") for line in lines if not line.startswith("#"))


def parsed(module):
  """A module's syntax tree, read without importing it: two command modules in one process
  would define --config twice (absl's DuplicateFlagError)."""
  with open(importlib.util.find_spec(module).origin) as f:
    return ast.parse(f.read())


def console_script_function(target):
  """The source of the function a console script names, 'module:function' (None if absent)."""
  module, function = target.split(":")
  tree = parsed(module)
  return next((ast.unparse(node) for node in tree.body
               if isinstance(node, ast.FunctionDef) and node.name == function), None)


def test_every_command_has_a_console_script_pointing_at_its_run():
  scripts = console_scripts()
  assert scripts.pop("convtrain") == "app.cli:dispatch"
  expected = {f"convtrain-{name.replace('_', '-')}": f"app.cli.{name}:run"
              for name in cli.commands()}
  assert scripts == expected
  assert {"tune", "lr_find", "models", "step_profile", "augment_preview"} <= set(cli.commands())
  for target in scripts.values():  # each run() makes --help describe its command (below)
    assert "cli.adopt_as_main(__name__)" in (console_script_function(target) or ""), target


def test_each_console_script_s_help_is_its_command_s(tmp_path):
  # What pip writes for `convtrain-<command> = app.cli.<command>:run`: the wrapper is the main
  # module, so absl would describe it (no docstring, no flags) without cli.adopt_as_main.
  for name in ("train", "tune"):  # the others' run() is the same two lines (checked above)
    script = tmp_path / f"convtrain-{name}.py"
    script.write_text(f"import sys\nfrom app.cli.{name} import run\nsys.exit(run())\n")
    usage = commands.run(str(script), "--help", cwd=tmp_path)
    assert usage.returncode == 0, (name, usage.stderr[-2000:])
    docstring = ast.get_docstring(parsed(f"app.cli.{name}"), clean=False)
    assert usage.stdout.startswith(docstring.split("\n")[0]), (name, usage.stdout[:300])
    assert "\nflags:\n" in usage.stdout and "  --" in usage.stdout, (name, usage.stdout[-300:])


@pytest.mark.parametrize("argv, status, stream, text", [
    (["convtrain"], 2, "err", "error: usage: convtrain COMMAND [--flags], COMMAND one of: "
                              "augment_preview, evaluate, export, lr_find"),
    (["convtrain", "--help"], 0, "out", "usage: convtrain COMMAND"),
    (["convtrain", "trian", "--epochs=1"], 2, "err", "error: unknown command 'trian'; usage: "),
])
def test_no_or_an_unknown_command_is_one_line(monkeypatch, capsys, argv, status, stream, text):
  monkeypatch.setattr(sys, "argv", argv)
  with pytest.raises(SystemExit) as exit_info:
    cli.dispatch()
  assert exit_info.value.code == status
  output = getattr(capsys.readouterr(), stream)
  assert output.startswith(text) and output.count("\n") == 1, output


def test_convtrain_runs_the_command_it_names(tmp_path):
  # What pip writes for `convtrain = app.cli:dispatch`, run from another folder.
  script = tmp_path / "convtrain.py"
  script.write_text("import sys\nfrom app.cli import dispatch\nsys.exit(dispatch())\n")
  listing = commands.run(str(script), "models", cwd=tmp_path)
  assert listing.returncode == 0, listing.stderr[-2000:]
  assert listing.stdout == commands.run("app.models").stdout
  usage = commands.run(str(script), "lr-find", "--help", cwd=tmp_path)
  assert usage.returncode == 0, usage.stderr[-2000:]
  assert usage.stdout.startswith("Learning-rate range test")  # the command's own docstring
  assert "--min_lr" in usage.stdout
