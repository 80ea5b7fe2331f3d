"""app/config.py: every recipe validates, resolve() derives values once, bad keys are refused."""

import datetime
import glob
import importlib
import os
import re

import pytest

from app import config as config_lib
from app.data.sources import DATASETS
from app.core.errors import UsageError
from app.models import MODELS
from app.optim.optimizers import OPTIMIZERS
from app.optim.schedules import SCHEDULES
from configs import default

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
# data_aware.py reads its data to resolve (tests/train/test_data_aware.py, and end to end
# tests/cli/test_train_data_aware.py).
RECIPES = sorted(
    os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(CONFIGS_DIR, "*.py"))
    if os.path.basename(p) not in ("default.py", "__init__.py", "data_aware.py"))


def test_there_are_recipes():
  assert "fashion_mnist" in RECIPES


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_validates(recipe):
  config = importlib.import_module(f"configs.{recipe}").get_config()
  config_lib.validate(config)


def test_default_validates():
  config_lib.validate(default.get_config())


def test_resolve_fills_output_dir_under_runs():
  config = default.get_config()
  config.name = "trial"
  now = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
  resolved = config_lib.resolve(config, now=now)
  assert resolved.output_dir == os.path.join("runs", "trial-20240506-070809")
  assert config.output_dir == ""  # the input is left as it was


def test_resolve_keeps_given_output_dir():
  config = default.get_config()
  config.output_dir = "/tmp/somewhere"
  assert config_lib.resolve(config).output_dir == "/tmp/somewhere"


def test_resolve_expands_a_tilde_in_paths_but_leaves_keywords(monkeypatch, tmp_path):
  monkeypatch.setenv("HOME", str(tmp_path))
  config = default.get_config()
  config.data.data_dir, config.output_dir, config.export.dir = "~/photos", "~/runs/x", "~/models"
  config.model.name, config.model.weights = "mobilenet_v2", "imagenet"
  config.optim.learning_rate_from = "auto"
  resolved = config_lib.resolve(config)
  assert resolved.data.data_dir == str(tmp_path / "photos")
  assert resolved.output_dir == str(tmp_path / "runs" / "x")
  assert resolved.train.backup_dir == str(tmp_path / "runs" / "x" / "backup")
  assert resolved.export.dir == str(tmp_path / "models")
  assert (resolved.model.weights, resolved.optim.learning_rate_from) == ("imagenet", "auto")
  assert config.data.data_dir == "~/photos"  # the caller's config is left as it was


def test_resolve_scales_learning_rate_linearly_with_batch_size():
  config = default.get_config()
  config.optim.learning_rate = 0.1
  config.optim.reference_batch_size = 256
  config.train.batch_size = 1024
  assert config_lib.resolve(config).optim.peak_learning_rate == pytest.approx(0.4)
  config.train.batch_size = 64
  assert config_lib.resolve(config).optim.peak_learning_rate == pytest.approx(0.025)


def test_resolve_without_reference_batch_uses_learning_rate_as_given():
  config = default.get_config()
  config.optim.learning_rate = 0.1
  config.optim.reference_batch_size = 0
  config.train.batch_size = 1024
  assert config_lib.resolve(config).optim.peak_learning_rate == pytest.approx(0.1)


@pytest.mark.parametrize("key, value, registry", [
    ("data.name", "imagenet22k", DATASETS),
    ("model.name", "transformer", MODELS),
    ("optim.name", "sgdd", OPTIMIZERS),
    ("optim.schedule", "triangle", SCHEDULES),
])
def test_unknown_name_lists_choices(key, value, registry):
  config = default.get_config()
  section, field = key.split(".")
  config[section][field] = value
  with pytest.raises(UsageError) as error:
    config_lib.validate(config)
  message = str(error.value)
  assert value in message
  for name in registry.names():
    assert name in message


