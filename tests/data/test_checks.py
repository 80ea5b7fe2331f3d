"""app/data/checks.py on a folder with every kind of bad and unusual file."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from app.data import checks, pipeline
from app.data.sources import DATASETS
from app.core.errors import UsageError


@pytest.fixture
def messy_folder(tmp_path, cifar_mini_dir):
  """Two classes of real JPEGs plus: a truncated JPEG, a PNG with alpha, a grayscale PNG, a
  GIF, a BMP, a text file with an image name, a text file, and a test image copied from train."""
  root = tmp_path / "messy"
  for split, count in (("train", 12), ("test", 4)):
    for name in ("cat", "dog"):
      folder = root / split / name
      folder.mkdir(parents=True)
      source = os.path.join(cifar_mini_dir, split, name)
      for filename in sorted(os.listdir(source))[:count]:
        shutil.copy(os.path.join(source, filename), folder / filename)
  cat = root / "train" / "cat"
  good = (cat / "0000.jpg").read_bytes()
  (cat / "truncated.jpg").write_bytes(good[: len(good) // 3])
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (40, 30, 4), dtype=np.uint8), "RGBA").save(cat / "alpha.png")
  Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), "L").save(cat / "gray.png")
  Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(cat / "anim.gif")
  Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(cat / "bitmap.bmp")
  (cat / "notes.jpg").write_text("not an image")
  (cat / "readme.txt").write_text("hello")
  shutil.copy(root / "train" / "dog" / "0001.jpg", root / "test" / "dog" / "leak.jpg")
  return root


@pytest.fixture(scope="module")
def every_format_folder(tmp_path_factory):
  """train/ and test/ of two classes, each holding a PNG, a JPEG, a BMP and a GIF (Pillow's)."""
  root, rng = tmp_path_factory.mktemp("formats"), np.random.default_rng(1)
  for split in ("train", "test"):
    for name in ("cat", "dog"):
      folder = root / split / name
      folder.mkdir(parents=True)
      for image_format, extension in (("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp"), ("GIF", "gif")):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            folder / f"image.{extension}", format=image_format)
  return root


def data_config(root, **changes):
  from configs import default
  data = default.get_config().data
  data.name, data.data_dir, data.image_size = "folder", str(root), 32
  for key, value in changes.items():
    data[key] = value
  return data


def test_fail_names_the_bad_files(messy_folder):
  data = data_config(messy_folder)
  with pytest.raises(UsageError, match=r"2 file\(s\) cannot be decoded.*(truncated|notes).jpg"):
    checks.check_source(DATASETS.get("folder")(data), data, seed=0)


def test_skip_drops_bad_files_and_reports_everything(messy_folder):
  data = data_config(messy_folder, on_bad_file="skip")
  source = DATASETS.get("folder")(data)
  source, report = checks.check_source(source, data, seed=0)
  skipped = sorted(os.path.basename(p) for p in report["skipped_undecodable_files"])
  assert skipped == ["notes.jpg", "truncated.jpg"]
  assert [os.path.basename(p) for p in report["ignored_non_image_files"]] == ["readme.txt"]
  assert report["images"] == {"train": 12 + 4 + 12, "test": 9}  # cat: 12 + 4 decodable extras
  assert report["train_images_per_class"] == {"cat": 16, "dog": 12}
  assert [(os.path.basename(a), os.path.basename(b)) for a, b in report["train_test_duplicates"]] == [
      ("0001.jpg", "leak.jpg")]
  assert len(source.train) == 28
  json.dumps(report)  # it goes to the run directory as JSON


@pytest.mark.parametrize("channels", [1, 3])
def test_every_format_passes_the_check_and_reaches_the_batches(every_format_folder, channels):
  """channels=1 refused valid BMPs and GIFs as undecodable (and on_bad_file=skip dropped them)."""
  # on_bad_file="fail"; all 8 training images train (none held out for validation)
  data = data_config(every_format_folder, channels=channels, validation_split=0.0)
  source, report = checks.check_source(DATASETS.get("folder")(data), data, seed=0)
  assert report["images"] == {"train": 8, "test": 8} and not report["skipped_undecodable_files"]
  built = pipeline.build(source, data, 8, seed=0)
  images, labels = next(iter(built.test))  # every test image, in order
  assert images.shape == (8, 32, 32, channels) and built.num_train == 8
  np.testing.assert_array_equal(labels.numpy().argmax(axis=1), [0, 0, 0, 0, 1, 1, 1, 1])


