"""app/train/accel_probe.py (--accel=auto) and app/accel.py (what the devices support)."""

import json

import subprocess
import sys

import pytest

from app import accel, distribute
from app.train import accel_probe
from app import config as config_lib
from configs import default

from tests.conftest import REPO_ROOT as REPO


class FakeStrategy:
  num_replicas_in_sync = 1


def probe_with(monkeypatch, measured, reference_batch_size=0, precisions=None):
  """Runs the search with `measured`: {(precision, jit, steps/exec, batch): (img/s, loss) or an
  exception}; returns (chosen, rows)."""
  def fake_measure(config, settings, source, strategy, steps, fold=None):
    if settings["channels_last"]:  # forcing NHWC: slow unless the test says otherwise
      return measured.get("channels_last", (1, 2.0))
    result = measured[(settings["mixed_precision"], settings["jit_compile"],
                       settings["steps_per_execution"], settings["batch_size"])]
    if isinstance(result, Exception):
      raise result
    return result

  monkeypatch.setattr(accel, "supported_precisions", lambda: precisions or {
      "float32": None, "mixed_bfloat16": None, "mixed_float16": "no float16 here"})
  monkeypatch.setattr(distribute, "has_gpu", lambda: False)
  config = default.get_config()
  config.optim.reference_batch_size = reference_batch_size
  return accel_probe.probe(config_lib.resolve(config), None, FakeStrategy(), measure=fake_measure)


def test_picks_the_fastest_setting_whose_loss_stays_with_float32(monkeypatch):
  chosen, rows = probe_with(monkeypatch, {
      ("float32", False, 1, 128): (1000, 2.00),
      ("mixed_bfloat16", False, 1, 128): (1800, 2.02),  # 1% off: accepted, faster
      ("mixed_bfloat16", True, 1, 128): (900, 2.02),  # XLA: slower, not kept
      ("mixed_bfloat16", False, 8, 128): (2500, 2.50),  # 25% off: rejected though fastest
  })
  assert chosen == {"mixed_precision": "mixed_bfloat16", "jit_compile": False,
                    "steps_per_execution": 1, "channels_last": False, "batch_size": 128}
  assert [r["switch"] for r in rows] == ["float32 baseline", "mixed_bfloat16", "mixed_float16",
                                         "XLA", "steps_per_execution=8",
                                         "channels_last (NHWC forced)"]
  skipped, rejected = rows[2], rows[4]
  assert not skipped["accepted"] and "no float16 here" in skipped["note"]
  assert not rejected["accepted"] and "departs 25.0%" in rejected["note"]


def test_a_failing_setting_is_recorded_and_skipped(monkeypatch):
  chosen, rows = probe_with(monkeypatch, {
      ("float32", False, 1, 128): (1000, 2.0),
      ("mixed_bfloat16", False, 1, 128): RuntimeError("no bf16 kernel"),
      ("float32", True, 1, 128): (1500, 2.0),
      ("float32", True, 8, 128): (1600, 2.0),
  })
  assert chosen["jit_compile"] and chosen["steps_per_execution"] == 8
  assert "failed: no bf16 kernel" in rows[1]["note"]


def test_batch_doubles_only_under_the_scaling_rule(monkeypatch):
  measured = {("float32", False, 1, 128): (1000, 2.0), ("mixed_bfloat16", False, 1, 128): (900, 2.0),
              ("float32", True, 1, 128): (900, 2.0), ("float32", False, 8, 128): (900, 2.0),
              ("float32", False, 1, 256): (1300, 1.5)}
  chosen, rows = probe_with(monkeypatch, measured)
  assert chosen["batch_size"] == 128 and len(rows) == 6
  chosen, rows = probe_with(monkeypatch, measured, reference_batch_size=128)
  assert chosen["batch_size"] == 256 and "scaling rule" in rows[-1]["note"]
  config = config_lib.resolve(default.get_config())
  config.optim.reference_batch_size = 128
  assert accel_probe.apply(config, chosen).optim.peak_learning_rate == pytest.approx(
      2 * config.optim.learning_rate)


def test_train_cli_probes_writes_the_table_and_trains_with_the_choice(tmp_path):
  run_dir = tmp_path / "run"
  result = subprocess.run(
      [sys.executable, "-m", "app.train", "--accel=auto", "--epochs=2", "--config.data.limit=2048",
       "--model=simple_cnn", "--config.model.width=8", "--config.optim.warmup_epochs=0",
       f"--output_dir={run_dir}", "--config.export.enabled=False"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  probe = json.loads((run_dir / "accel_probe.json").read_text())
  measured = [r for r in probe["measured"] if r["images_per_second"]]
  assert measured[0]["switch"] == "float32 baseline" and len(measured) >= 3
  fastest = max((r for r in measured if r["accepted"]), key=lambda r: r["images_per_second"])
  assert probe["chosen"] == {k: fastest[k] for k in probe["chosen"]}
  assert json.loads((run_dir / "metrics.json").read_text())["accel"] == probe["chosen"]
  assert f"mixed_precision: {probe['chosen']['mixed_precision']}" in (
      run_dir / "config.yaml").read_text()
  assert "| float32 baseline |" in (run_dir / "accel_probe.md").read_text()


@pytest.mark.skipif(accel.supported_precisions()["mixed_float16"] is None,
                    reason="this machine computes float16 natively")
def test_mixed_float16_without_float16_hardware_is_refused(tmp_path):
  result = subprocess.run([sys.executable, "-m", "app.train", "--mixed_precision=mixed_float16",
                           f"--output_dir={tmp_path / 'run'}"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 2
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: --mixed_precision=mixed_float16 needs float16 hardware"), last
  assert not (tmp_path / "run").exists()


def test_accel_auto_is_refused_across_workers():
  config = default.get_config()
  config.runtime.accel, config.runtime.strategy = "auto", "tpu"
  with pytest.raises(Exception, match="--accel=auto cannot run under --strategy=tpu"):
    config_lib.validate(config)