@pytest.mark.parametrize("key, value, named", [
    ("optim.learning_rate", -0.1, "optim.learning_rate"),
    ("train.batch_size", 0, "train.batch_size"),
    ("train.batch_size", -32, "train.batch_size"),
    ("optim.warmup_epochs", 10.0, "optim.warmup_epochs"),  # == train.epochs (10)
    ("optim.warmup_epochs", 12.0, "optim.warmup_epochs"),
    ("data.validation_split", 1.0, "data.validation_split"),
    ("runtime.strategy", "hyperdrive", "strategy"),
    ("runtime.mixed_precision", "float8", "mixed_precision"),
    ("train.profile_steps", "20,10", "train.profile_steps"),  # START after STOP
    ("train.profile_steps", "0,5", "train.profile_steps"),  # steps count from 1
    ("train.profile_steps", "10-20", "train.profile_steps"),
    ("train.progress", "bars", "train.progress must be one of auto, bar, epoch"),
    ("model.bn_bias_lr_scale", 0.0, "model.bn_bias_lr_scale"),
    ("optim.lookahead_every", -1, "optim.lookahead_every"),
    ("optim.lookahead_decay", 1.0, "optim.lookahead_decay"),
    ("data.eval_crop", 0.0, "data.eval_crop must be in"),
    ("data.eval_crop", 1.5, "data.eval_crop must be in"),
    ("data.eval_crop", 0.9, "needs --config.data.resize=crop"),  # the schema's resize: stretch
])
def test_bad_value_names_the_key(key, value, named):
  config = default.get_config()
  section, field = key.split(".")
  config[section][field] = value
  with pytest.raises(UsageError, match=named):
    config_lib.validate(config)


def test_validation_is_never_the_test_split_by_default():
  """Issue 19 (4): data.validation_split was 0 by default, so best.keras selected on test."""
  resolved = config_lib.resolve(default.get_config())
  assert resolved.data.validation_split > 0 and not resolved.derived.validation_is_test


SPEEDRUNS = ("fashion_mnist_92", "fashion_mnist_94", "fashion_mnist_95", "cifar10_93",
             "cifar10_airbench")


@pytest.mark.parametrize("recipe", RECIPES)
def test_only_the_speedruns_validate_on_test(recipe):
  """The speedrun convention (validate on test every epoch, labelled, nothing selecting) is the
  speed recipes' explicit choice; every other recipe holds a validation part out."""
  config = importlib.import_module(f"configs.{recipe}").get_config()
  assert config_lib.resolve(config).derived.validation_is_test == (recipe in SPEEDRUNS)


@pytest.mark.parametrize("key, value, named", [
    ("train.early_stopping_patience", 3, "train.early_stopping_patience=3"),
    ("optim.schedule", "plateau", "optim.schedule='plateau'"),
])
def test_selecting_on_the_test_split_is_refused_in_one_line(key, value, named):
  """Issue 19 (4): early stopping and the plateau schedule selected on the test split when
  data.validation_split=0; a held-out part or cross-validation's folds are fine."""
  config = default.get_config()
  config.data.validation_split = 0.0
  config_lib.set_key(config, key, value)
  with pytest.raises(UsageError, match=re.escape(
      f"{named} would select on the test split (data.validation_split=0 validates on it); "
      "pass --config.data.validation_split=0.1")) as error:
    config_lib.resolve(config)
  assert "\n" not in str(error.value)
  config.train.cv_folds = 3  # validates on folds of train
  assert not config_lib.resolve(config).derived.validation_is_test
  config.train.cv_folds, config.data.validation_split = 0, 0.1
  assert not config_lib.resolve(config).derived.validation_is_test


def test_lookahead_and_ema_are_refused_together():
  config = default.get_config()
  config.optim.ema, config.optim.lookahead_every = True, 5
  with pytest.raises(UsageError, match="use one of them"):
    config_lib.validate(config)


@pytest.mark.parametrize("key, value, named", [
    ("train.time_budget", "5m", "--time_budget cannot plan under --strategy=multi_worker"),
    ("optim.learning_rate_from", "auto",
     "learning_rate_from=auto cannot run the range test under --strategy=multi_worker")])
def test_what_one_process_measures_alone_is_refused_under_multi_worker(key, value, named):
  config = default.get_config()
  config.runtime.strategy, config.runtime.worker_hosts = "multi_worker", "localhost:1,localhost:2"
  config_lib.set_key(config, key, value)
  with pytest.raises(UsageError, match=named):
    config_lib.validate(config)


