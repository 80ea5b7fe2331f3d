"""Adversarial cases: bad_input (see tools/adversarial/__init__.py). Issue 19's items 14 (bad
image folders: an undecodable or huge first file, a non-UTF-8 name, a test split with nothing to
evaluate), 15 (output paths that are files), 16 (bad seeds, sizes and recipes) and 17 (a loss
exploding in the first epoch; the "last good" checkpoint), through real `python -m app.train`
processes. A refusal must come before training: one line, exit status 2, no run directory."""

import csv
import math
import os

from tools.adversarial.common import Case, command, refused_in_one_line, TINY

FOLDER = ("--dataset=folder", "--model=simple_cnn", "--mixed_precision=float32", "--epochs=1",
          "--batch_size=4", "--config.export.enabled=false")


def _folder(work, train=6, test=3, side=16):
  """work/photos/{train,test}/{a,b}/NNN.png: small random PNGs (Pillow); returns the root."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng, root = np.random.default_rng(0), os.path.join(work, "photos")
  for split, count in (("train", train), ("test", test)):
    for name in ("a", "b"):
      os.makedirs(os.path.join(root, split, name), exist_ok=True)
      for i in range(count):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
            os.path.join(root, split, name, f"{i:03d}.png"))
  return root


def _train(work, *args):
  return command("app.train", *args, f"--output_dir={os.path.join(work, 'run')}")


def _refused_before_training(work, result, *words):
  held, detail = refused_in_one_line(result, *words)
  if held and os.path.exists(os.path.join(work, "run", "history.csv")):
    return False, "refused, but only after training: " + detail
  return held, detail


def _refused(*args, words=(), folder=None):
  """A case: app.train with `args` ({folder}, {work} filled in) is refused before training."""

  def run(work):
    root = folder(work) if folder else ""
    filled = [a.format(folder=root, work=work) for a in args]
    return _refused_before_training(work, _train(work, *filled), *words)

  return run


# --- 14: image folders -------------------------------------------------------------------------


def _undecodable_first(work):
  root = _folder(work)
  with open(os.path.join(root, "train", "a", "000.png"), "wb") as f:  # first in sort order
    f.write(b"not an image")
  return root


def _skip_undecodable_first(work):
  result = _train(work, *FOLDER, f"--data_dir={_undecodable_first(work)}", "--on_bad_file=skip")
  if result.returncode:
    return False, f"exit status {result.returncode}: {result.stderr.strip()[-160:]}"
  with open(os.path.join(work, "run", "data_report.json")) as f:
    skipped = "000.png" in f.read()
  return skipped, ("trained without it; data_report.json lists it as skipped" if skipped else
                   "trained, but data_report.json does not list it")


def _huge_first_image(work):
  """A 16000 x 16000 photo first among 16 x 16 ones: the run trains at the usual size."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  root = _folder(work)
  Image.new("L", (16000, 16000)).save(os.path.join(root, "train", "a", "000.png"))
  result = _train(work, *FOLDER, f"--data_dir={root}")
  if result.returncode:
    return False, f"exit status {result.returncode}: {result.stderr.strip()[-160:]}"
  if "of shape (16, 16, 3)" not in result.stderr:
    return False, "trained, but not at the 16 x 16 of the other images"
  return True, "trained at 16 x 16, the median image's size, not the first's 16000 x 16000"


def _non_utf8_name(work):
  root = _folder(work)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.new("RGB", (16, 16)).save(os.path.join(os.fsencode(root), b"train", b"a", b"\xff\xfe.png"))
  return root


def _test_split_all_bad(work):
  root = _folder(work)
  for name in ("a", "b"):
    for i in range(3):
      with open(os.path.join(root, "test", name, f"{i:03d}.png"), "wb") as f:
        f.write(b"junk")
  return root


def _test_split_empty(work):
  return _folder(work, test=0)


# --- 15: output paths that are files ------------------------------------------------------------


def _a_file(work):
  with open(os.path.join(work, "a_file"), "w") as f:
    f.write("not a folder\n")
  return ""


def _other_command_output_a_file(module, flag, what):
  """A case: `python -m module` with its output folder `flag` a file: refused before any work."""

  def run(work):
    _a_file(work)
    result = command(module, f"{flag}={work}/a_file", "--config.model.name=simple_cnn",
                     "--config.data.limit=256", cwd=work)
    return refused_in_one_line(result, what, flag)

  return run


def _export_dir_a_file(work):
  _a_file(work)
  return _refused_before_training(
      work, _train(work, *TINY[:-1], f"--export_dir={os.path.join(work, 'a_file')}"),
      "export dir", "--export_dir")


# --- 16: seeds, sizes, recipes -------------------------------------------------------------------


def _recipe(text, name="recipe.py"):
  def run(work):
    path = os.path.join(work, name)
    with open(path, "w") as f:
      f.write(text)
    return _refused_before_training(work, _train(work, f"--config={path}", *TINY),
                                    "--config recipe", name)

  return run


