"""app/keras_compat.py: every private Keras / KerasTuner / TF symbol we use exists in the installed
versions, a missing one is named with its issue, and nothing outside the module uses one."""

import os
import re

from app import keras_compat
from tests.conftest import REPO_ROOT


def test_every_private_symbol_exists_in_the_installed_versions():
  missing = keras_compat.missing()
  assert not missing, "\n".join(missing)


def test_a_missing_symbol_is_named_with_its_issue(monkeypatch):
  monkeypatch.setattr(keras_compat, "SYMBOLS", (
      keras_compat.Symbol("keras", "Model._gone_in_a_later_release", "keras-team/keras#1"),
      keras_compat.Symbol("no_such_module_here", "", "upstream#2"),
      keras_compat.Symbol("keras", "Model", "upstream#3", source_mentions="never written"),
  ))
  first, second, third = keras_compat.missing()
  assert "keras:Model._gone_in_a_later_release is missing" in first
  assert "keras-team/keras#1" in first and "update app/keras_compat.py" in first
  assert "no_such_module_here" in second and "upstream#2" in second
  assert "never written" in third


# A private symbol of another package: its private modules, or a protected member that pylint
# would flag (`_name` on anything but self/cls and our own objects).
_PRIVATE_USE = re.compile(r"(keras|keras_tuner)\.src\b|tensorflow\.tsl\b|protected-access")


def test_no_private_symbol_is_used_outside_keras_compat():
  offenders = []
  for folder, _, names in os.walk(os.path.join(REPO_ROOT, "app")):
    for name in names:
      path = os.path.join(folder, name)
      if not name.endswith(".py") or path.endswith(os.path.join("app", "keras_compat.py")):
        continue
      with open(path) as f:
        for number, line in enumerate(f, 1):
          if _PRIVATE_USE.search(line):
            offenders.append(f"{os.path.relpath(path, REPO_ROOT)}:{number}: {line.strip()}")
  assert not offenders, "move these into app/keras_compat.py:\n" + "\n".join(offenders)
