"""tools/bench_photos.py: a --variant is the plain command with its flags added, quoted as a shell
would; a setting no --variant names is refused before anything runs."""

import importlib.util
import json
import os
import subprocess

import pytest
from absl import app, flags

from tests import commands


@pytest.fixture
def bench_photos():
  spec = importlib.util.spec_from_file_location(
      "bench_photos", os.path.join(commands.REPO, "tools", "bench_photos.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)  # defines its flags on absl's global FLAGS
  yield module
  for name in ("data_dir", "budgets", "seeds", "settings", "hand_budgets", "variant", "output"):
    delattr(flags.FLAGS, name)


def test_a_variant_runs_the_plain_command_with_its_flags(bench_photos, tmp_path, monkeypatch):
  flags.FLAGS(["bench_photos", f"--output={tmp_path}", "--data_dir=/photos",
               "--variant=ema=--config.optim.ema=True "
               "--config.data.augment='flip|color_jitter(brightness=0.2, contrast=0.2)'"])
  commands_run = []

  def fake_run(command, **kwargs):
    del kwargs
    commands_run.append(command)
    run_dir = next(a.split("=", 1)[1] for a in command if a.startswith("--output_dir="))
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "metrics.json"), "w") as f:
      json.dump({"run_seconds": 10.0, "validation_accuracy": 0.5, "validation_split": "val",
                 "test_accuracy": 0.5, "test_split": "test", "epochs_completed": 3}, f)
    return subprocess.CompletedProcess(command, 0, "", "")

  monkeypatch.setattr(subprocess, "run", fake_run)
  plain = bench_photos._run("plain", "5m", "0")
  variant = bench_photos._run("ema", "5m", "0")
  assert plain["validation_accuracy"] == variant["validation_accuracy"] == 0.5
  plain_command, variant_command = commands_run
  assert variant_command[:len(plain_command)] == [
      a.replace("plain-", "ema-") for a in plain_command]
  assert variant_command[len(plain_command):] == [
      "--config.optim.ema=True",
      "--config.data.augment=flip|color_jitter(brightness=0.2, contrast=0.2)"]


@pytest.mark.parametrize("argv, message", [
    (["--settings=plain,ema"], "ema named by no --variant"),
    (["--variant=plain=--epochs=3"], "NAME not plain or hand"),
    (["--variant=--epochs=3"], "write NAME=FLAGS"),
])
def test_an_unnamed_setting_or_a_bad_variant_is_refused(bench_photos, tmp_path, argv, message):
  flags.FLAGS(["bench_photos", f"--output={tmp_path / 'out'}", *argv])
  with pytest.raises(app.UsageError, match=message):
    bench_photos.main([])
  assert not (tmp_path / "out").exists()  # refused before anything ran
