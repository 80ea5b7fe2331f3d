"""What every command shares: flag helpers, one-line errors with exit status 2, quiet TF logging.

Each command module (app/cli/<command>.py) imports this package first, so TensorFlow loads with
its start-up notes hidden (app/core/console.py) before anything else imports it.
"""

import os
import sys

from app.core import console

console.quiet_tensorflow()  # before anything imports TensorFlow

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from ml_collections import config_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from app.core.errors import UsageError  # pylint: disable=g-import-not-at-top,wrong-import-position

fail = console.fail  # the commands' `cli.fail(message)`

# Flags defined through the helpers below belong to the entry script that calls them, so its
# --help lists them.
flags.disclaim_key_flags()


def config_keys_help():
  """Every config key with its default and comment, read from the schema (configs/default.py),
  so --help documents the --config.<key> overrides without a second copy to keep in sync."""
  import re  # pylint: disable=g-import-not-at-top
  import configs  # pylint: disable=g-import-not-at-top
  with open(os.path.join(os.path.dirname(configs.__file__), "default.py")) as f:
    lines = re.findall(r"^  config\.([\w.]+) = (.+?)(?:  # (.*))?$", f.read(), re.MULTILINE)
  rows = [f"  --config.{key}={value}  {comment}".rstrip()
          for key, value, comment in lines if not value.startswith("ml_collections.")]
  return "Config keys (recipe defaults may differ; see configs/default.py):\n" + "\n".join(rows)


_HELP_FLAGS = {"--help", "-help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml"}


def _exit_after_help(exit_request, argv):
  """absl exits with status 1 after printing --help; asking for help is no error."""
  if exit_request.code == 1 and _HELP_FLAGS.intersection(argv[1:]):
    sys.exit(0)
  raise exit_request


def _fail_on_config_error(error):
  """ml_collections' errors for a bad --config file or override, as one line."""
  if isinstance(error, (AttributeError, KeyError)):  # an override names a key the recipe lacks
    hint = " ".join(str(error).replace("\\n", " ").replace("\\'", "").strip("'\" ").split())
    fail(f"unknown config key {hint}; --help lists the keys")
  lines = str(error.__cause__ or error).strip().splitlines()
  fail(f"cannot load the --config recipe: {lines[-1].strip()}; pass a recipe file such as "
       "configs/fashion_mnist.py")


class _RecipeParser(flags.ArgumentParser):
  """--config's parser, in place of ml_collections' ConfigFileFlagParser: app.config.load_recipe,
  so a recipe that cannot load (a syntax error, a bad import, an exception or sys.exit while
  loading, no get_config(), not a ConfigDict) is one UsageError line instead of a traceback or
  ml_collections' misleading one."""

  def parse(self, argument):
    from app import config as config_lib  # pylint: disable=g-import-not-at-top
    return config_lib.load_recipe(argument, lock=True)

  def flag_type(self):
    return "config object"


def define_config_flag(default_recipe):
  """`--config` (a recipe file, locked: a mistyped key is refused) with --config.<key> overrides.

  ml_collections reads sys.argv while defining the flag, so errors can surface here. The flag's
  parser is then ours (_RecipeParser): the --config value on the command line is parsed later,
  by parse_flags; the default recipe, parsed here when --config is not given, is ours too."""
  try:
    config_flags.DEFINE_config_file(
        "config", default_recipe,
        "Recipe file (configs/*.py); override keys as --config.<section>.<key>=VALUE.",
        lock_config=True)
  except (AttributeError, KeyError, OSError) as e:
    _fail_on_config_error(e)
  except SystemExit as e:
    _exit_after_help(e, sys.argv)
  flags.FLAGS["config"].parser = _RecipeParser()


def recipe_as_written():
  """The --config recipe as its file writes it, loaded again without the command line's overrides
  (and shortcuts): app.config.resolve(recipe=...) scales the recipe's lengths in epochs when a
  run's train.epochs differs from it."""
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.load_recipe(config_flags.get_config_filename(flags.FLAGS["config"]))


def define_shortcuts(shortcuts):
  """{flag name: (config key, flags.DEFINE_*, help)} -> flags that override those keys."""
  for flag_name, (key, define, help_text) in shortcuts.items():
    define(flag_name, None, f"{help_text} Overrides config.{key}.")


def apply_shortcuts(config, shortcuts):
  """Sets the keys of the shortcut flags given (None = unset); returns {key: value} set."""
  applied = {}
  for flag_name, (key, _, _) in shortcuts.items():
    value = flags.FLAGS[flag_name].value
    if value is not None:
      from app import config as config_lib  # pylint: disable=g-import-not-at-top
      config_lib.set_key(config, key, value)
      applied[key] = value
  return applied


def parse_flags(argv):
  """absl's parser, but a bad flag is one line and exit status 2 instead of absl's usage dump."""
  try:
    remaining = flags.FLAGS(argv)
    if "config" in flags.FLAGS:
      flags.FLAGS.config.keys()  # ml_collections loads lazily: surface its errors now
    return remaining
  except flags.Error as e:
    fail(str(e).strip().splitlines()[0])
  except UsageError as e:
    fail(e)
  except (AttributeError, KeyError, OSError) as e:
    _fail_on_config_error(e)
  except SystemExit as e:
    _exit_after_help(e, argv)


def run_main(main):
  """Wraps an absl main: UsageError -> one line on stderr, exit status 2; bugs keep tracebacks."""

  def wrapped(argv):
    try:
      return main(argv)
    except UsageError as e:
      fail(e)

  return wrapped


def adopt_as_main(module_name):
  """What --help describes, from a console script (convtrain-<command>: pip's wrapper is the main
  module, with no docstring and no flag of its own): command module `module_name`'s docstring
  and flags, as under python -m app.<command>. Nothing to do when that module is __main__."""
  if module_name == "__main__":
    return
  sys.modules["__main__"].__doc__ = sys.modules[module_name].__doc__
  for flag in flags.FLAGS.get_key_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)  # absl's name for __main__


def commands():
  """Every command's name: one module per command in this package, app/cli/<command>.py."""
  import pkgutil  # pylint: disable=g-import-not-at-top
  return sorted(module.name for module in pkgutil.iter_modules(__path__))


def dispatch():
  """`convtrain <command> [flags]` (a console script): runs app/cli/<command>.py as the main
  module, as `python -m app.<command>` does, so --help shows that command's docstring and flags.
  `lr-find` names `lr_find` too, as in convtrain-lr-find."""
  import runpy  # pylint: disable=g-import-not-at-top
  names = commands()
  usage = (f"convtrain COMMAND [--flags], COMMAND one of: {', '.join(names)}; "
           "convtrain COMMAND --help lists its flags")
  if len(sys.argv) > 1 and sys.argv[1] in _HELP_FLAGS:
    print(f"usage: {usage}")
    sys.exit(0)
  command = sys.argv[1].replace("-", "_") if len(sys.argv) > 1 else ""
  if command not in names:
    fail(f"unknown command {sys.argv[1]!r}; usage: {usage}" if command else f"usage: {usage}")
  sys.argv = [f"convtrain {command}"] + sys.argv[2:]
  runpy.run_module(f"app.cli.{command}", run_name="__main__", alter_sys=True)
