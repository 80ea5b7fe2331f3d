r"""The walk of one app.train run through the package: which modules it enters, in order, and
every call that climbs back up a layer (a module calling a function of a layer above its own,
through a closure or an object handed down), by setup.cfg's [importlinter] layers.

  .venv/bin/python tools/call_walk.py -- --epochs=1 --config.data.limit=600 \
      --output_dir=/tmp/walk --export_dir=/tmp/walk-export

Everything after `--` goes to app.train. The figures in docs/ARCHITECTURE.md come from it. The
run is traced with sys.setprofile (main thread only), so it is several times slower than usual.
"""

import configparser
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def layers():
  """[[package, ...] per layer], top first, from setup.cfg's layers contract."""
  parser = configparser.ConfigParser()
  parser.read(os.path.join(REPO, "setup.cfg"))
  if not parser.has_section("importlinter:contract:layers"):  # an older checkout: no layers
    return []
  text = parser["importlinter:contract:layers"]["layers"]
  return [[name.strip() for name in line.split("|")] for line in text.strip().splitlines()]


def layer_of(module, table):
  """Index of `module`'s layer (0 = top), or None for modules outside every layer."""
  for index, packages in enumerate(table):
    if any(module == p or module.startswith(p + ".") for p in packages):
      return index
  return None


def main():
  args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
  table = layers()
  entered, climbs = [], {}

  def profile(frame, event, arg):
    if event != "call":
      return
    callee = frame.f_globals.get("__name__", "")
    if not callee.startswith("app.") or frame.f_code.co_name == "<module>":  # calls, not imports
      return
    if callee not in entered:
      entered.append(callee)
    caller_frame = frame.f_back
    caller = caller_frame.f_globals.get("__name__", "") if caller_frame else ""
    if not caller.startswith("app.") or caller == callee:
      return
    below, above = layer_of(caller, table), layer_of(callee, table)
    if below is not None and above is not None and above < below:
      where = f"{caller} -> {callee}.{frame.f_code.co_name}"
      climbs[where] = climbs.get(where, 0) + 1

  sys.argv = ["app.train"] + args
  import runpy  # pylint: disable=g-import-not-at-top
  command = "app.cli.train" if os.path.isdir(os.path.join(REPO, "app", "cli")) else "app.train"
  sys.setprofile(profile)
  try:
    runpy.run_module(command, run_name="__main__", alter_sys=True)
  except SystemExit as e:
    if e.code not in (0, None):
      raise
  finally:
    sys.setprofile(None)
  print(f"\n{len(entered)} modules whose functions the run calls, in the order first called:")
  for module in entered:
    index = layer_of(module, table)
    print(f"  {module}  (layer {'-' if index is None else ' | '.join(table[index])})")
  print(f"\n{len(climbs)} distinct calls back up a layer" + (":" if climbs else ""))
  for where, count in sorted(climbs.items()):
    print(f"  {where}  ({count}x)")


if __name__ == "__main__":
  main()