def test_the_report_counts_the_images_a_limit_keeps(cifar_mini_dir):
  """The report counted every image of every class whatever data.limit kept."""
  data = data_config(cifar_mini_dir, limit=50, validation_split=0.0)  # all 50 kept train
  source, report = checks.check_source(DATASETS.get("folder")(data), data, seed=3)
  assert report["images"] == {"train": 50, "test": 50}
  assert report["train_images_per_class"] == {name: 5 for name in source.class_names}
  built = pipeline.build(source, data, 10, seed=3)
  assert built.num_train == 50 and built.class_counts.tolist() == [5] * 10
  # What an evaluation keeps of the unchecked source, as pipeline.build limits it: the same files.
  unchecked = DATASETS.get("folder")(data)
  assert source.train.paths.tolist() == unchecked.train.limited(50, 3).paths.tolist()


def test_empty_class_folder_is_refused(messy_folder):
  (messy_folder / "train" / "bird").mkdir()
  (messy_folder / "test" / "bird").mkdir()
  data = data_config(messy_folder, on_bad_file="skip")
  with pytest.raises(UsageError, match="class folder.*bird.*no decodable training images"):
    checks.check_source(DATASETS.get("folder")(data), data, seed=0)


def test_in_memory_sources_are_not_checked(fashion_mnist_dir):
  from configs import default
  data = default.get_config().data
  source = DATASETS.get("fashion_mnist")(data)
  assert checks.check_source(source, data, seed=0)[1] == {"checked": False}


def _train(*args):
  from tests import commands  # pylint: disable=g-import-not-at-top
  return commands.run("app.train", *args, timeout=600)


def test_cli_trains_with_skip_and_fails_with_one_line_otherwise(messy_folder, tmp_path):
  common = ["--dataset=folder", f"--data_dir={messy_folder}", "--config.data.image_size=32",
            "--epochs=1", "--model=simple_cnn", "--config.model.width=8",
            "--config.optim.warmup_epochs=0", "--batch_size=8", f"--export_dir={tmp_path / 'x'}"]
  failed = _train(*common, f"--output_dir={tmp_path / 'fail'}")
  assert failed.returncode == 2
  last = failed.stderr.strip().splitlines()[-1]
  assert last.startswith("error: 2 file(s) cannot be decoded") and "truncated.jpg" in last
  assert not (tmp_path / "fail").exists()

  run = _train(*common, "--on_bad_file=skip", f"--output_dir={tmp_path / 'skip'}")
  assert run.returncode == 0, run.stderr[-3000:]
  report = json.load(open(tmp_path / "skip" / "data_report.json"))
  assert sorted(map(os.path.basename, report["skipped_undecodable_files"])) == [
      "notes.jpg", "truncated.jpg"]
  assert "2 undecodable file(s) skipped" in run.stderr


def test_a_grayscale_folder_run_trains_every_format_and_prints_no_deprecation(every_format_folder,
                                                                              tmp_path):
  """tf.data.experimental.ignore_errors (the check's) printed a deprecation warning, twice."""
  run = _train("--dataset=folder", f"--data_dir={every_format_folder}", "--config.data.channels=1",
               "--epochs=1", "--model=simple_cnn", "--config.model.width=4", "--batch_size=4",
               "--mixed_precision=float32", "--config.optim.warmup_epochs=0",
               "--config.data.validation_split=0",  # all 8 images (every format) train
               f"--output_dir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'export'}")
  assert run.returncode == 0, run.stderr[-3000:]
  assert "deprecated" not in run.stdout + run.stderr, run.stderr[-3000:]
  assert json.load(open(tmp_path / "run" / "metrics.json"))["num_train"] == 8


# === Issue 19 (14): a test split with nothing to evaluate is refused before training ===


@pytest.mark.parametrize("test_files", ["undecodable", "none"])
def test_a_test_split_without_decodable_images_is_refused(tmp_path, test_files):
  """It trained, then evaluation crashed: skipping every test file left an empty split, and
  empty test class folders gave a float64 path array (a ReadFile TypeError)."""
  rng = np.random.default_rng(0)
  for split in ("train", "test"):
    for name in ("a", "b"):
      folder = tmp_path / split / name
      folder.mkdir(parents=True)
      for i in range(2 if split == "test" and test_files == "undecodable" else
                     0 if split == "test" else 3):
        if split == "test":
          (folder / f"{i}.png").write_bytes(b"junk")
        else:
          Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
  data = data_config(tmp_path, on_bad_file="skip", image_size=8)
  count = 4 if test_files == "undecodable" else 0
  with pytest.raises(UsageError, match=rf"the test split holds no decodable images \({count} image "
                     r"file\(s\) in .*test\); add images .*--config.data.validation_split=0.1"):
    checks.check_source(DATASETS.get("folder")(data), data, seed=0)