# --- 17: divergence -------------------------------------------------------------------------------

EXPLODING = ("--optimizer=sgd", "--learning_rate=1", "--config.data.limit=512")  # 3.3e16 in epoch 1


def _last_good_is_finite(work):
  """on_divergence=retry after an explosion: whatever the run ends with, checkpoints/last.keras
  (the retry's "last good") is an epoch whose validation loss was finite."""
  result = _train(work, *TINY, *EXPLODING, "--epochs=3", "--config.train.on_divergence=retry",
                  "--config.data.validation_split=0.1")
  run_dir = os.path.join(work, "run")
  if "Traceback" in result.stderr:
    return False, "traceback: " + result.stderr.strip().splitlines()[-1][:160]
  if not os.path.exists(os.path.join(run_dir, "checkpoints", "last.keras")):
    return result.returncode == 2, f"exit status {result.returncode}, no last.keras written"
  with open(os.path.join(run_dir, "history.csv")) as f:
    rows = list(csv.DictReader(f))
  bad = [row["epoch"] for row in rows if not math.isfinite(float(row.get("val_loss") or "nan"))]
  if bad:
    return False, f"history.csv keeps epochs with a non-finite val_loss: {bad}"
  return True, f"exit status {result.returncode}; every kept epoch's val_loss is finite"


CASES = [
    Case(14, "first_file_undecodable_fail", _refused(
        *FOLDER, "--data_dir={folder}", words=("cannot be decoded", "000.png"),
        folder=_undecodable_first)),
    Case(14, "first_file_undecodable_skip", _skip_undecodable_first),
    Case(14, "huge_first_image", _huge_first_image),
    Case(14, "non_utf8_file_name", _refused(*FOLDER, "--data_dir={folder}",
                                            words=("not valid UTF-8", "rename"),
                                            folder=_non_utf8_name)),
    Case(14, "test_split_only_bad_files", _refused(
        *FOLDER, "--data_dir={folder}", "--on_bad_file=skip", words=("test split",),
        folder=_test_split_all_bad)),
    Case(14, "test_class_folders_empty", _refused(*FOLDER, "--data_dir={folder}",
                                                  words=("test split",), folder=_test_split_empty)),
    Case(15, "export_dir_is_a_file", _export_dir_a_file),
    Case(15, "cache_dir_is_a_file", _refused(*TINY, "--config.data.cache_dir={work}/a_file",
                                             words=("cache dir", "--config.data.cache_dir"),
                                             folder=_a_file)),
    Case(15, "backup_dir_is_a_file", _refused(*TINY, "--config.train.backup_dir={work}/a_file",
                                              words=("backup dir",), folder=_a_file)),
    Case(15, "export_dir_under_a_file", _refused(
        *TINY[:-1], "--export_dir={work}/a_file/exports", words=("export dir", "a file"),
        folder=_a_file)),
    Case(15, "search_dir_is_a_file", _other_command_output_a_file("app.tune", "--search_dir",
                                                                  "search dir")),
    Case(15, "lr_find_output_dir_is_a_file", _other_command_output_a_file(
        "app.lr_find", "--output_dir", "output dir")),
    Case(16, "seed_negative", _refused(*TINY, "--seed=-1", words=("seed", "--seed="))),
    Case(16, "seed_2_to_the_32", _refused(*TINY, "--seed=4294967296", words=("seed",))),
    Case(16, "crop_pad_negative", _refused(*TINY, "--config.data.augment=crop(pad=-4)",
                                           words=("crop(pad=-4)", "pad"))),
    Case(16, "mixup_alpha_negative", _refused(*TINY, "--config.data.augment=mixup(alpha=-1)",
                                              words=("mixup", "alpha"))),
    Case(16, "image_size_100000", _refused(*TINY, "--config.data.image_size=100000",
                                           words=("memory", "--config.data.image_size"))),
    Case(16, "width_100000", _refused(*TINY, "--config.model.width=100000",
                                      words=("memory", "--config.model.width"))),
    Case(16, "recipe_syntax_error", _recipe("def get_config(:\n")),
    Case(16, "recipe_raises", _recipe("raise RuntimeError('boom')\n")),
    Case(16, "recipe_bad_import", _recipe("import no_such_module\n")),
    Case(16, "recipe_not_python", _recipe("data:\n  name: folder\n", name="recipe.yaml")),
    Case(16, "recipe_without_get_config", _recipe("from configs import default\n")),
    Case(16, "recipe_returns_a_dict", _recipe("def get_config():\n  return {'seed': 1}\n")),
    Case(16, "recipe_calls_sys_exit", _recipe("import sys\nsys.exit(0)\n")),
    Case(17, "loss_explodes_in_epoch_1", lambda work: refused_in_one_line(
        _train(work, *TINY, *EXPLODING), "diverged at epoch 1")),
    Case(17, "last_good_checkpoint_is_finite", _last_good_is_finite),
]
