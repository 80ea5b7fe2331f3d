r"""Replays the adversarial list of docs/RELIABILITY.md against the command line.

  .venv/bin/python tools/replay_adversarial.py              # every case, ~15 min on 2 cores
  .venv/bin/python tools/replay_adversarial.py --only=ownership,resume
  .venv/bin/python tools/replay_adversarial.py --cases=two_runs_one_dir

Each case (tools/adversarial/<class>.py) does what a careless or hostile user would, through real
`python -m app.<command>` processes in a fresh temporary folder, and is judged held (the
application did the right thing) or broken. Prints one line per case and the totals; exits 1 when
any case is broken, so the figure in docs/RELIABILITY.md can be rerun.
"""

import importlib
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from tools import adversarial  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_list("only", [], f"Classes of cases to run (default all): {adversarial.MODULES}.")
flags.DEFINE_list("cases", [], "Names of single cases to run (default all).")
flags.DEFINE_string("keep", "", "Keep each case's folder under this directory (default: removed).")


def all_cases(only=()):
  for module_name in only or adversarial.MODULES:
    if module_name not in adversarial.MODULES:
      raise app.UsageError(f"--only: no class {module_name!r}; the classes are "
                           f"{', '.join(adversarial.MODULES)}")
    module = importlib.import_module(f"tools.adversarial.{module_name}")
    for case in module.CASES:
      yield module_name, case


def replay(cases, keep=""):
  """Runs the (class, Case) pairs; returns [(class, case, held, detail, seconds)]."""
  results = []
  for module_name, case in cases:
    work = tempfile.mkdtemp(prefix=f"adversarial-{case.name}-", dir=keep or None)
    start = time.monotonic()
    try:
      held, detail = case.run(work)
    except Exception as e:  # pylint: disable=broad-except
      held, detail = False, f"the case itself failed: {type(e).__name__}: {e}"[:200]
    seconds = time.monotonic() - start
    if not keep:
      shutil.rmtree(work, ignore_errors=True)
    print(f"{'held  ' if held else 'BROKEN'}  {case.item:>2}  {module_name}/{case.name}  "
          f"({seconds:.0f} s)  {detail}", flush=True)
    results.append((module_name, case, held, detail, seconds))
  return results


def main(argv):
  del argv
  cases = [c for c in all_cases(flags.FLAGS.only)
           if not flags.FLAGS.cases or c[1].name in flags.FLAGS.cases]
  if not cases:
    raise app.UsageError("no case matches --only/--cases")
  results = replay(cases, flags.FLAGS.keep)
  held = sum(r[2] for r in results)
  print(f"\n{held} held, {len(results) - held} broken, of {len(results)} cases "
        f"({sum(r[4] for r in results):.0f} s)")
  return 0 if held == len(results) else 1


if __name__ == "__main__":
  app.run(main)
