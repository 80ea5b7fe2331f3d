"""app/core/run_dir.py: a run directory is new, empty or resumable, its config is read back with
keys the schema gained since, and a resumed run must be started with the same settings."""

import os

import pytest
import yaml

from app import config as config_lib
from app.core.errors import UsageError
from app.core.run_dir import RunDir
from configs import default


def test_missing_run_dir(tmp_path):
  with pytest.raises(UsageError, match="is not a run directory"):
    RunDir(str(tmp_path)).load_config()
  assert RunDir(str(tmp_path)).load_metrics() == {}


def test_a_run_config_gains_keys_added_to_the_schema_since(tmp_path):
  saved = default.get_config().to_dict()
  del saved["export"]["formats"]
  saved["name"] = "old"
  (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
  config = RunDir(str(tmp_path)).load_config()
  assert config.name == "old" and config.export.formats == ""


def test_checkpoint_names():
  assert RunDir("r").checkpoint("best") == os.path.join("r", "checkpoints", "best.keras")
  assert RunDir("r").checkpoint("last") == os.path.join("r", "checkpoints", "last.keras")
  assert RunDir("r").checkpoint("/x/model.keras") == "/x/model.keras"


def test_new_or_resumable_resumes_only_an_unfinished_run(tmp_path):
  backup = tmp_path / "backup"
  backup.mkdir()
  (backup / "state.json").write_text('{"epoch": 1, "batches_done": 8, "weights": "w"}')
  RunDir(str(tmp_path), str(backup)).check_new_or_resumable()  # a killed run: resumed
  (tmp_path / "metrics.json").write_text("{}")
  with pytest.raises(UsageError, match="already exists"):  # a finished run: never overwritten
    RunDir(str(tmp_path), str(backup)).check_new_or_resumable()


def test_new_or_resumable_refuses_non_empty_dir(tmp_path):
  (tmp_path / "metrics.json").write_text("{}")
  with pytest.raises(UsageError, match=str(tmp_path)):
    RunDir(str(tmp_path)).check_new_or_resumable()


def test_new_or_resumable_accepts_empty_or_new_dir(tmp_path):
  RunDir(str(tmp_path)).check_new_or_resumable()
  RunDir(str(tmp_path / "new")).check_new_or_resumable()


def _started(tmp_path, config):
  run = RunDir(config.output_dir, config.train.backup_dir)
  run.create()
  run.save_config(config)
  os.makedirs(run.backup_dir)
  with open(os.path.join(run.backup_dir, "state.json"), "w") as f:
    f.write('{"epoch": 1, "batches_done": 0, "weights": "w"}')
  return run


def test_started_config_is_the_saved_one_and_refuses_other_settings(tmp_path):
  config = default.get_config()
  config.output_dir = str(tmp_path / "run")
  resolved = config_lib.resolve(config)
  run = _started(tmp_path, resolved)
  as_saved = yaml.safe_load(yaml.safe_dump(resolved.to_dict()))  # tuples come back as lists
  assert run.started_config(resolved).to_dict() == as_saved
  config.seed = 7
  with pytest.raises(UsageError, match="seed: 0 -> 7"):
    run.started_config(config_lib.resolve(config))


def test_a_key_added_since_the_run_started_counts_as_unchanged(tmp_path):
  config = default.get_config()
  config.output_dir = str(tmp_path / "run")
  resolved = config_lib.resolve(config)
  run = _started(tmp_path, resolved)
  saved = yaml.safe_load(open(run.file("config.yaml")))
  del saved["optim"]["warmup_fraction"], saved["derived"]  # written before those keys existed
  with open(run.file("config.yaml"), "w") as f:
    yaml.safe_dump(saved, f)
  assert run.started_config(resolved) is not None