def test_warmup_fraction_follows_the_length():
  from configs import cifar10_93  # pylint: disable=g-import-not-at-top
  config = cifar10_93.get_config()
  assert config_lib.resolve(config).optim.warmup_epochs == pytest.approx(0.23 * 12)
  config.train.epochs = 20  # --epochs=20 keeps the warmup at the same fraction of the run
  assert config_lib.resolve(config).optim.warmup_epochs == pytest.approx(0.23 * 20)


def test_warmup_fraction_and_epochs_are_refused_together():
  config = default.get_config()
  config.optim.warmup_fraction, config.optim.warmup_epochs = 0.1, 1.0
  with pytest.raises(UsageError, match="set one of them"):
    config_lib.validate(config)


def test_resolve_derives_strategy_and_export_formats_once():
  config = default.get_config()
  config.export.formats = "onnx"
  derived = config_lib.resolve(config).derived
  assert (derived.strategy, derived.export_formats) == ("default", ["onnx"])
  assert derived.strategy_reason.startswith("auto:")


def test_resolve_keeps_the_parsed_augmentation_terms():
  config = default.get_config()
  config.data.augment, config.data.augment_on_device = "flip|crop(pad=4)", "rotate(factor=0.05)"
  derived = config_lib.resolve(config).derived
  assert derived.augment == [["flip", {}], ["crop", {"pad": 4}]]
  assert derived.augment_on_device == [["rotate", {"factor": 0.05}]]


def recipe_at(recipe, epochs):
  """(the recipe as its file writes it, the same with train.epochs changed, as --epochs does)."""
  written = importlib.import_module(f"configs.{recipe}").get_config()
  changed = written.copy_and_resolve_references()
  changed.train.epochs = epochs
  return written, changed


@pytest.mark.parametrize("epochs", [1, 2])
@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_resolves_at_one_and_two_epochs(recipe, epochs):
  written, config = recipe_at(recipe, epochs)
  resolved = config_lib.resolve(config, recipe=written)
  train, optim = resolved.train, resolved.optim
  assert 0 <= optim.warmup_epochs < epochs
  assert 0 <= train.frozen_epochs <= epochs and isinstance(train.frozen_epochs, int)
  assert resolved.derived.recipe_epochs == written.train.epochs


def test_a_shorter_run_scales_the_recipes_lengths_and_says_so_in_one_line(caplog):
  caplog.set_level("INFO", logger="absl")  # a SavedModel save leaves absl at WARNING
  written, config = recipe_at("fashion_mnist", 1)
  resolved = config_lib.resolve(config, recipe=written)
  assert resolved.optim.warmup_epochs == pytest.approx(1 / 12)
  lines = [r.getMessage() for r in caplog.records if "of the recipe's" in r.getMessage()]
  assert lines == ["train.epochs=1 is 1/12 of the recipe's 12 epochs; its lengths scale alike: "
                   "optim.warmup_epochs 1 -> 0.08333"], lines


def test_every_length_key_scales_and_a_key_set_on_the_command_line_does_not():
  written = default.get_config()
  written.model.name = "mobilenet_v2"  # a backbone family: frozen_epochs applies
  written.train.epochs, written.train.frozen_epochs = 90, 30
  written.optim.schedule, written.optim.step_epochs = "multistep", (30.0, 60.0, 80.0)
  written.optim.warmup_epochs = 5.0
  config = written.copy_and_resolve_references()
  config.train.epochs = 9
  resolved = config_lib.resolve(config, recipe=written)
  assert resolved.train.frozen_epochs == 3 and resolved.optim.warmup_epochs == pytest.approx(0.5)
  assert list(resolved.optim.step_epochs) == pytest.approx([3.0, 6.0, 8.0])
  assert resolved.optim.decay_epochs == written.optim.decay_epochs  # multistep does not read it
  config.optim.warmup_epochs = 0.2  # set by the user: theirs, not scaled
  assert config_lib.resolve(config, recipe=written).optim.warmup_epochs == pytest.approx(0.2)
  step = written.copy_and_resolve_references()
  step.optim.schedule, step.train.frozen_epochs = "step", 0
  config = step.copy_and_resolve_references()
  config.train.epochs = 45
  assert config_lib.resolve(config, recipe=step).optim.decay_epochs == pytest.approx(15.0)


