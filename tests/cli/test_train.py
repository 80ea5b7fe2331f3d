"""End to end: python -m app.train as a user runs it (a subprocess), happy path and bad input."""

import csv
import json
import os
import re
import subprocess
import sys

import ml_collections
import pytest
import yaml

from configs import default
from tests import commands

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--epochs=1", "--mixed_precision=float32", "--config.data.limit=1000", "--model=simple_cnn", "--config.model.width=8",
        "--config.optim.warmup_epochs=0", "--config.name=tiny"]


def run_train(*args):
  return commands.run("app.train", *args, timeout=600)


def test_tiny_run_writes_the_run_dir_and_a_reloadable_export(tmp_path):
  run_dir, exports = tmp_path / "run", tmp_path / "exports"
  result = run_train(*TINY, f"--output_dir={run_dir}", f"--export_dir={exports}")
  assert result.returncode == 0, result.stderr[-3000:]

  metrics = json.loads((run_dir / "metrics.json").read_text())
  for key in ("test_accuracy", "test_loss", "epochs_completed", "train_seconds",
              "train_images_per_second", "export_path"):
    assert key in metrics, key
  assert metrics["epochs_completed"] == 1
  assert 0.1 < metrics["test_accuracy"] <= 1.0  # above chance after one epoch of 1,000 images
  # Issue 18 (4): a model at chance is warned of (tests/train/test_train_and_evaluate.py); not
  # this one (0.26 on 10 classes).
  assert metrics["warnings"] == [] and not re.search("^warning: ", result.stderr, re.M)
  assert metrics["train_images_per_second"] > 0
  assert metrics["export_path"] == str(exports / "tiny" / "1")
  assert "model:" in (run_dir / "config.yaml").read_text()
  assert len(list(csv.DictReader((run_dir / "history.csv").open()))) == 1
  assert (run_dir / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
  assert (run_dir / "checkpoints" / "best.keras").is_file()
  assert os.listdir(run_dir / "tensorboard")

  # A second run, in mixed_bfloat16, exports version 2 and leaves version 1 as it was.
  version_1 = exports / "tiny" / "1" / "saved_model.pb"
  before = version_1.read_bytes()
  again = run_train(*TINY, "--mixed_precision=mixed_bfloat16", f"--output_dir={tmp_path / 'run2'}",
                    f"--export_dir={exports}")
  assert again.returncode == 0, again.stderr[-3000:]
  assert json.loads((tmp_path / "run2" / "metrics.json").read_text())["export_path"].endswith("/2")
  assert version_1.read_bytes() == before
  assert sorted(os.listdir(exports / "tiny")) == ["1", "2"]

  # In a fresh process: version 1 predicts what the trained Keras model predicts, and version 2
  # (trained in bfloat16) is a float32 graph.
  check = f"""
import numpy as np, tensorflow as tf
from app.data.sources.idx import read_idx
from app.models import load_model
images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")[:32, ..., None]
images = images.astype("float32")
loaded = tf.saved_model.load({str(exports / "tiny" / "1")!r})  # keep it: it owns the variables
served = loaded.serve(images).numpy()
trained = load_model({str(run_dir / "checkpoints" / "last.keras")!r}).predict(images, verbose=0)
assert served.shape == (32, 10), served.shape
np.testing.assert_allclose(served, trained, atol=1e-5)
bf16_run = tf.saved_model.load({str(exports / "tiny" / "2")!r})
assert {{v.dtype for v in bf16_run.variables}} == {{tf.float32}}, {{v.dtype for v in bf16_run.variables}}
assert bf16_run.serve(images).dtype == tf.float32
print("parity ok")
"""
  reload = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
  assert reload.returncode == 0 and "parity ok" in reload.stdout, reload.stderr[-3000:]


SCALED_WARMUP = ("train.epochs=1 is 1/12 of the recipe's 12 epochs; its lengths scale alike: "
                 "optim.warmup_epochs 1 -> 0.08333")


def test_the_default_recipe_trains_one_epoch_with_its_lengths_scaled(tmp_path):
  """Its stdout is a pipe (a fresh interpreter's, subprocess.run's): one line for the epoch, no
  progress bar (issue 21; test_a_terminal_gets_the_progress_bar is the terminal's side)."""
  run_dir = tmp_path / "run"
  result = commands.run("app.train", "--epochs=1", "--config.data.limit=256",
                        f"--output_dir={run_dir}", f"--export_dir={tmp_path / 'exports'}",
                        timeout=600, fresh_interpreter=True)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stderr.count(SCALED_WARMUP) == 1, result.stderr[-3000:]
  assert len(re.findall(r"^\d+/\d+ - \d+s - .*val_accuracy: ", result.stdout, re.M)) == 1, \
      result.stdout
  assert not set(BAR_MARKS) & set(result.stdout), result.stdout
  saved = yaml.safe_load((run_dir / "config.yaml").read_text())
  assert saved["optim"]["warmup_epochs"] == pytest.approx(1 / 12)
  assert saved["derived"]["recipe_epochs"] == 12
  assert json.loads((run_dir / "metrics.json").read_text())["epochs_completed"] == 1


# Keras's progress bar: its glyphs, and the backspaces and carriage return that redraw it.
BAR_MARKS = ("\u2501", "\b", "\r")


def test_a_terminal_gets_the_progress_bar(tmp_path):
  """train.progress=auto (the default) on a pseudo-terminal: Keras's bar, redrawn in place."""
  import pty  # pylint: disable=g-import-not-at-top
  import select  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  reader, terminal = pty.openpty()
  with open(tmp_path / "stderr", "w") as stderr:
    process = subprocess.Popen(
        [sys.executable, "-m", "app.train", "--epochs=1", "--mixed_precision=float32",
         "--config.data.limit=600", "--model=simple_cnn", "--config.model.width=8",
         "--config.optim.warmup_epochs=0", "--config.export.enabled=false",
         f"--output_dir={tmp_path / 'run'}"],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=terminal, stderr=stderr)
  os.close(terminal)  # the child holds it: reading ends (EIO) when the child exits
  output, deadline = b"", time.time() + 300
  try:
    while time.time() < deadline:
      if select.select([reader], [], [], 1)[0]:
        try:
          chunk = os.read(reader, 65536)
        except OSError:  # Linux: EIO once no process holds the terminal
          break
        if not chunk:
          break
        output += chunk
  finally:
    if process.poll() is None:
      process.kill()
    os.close(reader)
  assert process.wait() == 0, (tmp_path / "stderr").read_text()[-3000:]
  text = output.decode(errors="replace")
  assert BAR_MARKS[0] in text and BAR_MARKS[1] in text, repr(text[-2000:])
  assert re.search(r"\r\S*?(\d+)/\1\b", text), repr(text[-2000:])  # redrawn at the last step
  assert "test accuracy" in text


def test_a_config_override_of_the_epochs_scales_alike(tmp_path):
  """The form app.tune's trials pass (--config.train.epochs=N); stops at the missing data."""
  result = run_train(f"--config={REPO}/configs/fashion_mnist.py", "--config.train.epochs=1",
                     "--dataset=folder", "--data_dir=/no/such/dir",
                     f"--output_dir={tmp_path / 'run'}")
  assert result.returncode == 2 and "does not exist" in result.stderr, result.stderr[-3000:]
  assert SCALED_WARMUP in result.stderr


def test_folder_dataset_with_train_and_test_subfolders(tmp_path, cifar_mini_dir):
  result = run_train(
      "--dataset=folder", f"--data_dir={cifar_mini_dir}", "--epochs=1", "--model=simple_cnn",
      "--config.model.width=8", "--config.optim.warmup_epochs=0", "--config.data.augment=flip",
      f"--output_dir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'exports'}")
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
  # The default holds 10% of train/ out for validation; test/ is the test split.
  assert (metrics["num_train"], metrics["num_validation"], metrics["num_test"],
          metrics["test_split"]) == (900, 100, 200, "test")
  assert len(metrics["class_names"]) == 10


def test_folder_dataset_with_train_and_val_subfolders(tmp_path):
  """The PyTorch tutorial's layout: val/ validates (selection and val_accuracy), and with no
  test/ the test split is held out of train; metrics.json names both."""
  from tests.data.sources.test_folder import TWO, layout  # pylint: disable=g-import-not-at-top
  data_dir = layout(tmp_path / "data", {"train": TWO, "val": TWO}, per_class=10, side=12)
  result = run_train(
      "--config=configs/default.py", "--dataset=folder", f"--data_dir={data_dir}", "--epochs=1",
      "--model=simple_cnn", "--config.model.width=4", "--batch_size=8",
      "--config.optim.warmup_epochs=0", "--config.export.enabled=false",
      f"--output_dir={tmp_path / 'run'}")
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
  val = f"val folder {data_dir}/val"
  assert (metrics["num_train"], metrics["num_validation"], metrics["num_test"]) == (18, 20, 2)
  assert (metrics["validation_split"], metrics["test_split"], metrics["selected_on"]) == (
      val, "held_out_test", "validation")
  assert metrics["splits"] == {"test_accuracy": "held_out_test", "test_loss": "held_out_test",
                               "validation_accuracy": val, "validation_loss": val}
  assert "validation: val folder" in result.stderr and "test: held out of train" in result.stderr


def test_cross_validation_run(tmp_path):
  result = run_train(*TINY, "--cv_folds=2", f"--output_dir={tmp_path / 'cv'}",
                     f"--export_dir={tmp_path / 'exports'}")
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((tmp_path / "cv" / "cv_metrics.json").read_text())
  assert len(summary["validation_accuracy_per_fold"]) == 2
  assert "2-fold cross-validation: validation accuracy" in result.stdout
  assert not (tmp_path / "exports").exists()  # folds are not exported


def test_help_documents_the_shortcuts_and_every_config_key():
  result = run_train("--help")
  assert result.returncode == 0
  for flag in ("--dataset", "--data_dir", "--model", "--epochs", "--batch_size", "--learning_rate",
               "--optimizer", "--seed", "--output_dir", "--export_dir", "--strategy",
               "--mixed_precision", "--jit_compile", "--cv_folds", "--progress",
               "--config.train.label_smoothing",
               "--config.optim.schedule", "--config.data.augment"):
    assert flag in result.stdout or f"--[no]{flag[2:]}" in result.stdout, flag
  from app.optim.optimizers import OPTIMIZERS
  optimizer_help = result.stdout.split("--optimizer:")[1].split("Overrides")[0]
  assert all(name in optimizer_help for name in OPTIMIZERS.names()), optimizer_help
  rows = [line for line in result.stdout.splitlines() if line.startswith("  --config.")]
  for key in schema_keys(default.get_config()):  # each with its comment from configs/default.py
    assert any(re.match(rf"  --config\.{re.escape(key)}=.*?  \S", row) for row in rows), key


def schema_keys(section, prefix=""):
  for name, value in section.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from schema_keys(value, f"{prefix}{name}.")
    else:
      yield prefix + name


BAD_INPUTS = {
    "unknown dataset": (["--dataset=nope"], "unknown dataset 'nope'; choose one of: "),
    "unknown model": (["--model=nope"], "unknown model 'nope'; choose one of: "),
    "unknown tta": (["--config.model.tta=rotate"], "model.tta must be '' (none), 'flip' or 'flip_translate'"),
    "unknown optimizer": (["--optimizer=nope"], "unknown optimizer 'nope'; choose one of: "),
    "missing data dir": (["--dataset=folder", "--data_dir=/no/such/dir"], "does not exist"),
    "empty data dir": (["--dataset=folder", "--data_dir={empty}"], "no images"),
    "malformed override": (["--config.train.epochs=abc"], "--config.train.epochs=abc"),
    "unknown config key": (["--config.train.epochz=3"], "unknown config key epochz"),
    "negative learning rate": (["--learning_rate=-0.1"], "learning_rate"),
    "negative batch size": (["--batch_size=-8"], "batch_size must be positive"),
    "missing recipe": (["--config=configs/nope.py"], "cannot load the --config recipe"),
    "unknown strategy": (["--strategy=hyperdrive"], "unknown strategy 'hyperdrive'"),
    "unknown schedule": (["--config.optim.schedule=nope"], "unknown schedule 'nope'; choose one of"),
    "warmup longer than training": (["--epochs=2", "--config.optim.warmup_epochs=3"],
                                    "warmup_epochs=3.0 must be >= 0 and shorter than"),
    "zero learning rate": (["--learning_rate=0"], "learning_rate"),
    "one fold": (["--cv_folds=1"], "cv_folds=1: cross-validation needs at least 2 folds"),
    # Issue 19 (4): validating on the test split (the speedrun convention), nothing may select.
    "early stopping on the test split": (
        ["--config.data.validation_split=0", "--config.train.early_stopping_patience=2"],
        "train.early_stopping_patience=2 would select on the test split (data.validation_split=0 "
        "validates on it); pass --config.data.validation_split=0.1"),
    "plateau on the test split": (
        ["--config.data.validation_split=0", "--config.optim.schedule=plateau"],
        "optim.schedule='plateau' would select on the test split"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path):
  args, expected = BAD_INPUTS[case]
  empty = tmp_path / "empty"
  empty.mkdir()
  run_dir, exports = tmp_path / "run", tmp_path / "exports"
  args = [a.format(empty=empty) for a in args]
  result = run_train(*args, f"--output_dir={run_dir}", f"--export_dir={exports}")
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and expected in last, last
  assert not run_dir.exists() and not exports.exists()


# === Issue 19 (14-17): bad input refused before training, in one line ===

QUICK = ["--model=simple_cnn", "--mixed_precision=float32", "--epochs=1", "--batch_size=64",
         "--config.data.limit=256"]
BAD_RECIPE_FILES = {
    "syntax error": ("def get_config(:\n", "syntax error on line 1"),
    "sys.exit": ("import sys\nsys.exit(0)\n", "it called sys.exit(0) while loading (line 2)"),
}
REFUSED_BEFORE_TRAINING = {
    "recipe with a syntax error": (["--config={work}/syntax error.py"], "syntax error on line 1"),
    "recipe calling sys.exit": (["--config={work}/sys.exit.py"], "called sys.exit(0)"),
    "negative seed": (["--seed=-1"], "seed must be in [0, 2**32 - 1]; received -1"),
    "export dir a file": (["--export_dir={work}/a_file"], "export dir {work}/a_file is a file"),
    "first file undecodable": (
        ["--dataset=folder", "--data_dir={work}/photos", "--batch_size=4"],
        "1 file(s) cannot be decoded as images: {work}/photos/train/a/0.png"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_BEFORE_TRAINING))
def test_bad_input_is_refused_before_training(case, tmp_path):
  """Each was a traceback (a recipe's SyntaxError; keras.utils.set_random_seed's ValueError; an
  undecodable first file, read for the size before the data check), a silent exit status 0 (a
  recipe's sys.exit) or a traceback after the whole run (an --export_dir that is a file)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for name, (text, _) in BAD_RECIPE_FILES.items():
    (tmp_path / f"{name}.py").write_text(text)
  (tmp_path / "a_file").write_text("")
  for name in ("a", "b"):
    (tmp_path / "photos" / "train" / name).mkdir(parents=True)
    for i in range(3):
      Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "train" / name / f"{i}.png")
  (tmp_path / "photos" / "train" / "a" / "0.png").write_bytes(b"junk")
  args, expected = REFUSED_BEFORE_TRAINING[case]
  args = [a.format(work=tmp_path) for a in args]
  result = run_train(*args, *QUICK, f"--output_dir={tmp_path / 'run'}")
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and expected.format(work=tmp_path) in last, last
  assert not (tmp_path / "run" / "history.csv").exists()


def test_a_loss_exploding_in_the_first_epoch_stops_the_run(tmp_path):
  """SGD at rate 1 reached a loss of 3.3e16 in epoch 1, then exited 0 (DivergenceGuard's
  reference was that epoch's own mean)."""
  result = run_train(*QUICK, "--optimizer=sgd", "--learning_rate=1", "--config.data.limit=512",
                     "--config.export.enabled=false", f"--output_dir={tmp_path / 'run'}")
  assert result.returncode == 2, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: training diverged at epoch 1, step "), last
