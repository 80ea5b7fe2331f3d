"""app/train/output_paths.py: every folder a run writes is checked before any work (issue 19, 15:
an --export_dir that was a file trained to the end, then failed with a traceback)."""

import pathlib

import pytest

from app.core.errors import UsageError
from app.train import output_paths
from configs import default


def run_config(tmp_path, **paths):
  config = default.get_config()
  config.output_dir, config.train.backup_dir = str(tmp_path / "run"), str(tmp_path / "run/backup")
  config.export.dir, config.data.cache_dir = str(tmp_path / "exports"), ""
  for key, value in paths.items():
    section, _, leaf = key.rpartition(".")
    (config[section] if section else config)[leaf] = value
  return config


def test_every_written_folder_is_listed():
  config = run_config(pathlib.Path("/x"), **{"data.cache_dir": "/x/cache"})
  assert [(what, path) for what, path, _ in output_paths.written_paths(config)] == [
      ("output dir", "/x/run"), ("backup dir", "/x/run/backup"), ("export dir", "/x/exports"),
      ("export dir", "/x/exports/model"), ("cache dir", "/x/cache")]
  config.export.enabled = config.data.cache = False
  assert len(output_paths.written_paths(config)) == 2


@pytest.mark.parametrize("key, flag", [
    ("output_dir", "--output_dir"), ("train.backup_dir", "--config.train.backup_dir"),
    ("export.dir", "--export_dir"), ("data.cache_dir", "--config.data.cache_dir")])
def test_a_path_that_is_a_file_or_under_one_is_refused(tmp_path, key, flag):
  (tmp_path / "a_file").write_text("not a folder")
  config = run_config(tmp_path, **{key: str(tmp_path / "a_file")})
  with pytest.raises(UsageError, match=rf"a_file is a file, not a folder; pass a folder to "
                     rf"{flag}$"):
    output_paths.require_writable(config)
  config = run_config(tmp_path, **{key: str(tmp_path / "a_file" / "deeper")})
  with pytest.raises(UsageError, match=r"deeper lies under .*a_file, a file, not a folder"):
    output_paths.require_writable(config)


def test_folders_still_to_be_made_and_the_export_name_are_checked(tmp_path):
  output_paths.require_writable(run_config(tmp_path, output_dir=str(tmp_path / "new" / "deep")))
  (tmp_path / "exports").mkdir()
  (tmp_path / "exports" / "model").write_text("")  # where <export.dir>/<name>/<version> goes
  with pytest.raises(UsageError, match=r"export dir .*exports/model is a file"):
    output_paths.require_writable(run_config(tmp_path))