def test_without_the_recipe_or_at_its_length_nothing_scales():
  written, config = recipe_at("fashion_mnist", 12)
  assert config_lib.resolve(config, recipe=written).optim.warmup_epochs == 1.0
  written, config = recipe_at("fashion_mnist", 1)
  with pytest.raises(UsageError, match="warmup_epochs=1.0 must be >= 0 and shorter than"):
    config_lib.resolve(config)  # a config without its recipe: nothing to scale from
  resolved = config_lib.resolve(config, recipe=written)
  again = config_lib.resolve(resolved)  # a resolved config resolves to itself
  assert again.optim.warmup_epochs == resolved.optim.warmup_epochs


# === Issue 19 (16): seeds, sizes and recipes are refused in one line ===


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_a_seed_outside_32_bits_is_refused(seed):
  """keras.utils.set_random_seed raised ValueError (a traceback) after the data had loaded."""
  config = default.get_config()
  config.seed = seed
  with pytest.raises(UsageError, match=r"seed must be in \[0, 2\*\*32 - 1\]; received"):
    config_lib.validate(config)
  config.seed = 2**32 - 1
  config_lib.validate(config)


def test_an_image_size_whose_batch_cannot_fit_in_memory_is_refused():
  """data.image_size=100000 allocated 546 TiB for Fashion-MNIST (a numpy traceback)."""
  config = default.get_config()
  config.data.image_size, config.train.batch_size = 100000, 64
  with pytest.raises(UsageError, match=r"one batch of 64 float32 images of 100000x100000x1 needs "
                     r"at least 2.3 TB of memory, more than this machine's .*; lower "
                     r"--config.data.image_size \(or lower --batch_size\)"):
    config_lib.validate(config)
  config.data.image_size = 224
  config_lib.validate(config)


BAD_RECIPES = {
    "syntax error": ("recipe.py", "def get_config(:\n",
                     r"syntax error on line 1: .*; fix the file"),
    "raises": ("recipe.py", "x = 1\nraise RuntimeError('boom')\n",
               r"RuntimeError: boom \(line 2\); fix the recipe"),
    "bad import": ("recipe.py", "import no_such_module_here\n",
                   r"No module named 'no_such_module_here' \(line 1\); fix the import"),
    "not Python": ("recipe.yaml", "data:\n  name: folder\n", r"not a Python file \(.py\)"),
    "no get_config": ("recipe.py", "from configs import default\n",
                      r"it defines no get_config\(\)"),
    "returns a dict": ("recipe.py", "def get_config():\n  return {'seed': 1}\n",
                       r"get_config\(\) returned dict, not an ml_collections.ConfigDict"),
    "returns None": ("recipe.py", "def get_config():\n  pass\n",
                     r"get_config\(\) returned NoneType"),
    "sys.exit": ("recipe.py", "import sys\n\n\ndef get_config():\n  sys.exit(3)\n",
                 r"it called sys.exit\(3\) while loading \(line 5\)"),
    "sections missing": ("recipe.py", "import ml_collections\n\n\ndef get_config():\n"
                         "  return ml_collections.ConfigDict({'seed': 1})\n",
                         r"its config lacks the section\(s\) data, data_aware, export, model, name"),
    "missing": (None, "", r"no such file"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_a_recipe_that_cannot_load_is_one_usage_error(case, tmp_path):
  """Each was a traceback (SyntaxError, RuntimeError, ModuleNotFoundError, KeyError 'export'), a
  silent exit (sys.exit) or a misleading 'unknown config key ... get_config' line."""
  name, text, expected = BAD_RECIPES[case]
  path = tmp_path / (name or "nope.py")
  if name:
    path.write_text(text)
  with pytest.raises(UsageError, match=rf"^cannot load the --config recipe {path}: {expected}"):
    config_lib.load_recipe(str(path))


def test_load_recipe_passes_the_argument_and_locks_when_asked(tmp_path):
  path = tmp_path / "recipe.py"
  path.write_text("from configs import default\n\n\ndef get_config(name='model'):\n"
                  "  config = default.get_config()\n  config.name = name\n  return config\n")
  assert config_lib.load_recipe(f"{path}:tiny").name == "tiny"
  locked = config_lib.load_recipe(str(path), lock=True)
  with pytest.raises(AttributeError):
    locked.epochz = 1
