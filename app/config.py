"""Config validation and resolution: the one place that says "bad config".

`validate(config)` checks every key up front, section by section, and raises UsageError naming the
key, the value and the fix. `resolve(config)` then computes every derived value once (the
recipe's lengths in epochs at the run's train.epochs, run directory, learning rate after the
scaling rule, warmup, strategy, mixed precision under auto, export formats), so the stages
read plain values, re-check nothing and never call back here. The run directory's own files
(config.yaml, resuming) are app/core/run_dir.py's.
"""

import datetime
import fractions
import os
import re

import ml_collections
from absl import logging

from app.core.errors import UsageError

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")  # auto: resolve() picks
PROGRESS = ("auto", "bar", "epoch")  # train.progress: app.train.fitting.keras_verbosity
_PROFILE_STEPS = re.compile(r"^(\d+),(\d+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _require(ok, message):
  if not ok:
    raise UsageError(message)


def _positive(value, key, flag):
  _require(value > 0, f"{key} must be positive; received {value}; pass e.g. {flag}")


def validate(config):
  """Raises UsageError on the first bad key, section by section in the schema's order. Imports
  the registries, so names are checked too. Returns what it parsed on the way (the augmentation
  terms, the export formats), which resolve() keeps in config.derived."""
  _require(_NAME.match(config.name),
           f"name {config.name!r} must be letters, digits, '.', '_' or '-' (it names folders)")
  # NumPy's and Keras's seeds (keras.utils.set_random_seed) are 32-bit unsigned.
  _require(0 <= config.seed < 2**32,
           f"seed must be in [0, 2**32 - 1]; received {config.seed}; pass e.g. --seed=0")
  parsed = _validate_data(config.data)
  # Here, not in _validate_data: the data-aware choice (which runs that first) may set resize.
  _require(config.data.eval_crop == 1 or config.data.resize == "crop",
           f"data.eval_crop={config.data.eval_crop:g} keeps a share of a centre crop; it needs "
           f"--config.data.resize=crop (received {config.data.resize!r})")
  _validate_model(config.model)
  _validate_transfer(config)
  _validate_train(config.train)
  _validate_sizes(config)
  _validate_optim(config.optim, config.train)
  _validate_runtime(config.runtime)
  _require(not config.train.time_budget or config.runtime.strategy not in ("multi_worker", "tpu"),
           f"--time_budget cannot plan under --strategy={config.runtime.strategy} (each worker "
           "would measure and plan alone); plan with one worker and pass the --epochs it chose")
  _require(config.optim.learning_rate_from != "auto"
           or config.runtime.strategy not in ("multi_worker", "tpu"),
           f"optim.learning_rate_from=auto cannot run the range test under "
           f"--strategy={config.runtime.strategy} (each worker would test and choose alone); run "
           "app.lr_find with one worker and pass --config.optim.learning_rate_from=RUN_DIR/lr_find.json")
  parsed["export_formats"] = _validate_export(config.export)
  parsed["validation_is_test"] = _validate_selection(config)
  return parsed


def validates_on_test(config):
  """True when the run validates on the test split (data.validation_split=0, no folds, and no
  validation split of the data's own: a folder's val/ validates whatever the fraction): the
  speedrun convention, where nothing may select on validation."""
  from app.data import sources  # pylint: disable=g-import-not-at-top
  return (config.data.validation_split == 0 and not config.train.cv_folds
          and not sources.has_validation_split(config.data))


def _validate_selection(config):
  """Nothing selects on the test split: early stopping and the plateau schedule need a held-out
  validation part. Returns validates_on_test(config)."""
  on_test = validates_on_test(config)
  selecting = [what for what, on in (
      (f"train.early_stopping_patience={config.train.early_stopping_patience}",
       config.train.early_stopping_patience), ("optim.schedule='plateau'",
                                               config.optim.schedule == "plateau")) if on]
  _require(not (on_test and selecting),
           f"{' and '.join(selecting)} would select on the test split (data.validation_split=0 "
           "validates on it); pass --config.data.validation_split=0.1 to hold a validation part out")
  return on_test


def _validate_data(data):
  """Checks the data section; returns its parsed augmentation terms (app.data.augment)."""
  from app.data.augment import parse_terms  # pylint: disable=g-import-not-at-top
  from app.data.sources import DATASETS, dataset_kind  # pylint: disable=g-import-not-at-top
  DATASETS.get(dataset_kind(data.name))
  _require(data.image_size >= 0, f"data.image_size must be 0 (as stored) or a side in pixels; "
           f"received {data.image_size}")
  parsed = {"augment": parse_terms(data.augment, image_size=data.image_size,
                                   channels=data.channels),
            "augment_on_device": parse_terms(data.augment_on_device, on_device=True,
                                             image_size=data.image_size, channels=data.channels)}
  _require(data.channels in (0, 1, 3), f"data.channels must be 0, 1 or 3; received {data.channels}")
  _require(0 <= data.validation_split < 1,
           f"data.validation_split must be in [0, 1); received {data.validation_split}")
  _require(data.resize in ("resize", "crop", "pad"),
           f"data.resize must be resize, crop or pad; received {data.resize!r}")
  _require(0 < data.eval_crop <= 1,
           f"data.eval_crop must be in (0, 1] (the share of the centre kept); received "
           f"{data.eval_crop}")
  _require(data.on_bad_file in ("fail", "skip"),
           f"data.on_bad_file must be 'fail' or 'skip'; received {data.on_bad_file!r}")
  _require(data.in_memory_max_gb >= 0, "data.in_memory_max_gb must be >= 0 (0 = never)")
  _require(data.limit >= 0, f"data.limit must be >= 0 (0 = all images); received {data.limit}")
  _require(data.shuffle_buffer >= 0, "data.shuffle_buffer must be >= 0 (0 = whole split)")
  return parsed


def _validate_model(model):
  from app.models import MODELS  # pylint: disable=g-import-not-at-top
  MODELS.get(model.name)
  _require(model.width >= 0 and model.depth >= 0,
           "model.width and model.depth must be >= 0 (0 = the family's default)")
  _require(0 <= model.dropout < 1, f"model.dropout must be in [0, 1); received {model.dropout}")
  _require(0 < model.bn_momentum < 1,
           f"model.bn_momentum must be in (0, 1); received {model.bn_momentum}")
  _require(model.kernel_size >= 0,
           f"model.kernel_size must be >= 0 (0 = the family's); received {model.kernel_size}")
  _require(model.bn_bias_lr_scale > 0,
           f"model.bn_bias_lr_scale must be > 0 (1 = the shared rate); received "
           f"{model.bn_bias_lr_scale}")
  _require(model.tta in ("", "flip", "flip_translate"),
           f"model.tta must be '' (none), 'flip' or 'flip_translate'; received {model.tta!r}")


def _validate_train(train):
  _positive(train.epochs, "train.epochs", "--epochs=10")
  _positive(train.batch_size, "train.batch_size", "--batch_size=128")
  _require(0 <= train.label_smoothing < 1,
           f"train.label_smoothing must be in [0, 1); received {train.label_smoothing}")
  _positive(train.validation_every_epochs, "train.validation_every_epochs",
            "--config.train.validation_every_epochs=1")
  _require(train.early_stopping_patience >= 0, "train.early_stopping_patience must be >= 0 (0 = off)")
  _require(train.backup_every_steps >= 0,
           f"train.backup_every_steps must be >= 0 (0 = epoch ends only); received "
           f"{train.backup_every_steps}")
  _require(train.on_divergence in ("stop", "retry"),
           f"train.on_divergence must be 'stop' or 'retry'; received {train.on_divergence!r}")
  _require(train.divergence_factor > 1,
           f"train.divergence_factor must be > 1; received {train.divergence_factor}")
  _require(train.cv_folds == 0 or train.cv_folds >= 2,
           f"cv_folds={train.cv_folds}: cross-validation needs at least 2 folds; pass --cv_folds=5, "
           "or 0 for a single run")
  _require(train.time_budget_seconds >= 0,
           f"train.time_budget_seconds must be >= 0 (0 = no limit); received "
           f"{train.time_budget_seconds}")
  _require(not train.time_budget or budget_seconds(train) is not None,
           f"train.time_budget {train.time_budget!r} is not a duration; pass e.g. "
           "--time_budget=5m (or 90s, 1h30m, 300), or '' for none")
  _require(not (train.time_budget and train.cv_folds),
           "--time_budget plans one run's length; cross-validation (train.cv_folds) runs one per "
           "fold: pass one of them")
  profile = _PROFILE_STEPS.match(str(train.profile_steps))
  _require(not train.profile_steps or profile and 0 < int(profile[1]) <= int(profile[2]),
           f"train.profile_steps must be 'START,STOP' with 1 <= START <= STOP (e.g. "
           f"--config.train.profile_steps=10,19) or '' (off); received {train.profile_steps!r}")
  _require(train.progress in PROGRESS,
           f"train.progress must be one of {', '.join(PROGRESS)} (--progress=epoch: one line per "
           f"epoch); received {train.progress!r}")


def budget_seconds(train):
  """train.time_budget in seconds; 0.0 when off; None when it is not a duration."""
  from app.core import clock  # pylint: disable=g-import-not-at-top
  return clock.parse_duration(train.time_budget) if train.time_budget else 0.0


def _set_by_command_line(config, recipe, key, overridden=None):
  """Whether the command line set `key`: in `overridden` (the keys its flags set) when given, else
  when it differs from the recipe as written; with neither (a config built in code) nothing
  counts as set."""
  if overridden is not None:
    return key in overridden
  if recipe is None:
    return False
  here, there = config, recipe
  for part in key.split("."):
    here, there = here[part], there[part]
  return _as_tuple(here) != _as_tuple(there)


def _choose_from_data(config, recipe, overridden):
  """config.data_aware: sets, in place, the keys of app.train.data_aware.CHOSEN_KEYS that the
  command line left as the recipe wrote them, chosen from a survey of the data, the budget and
  the resolved precision (runtime.mixed_precision, no longer auto);
  returns {"survey": what it found, "chosen": [{"key", "value", "why"}] of the keys it set}."""
  from app.data.survey import survey  # pylint: disable=g-import-not-at-top
  from app.train import data_aware  # pylint: disable=g-import-not-at-top
  _validate_data(config.data)  # the survey reads the data: a bad data dir is one line first
  found = survey(config.data)
  budget = budget_seconds(config.train) or data_aware.NOMINAL_BUDGET_SECONDS
  chosen = []
  own_family = _set_by_command_line(config, recipe, "model.name", overridden)
  choices = data_aware.choose(found, budget, os.cpu_count() or 1, config.runtime.mixed_precision)
  for key, (value, why) in choices.items():
    if own_family and key.startswith("model."):
      continue  # the profile's width and switches are its family's, not the user's --model's
    if key == "data.eval_crop" and config.data.resize != "crop":
      continue  # a share of a centre crop's: not for the user's own --config.data.resize
    if not _set_by_command_line(config, recipe, key, overridden):
      set_key(config, key, value)
      chosen.append({"key": key, "value": value, "why": why})
      logging.info("data-aware recipe: %s = %r: %s", key, value, why)
  return {"survey": found.as_dict(), "chosen": chosen}


def _validate_sizes(config):
  """Sizes bounded by the memory they need (app/core/memory.py): data.image_size, when set, by
  one float32 training batch of images that side (the images as stored are checked once the data
  is read: app.data.pipeline, the sources; the model's width once it is built: app.models)."""
  from app.data import images  # pylint: disable=g-import-not-at-top
  side = config.data.image_size
  if side:
    images.require_batch_fits((side, side, max(config.data.channels, 1)), config.train.batch_size)


def warmup_epochs(optim, train):
  """The warmup in epochs: optim.warmup_fraction of train.epochs when set, else warmup_epochs."""
  return optim.warmup_fraction * train.epochs if optim.warmup_fraction else optim.warmup_epochs


def _validate_optim(optim, train):
  from app.optim.optimizers import OPTIMIZERS  # pylint: disable=g-import-not-at-top
  from app.optim.schedules import SCHEDULES  # pylint: disable=g-import-not-at-top
  OPTIMIZERS.get(optim.name)
  SCHEDULES.get(optim.schedule)
  _positive(optim.learning_rate, "optim.learning_rate (the learning rate)", "--learning_rate=0.01")
  _require(optim.reference_batch_size >= 0,
           "optim.reference_batch_size must be >= 0 (0 = no batch-size scaling)")
  _require(0 <= optim.momentum < 1, f"optim.momentum must be in [0, 1); received {optim.momentum}")
  _require(optim.name != "lion" or optim.momentum > 0,
           "optim.momentum is Lion's beta_1 and must be > 0; pass e.g. --config.optim.momentum=0.9")
  _require(optim.weight_decay >= 0 and optim.clipnorm >= 0,
           "optim.weight_decay and optim.clipnorm must be >= 0 (0 = off)")
  _require(0 <= optim.warmup_fraction < 1,
           f"optim.warmup_fraction must be in [0, 1) (a fraction of train.epochs); received "
           f"{optim.warmup_fraction}")
  _require(not (optim.warmup_fraction and optim.warmup_epochs),
           "optim.warmup_fraction and optim.warmup_epochs both set the warmup; set one of them "
           "(the other to 0)")
  _require(0 <= warmup_epochs(optim, train) < train.epochs,
           f"optim.warmup_epochs={warmup_epochs(optim, train)} must be >= 0 and shorter than "
           f"train.epochs={train.epochs}; lower --config.optim.warmup_epochs")
  _require(0 <= optim.final_fraction <= 1, "optim.final_fraction must be in [0, 1]")
  _require(optim.decay_epochs > 0 and 0 < optim.decay_rate <= 1,
           "optim.decay_epochs must be > 0 and optim.decay_rate in (0, 1]")
  steps = list(optim.step_epochs)
  _require(optim.schedule != "multistep" or (steps and steps == sorted(steps) and steps[0] > 0),
           f"optim.step_epochs must be increasing positive epochs for multistep; received {steps}")
  _require(optim.power > 0, f"optim.power must be > 0; received {optim.power}")
  _require(optim.plateau_patience >= 1, "optim.plateau_patience must be >= 1 epoch")
  _require(optim.clipvalue >= 0, "optim.clipvalue must be >= 0 (0 = off)")
  _require(optim.gradient_accumulation_steps >= 1, "optim.gradient_accumulation_steps must be >= 1")
  _require(0 < optim.ema_momentum < 1,
           f"optim.ema_momentum must be in (0, 1); received {optim.ema_momentum}")
  _require(optim.lookahead_every >= 0,
           f"optim.lookahead_every must be >= 0 (0 = off); received {optim.lookahead_every}")
  _require(0 <= optim.lookahead_decay < 1,
           f"optim.lookahead_decay must be in [0, 1); received {optim.lookahead_decay}")
  _require(not (optim.ema and optim.lookahead_every),
           "optim.ema and optim.lookahead_every both average the weights; use one of them")


def _validate_runtime(runtime):
  _require(runtime.strategy in STRATEGIES,
           f"unknown strategy {runtime.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
  _require(runtime.mixed_precision in PRECISIONS,
           f"unknown mixed_precision {runtime.mixed_precision!r}; choose one of: "
           f"{', '.join(PRECISIONS)}")
  if runtime.mixed_precision == "mixed_float16":
    from app import accel  # pylint: disable=g-import-not-at-top
    why = accel.supported_precisions()["mixed_float16"]
    _require(why is None, f"--mixed_precision=mixed_float16 needs a GPU of compute capability "
             f">= 7.0: {why}; use --mixed_precision=mixed_bfloat16 (or float32) here")
  _require(runtime.accel in ("off", "auto"),
           f"runtime.accel must be off or auto; received {runtime.accel!r}")
  _require(runtime.accel == "off" or runtime.strategy not in ("multi_worker", "tpu"),
           f"--accel=auto cannot run under --strategy={runtime.strategy} (each worker would "
           "measure and choose alone); probe with one worker and pass the chosen switches")
  _require(runtime.accel_probe_steps >= 2, "runtime.accel_probe_steps must be >= 2")
  _require(runtime.accel_tolerance > 0, "runtime.accel_tolerance must be > 0")
  _require(runtime.cpu_devices >= 0, "runtime.cpu_devices must be >= 0 (0 = the CPU as one device)")
  from app import distribute  # pylint: disable=g-import-not-at-top
  distribute.gpu_memory(runtime)  # runtime.gpu_memory_limit is a size
  _require(not (runtime.jit_compile and runtime.strategy == "mirrored" and runtime.cpu_devices > 1),
           "XLA collectives are not implemented for CPU devices: drop --jit_compile or "
           "--config.runtime.cpu_devices with --strategy=mirrored")
  _validate_multi_worker(runtime)
  _require(runtime.steps_per_execution == 1 or runtime.strategy not in ("mirrored", "multi_worker"),
           "steps_per_execution > 1 with several replicas fails in Keras 3.15 "
           "(keras-team/keras#19246); keep --config.runtime.steps_per_execution=1 with "
           f"--strategy={runtime.strategy}")
  _positive(runtime.steps_per_execution, "runtime.steps_per_execution",
            "--config.runtime.steps_per_execution=1")


def _validate_export(export):
  """Checks the export section; returns its formats, parsed (app.serving.formats)."""
  from app.serving.formats import parse as parse_export_formats  # pylint: disable=g-import-not-at-top
  formats = list(parse_export_formats(export.formats))
  _positive(export.parity_images, "export.parity_images", "--config.export.parity_images=64")
  return formats


def _validate_multi_worker(runtime):
  """The cluster flags, and what multi-worker training cannot do on CPU hosts."""
  from app import distribute  # pylint: disable=g-import-not-at-top
  _require(runtime.task_index >= 0, f"--task_index must be >= 0; received {runtime.task_index}")
  _require(not runtime.worker_hosts or runtime.strategy in ("auto", "multi_worker"),
           f"--worker_hosts is for --strategy=multi_worker (or auto); received "
           f"--strategy={runtime.strategy}")
  distribute.tf_config_from_flags(runtime)  # host:port entries and the task index
  if runtime.strategy == "multi_worker":
    if not runtime.worker_hosts:
      distribute.read_tf_config()
    _require(not (runtime.jit_compile and not distribute.has_gpu()),
             "XLA collectives are not implemented for CPU devices, so --jit_compile fails with "
             "--strategy=multi_worker on CPU hosts; drop --jit_compile")


def _validate_transfer(config):
  """model.weights (--weights) and the two-phase schedule: ImageNet backbone families only."""
  from app import models  # pylint: disable=g-import-not-at-top
  from app.models import applications  # pylint: disable=g-import-not-at-top
  model, train, optim = config.model, config.train, config.optim
  backbones = ", ".join(name for name in models.MODELS.names() if models.takes(name, "weights"))
  if model.weights or train.frozen_epochs:
    _require(models.takes(model.name, "weights"),
             f"--weights and train.frozen_epochs need a model with a pretrained backbone; "
             f"--model={model.name} has none; choose one of: {backbones}")
  if model.weights == applications.IMAGENET:  # keras.applications' file, fetched at build
    applications.imagenet_alpha(model.name, model.width)  # a width with no file: UsageError
  elif model.weights:
    _require(os.path.isfile(model.weights),
             f"weights file {model.weights} does not exist; pass --weights=PATH to a "
             "backbone.weights.h5 of an earlier run (or a keras.applications .h5)")
    _require(model.weights.endswith(".h5"),
             f"weights file {model.weights} is not a .h5 weights file; pass a "
             "backbone.weights.h5 of an earlier run (or a keras.applications .h5)")
  _require(0 <= train.frozen_epochs <= train.epochs,
           f"train.frozen_epochs={train.frozen_epochs} must be in [0, train.epochs="
           f"{train.epochs}] (the head-only epochs are part of train.epochs)")
  _require(0 < optim.fine_tune_rate_factor <= 1,
           f"optim.fine_tune_rate_factor must be in (0, 1]; received {optim.fine_tune_rate_factor}")
  if train.frozen_epochs:
    phases = [train.frozen_epochs] + [train.epochs - train.frozen_epochs] * (
        train.epochs > train.frozen_epochs)
    _require(warmup_epochs(optim, train) < min(phases),
             f"optim.warmup_epochs={warmup_epochs(optim, train)} must be shorter than each transfer phase "
             f"({' and '.join(map(str, phases))} epochs); lower --config.optim.warmup_epochs")


def _length_keys(config):
  from app.optim.schedules import length_keys  # pylint: disable=g-import-not-at-top
  return length_keys(config)


def _scaled(value, scale, epochs):
  from app.optim.schedules import scaled_length  # pylint: disable=g-import-not-at-top
  return scaled_length(value, scale, epochs)


def set_key(config, key, value):
  """config["a.b.c"] = value, for a dotted key (--config.a.b.c=value)."""
  *parents, leaf = key.split(".")
  for parent in parents:
    config = config[parent]
  config[leaf] = value


def load_recipe(path, lock=False):
  """A recipe file (`path[:argument]`, as --config takes it) -> its get_config(), unlocked unless
  `lock`, with nothing overridden: what --config loads (app.cli.define_config_flag) and what
  scale_lengths() compares a run's config with. Loaded as ml_collections' loader does (the file
  run as a module, then get_config(argument)), but whatever goes wrong in the recipe's code is
  one UsageError naming the file, the line and the fix, since a recipe is the user's input: a
  file that is missing or not Python, a syntax error, a failed import, an exception or a
  sys.exit() while it loads, no get_config(), or one returning something other than a
  ConfigDict of the schema's sections (configs/default.py). A run's config.yaml is that run's
  config as a recipe (app/core/rerun.py: its choices fixed, a new run directory)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  file, colon, argument = path.partition(":")
  where = f"cannot load the --config recipe {file}"
  fix = "pass a recipe file such as configs/fashion_mnist.py"
  _require(os.path.isfile(file), f"{where}: no such file; {fix}")
  if file.endswith((".yaml", ".yml")):  # a run's config.yaml: that run again, in a new directory
    from app.core import rerun  # pylint: disable=g-import-not-at-top
    config = rerun.recipe_from_file(file, where)
    if lock:
      config.lock()
    return config
  _require(file.endswith(".py"), f"{where}: not a Python file (.py) nor a run's config.yaml; "
           f"{fix}")
  try:
    spec = importlib.util.spec_from_file_location("config_config", file)  # ml_collections' name
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    get_config = getattr(module, "get_config", None)
    _require(callable(get_config),
             f"{where}: it defines no get_config(); a recipe's get_config() returns an "
             "ml_collections.ConfigDict: start from configs/default.py's, as configs/*.py do")
    config = get_config(*([argument] if colon else []))
  except UsageError:
    raise
  except SyntaxError as e:
    raise UsageError(f"{where}: syntax error on line {e.lineno}: {e.msg}; fix the file") from None
  except ImportError as e:
    raise UsageError(f"{where}: {e}{_recipe_line(e, file)}; fix the import (run from the "
                     "repository root for `from configs import ...`)") from None
  except SystemExit as e:
    raise UsageError(f"{where}: it called sys.exit({e.code!r}) while loading"
                     f"{_recipe_line(e, file)}; a recipe only defines get_config()") from None
  except Exception as e:  # pylint: disable=broad-except
    message = (str(e).strip().splitlines() or [""])[0][:200]
    raise UsageError(f"{where}: {type(e).__name__}: {message}{_recipe_line(e, file)}; fix the "
                     "recipe") from None
  _require(isinstance(config, ml_collections.ConfigDict),
           f"{where}: get_config() returned {type(config).__name__}, not an "
           "ml_collections.ConfigDict; return configs.default.get_config() with your changes")
  from configs import default  # pylint: disable=g-import-not-at-top
  missing = [key for key in default.get_config() if key not in config]
  _require(not missing, f"{where}: its config lacks the section(s) {', '.join(missing)}; start "
           "from configs.default.get_config() and change keys, as configs/*.py do")
  if lock:
    config.lock()
  return config


def _recipe_line(error, file):
  """' (line N)': where in the recipe `error` was raised, when it was raised there."""
  import traceback  # pylint: disable=g-import-not-at-top
  lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
           if os.path.abspath(frame.filename) == os.path.abspath(file)]
  return f" (line {lines[-1]})" if lines else ""


def scale_lengths(config, recipe):
  """Scales, in place, the length keys of `config` still holding `recipe`'s values (a key the
  command line set is the user's, kept) by config's train.epochs / recipe's; returns the line
  that says so, or "" when nothing changed."""
  epochs, recipe_epochs = config.train.epochs, recipe.train.epochs if recipe else 0
  if not (isinstance(epochs, int) and epochs > 0 and recipe_epochs > 0 and epochs != recipe_epochs):
    return ""
  scale, changes = epochs / recipe_epochs, []
  for key in _length_keys(config):
    section, leaf = key.split(".")
    value = config[section][leaf]
    if _set_by_command_line(config, recipe, key):  # the user's: kept
      continue
    config[section][leaf] = _scaled(value, scale, epochs)
    if config[section][leaf] != value:
      changes.append(f"{key} {_shown(value)} -> {_shown(config[section][leaf])}")
  if not changes:
    return ""
  ratio = fractions.Fraction(epochs, recipe_epochs)
  return (f"train.epochs={epochs} is {ratio} {'of' if ratio < 1 else 'times'} the recipe's "
          f"{recipe_epochs} epochs; its lengths scale alike: " + ", ".join(changes))


def _as_tuple(value):
  return tuple(value) if isinstance(value, (tuple, list)) else value


def _shown(value):
  if isinstance(value, (tuple, list)):
    return "(" + ", ".join(_shown(v) for v in value) + ")"
  return f"{value:.4g}"


def _resolve_precision(runtime, strategy):
  """runtime.mixed_precision=auto -> the policy app.accel.auto_precision picks for the devices
  here (and `strategy`, the resolved name: a TPU's is mixed_bfloat16), set in place and logged;
  returns why (config.derived.mixed_precision_reason). mixed_bfloat16 asked for on devices that
  emulate bfloat16 (a CPU without AVX512_BF16 or AMX, a GPU before Ampere) trains, with a warning
  and the reason saying so: 6.3x slower than float32 on an AVX2 CPU (configs/fashion_mnist.py)."""
  from app import accel  # pylint: disable=g-import-not-at-top
  if runtime.mixed_precision != "auto":
    why = f"--mixed_precision={runtime.mixed_precision}"
    emulated = runtime.mixed_precision == "mixed_bfloat16" and strategy != "tpu" and \
        accel.supported_precisions()["mixed_bfloat16"]
    if emulated:
      why += (f" (emulated: {emulated}, so it trains several times slower than float32; "
              "--mixed_precision=auto picks float32 here)")
      logging.warning("mixed precision: %s", why)
    return why
  runtime.mixed_precision, why = accel.auto_precision(on_tpu=strategy == "tpu")
  logging.info("mixed precision: %s (%s)", runtime.mixed_precision, why)
  return why


# The config's paths. A shell leaves the tilde of `--data_dir=~/photos` as it is (bash expands one
# only at a word's start or in a variable assignment), so resolve() expands it as the user meant;
# "imagenet" and "auto" (model.weights, optim.learning_rate_from) pass through unchanged.
PATH_KEYS = ("output_dir", "data.data_dir", "data.cache_dir", "model.weights", "train.backup_dir",
             "optim.learning_rate_from", "export.dir")


def expand_user_paths(config):
  """Expands a leading ~ in each of PATH_KEYS that `config` has, in place."""
  for key in PATH_KEYS:
    section, _, leaf = key.rpartition(".")
    parent = config[section] if section else config
    if leaf in parent and isinstance(parent[leaf], str) and parent[leaf].startswith("~"):
      parent[leaf] = os.path.expanduser(parent[leaf])


def resolve(config, now=None, strategy=None, recipe=None, overridden=None):
  """Config -> a validated, unlocked copy with every derived value filled in, computed here once:
  the lengths in epochs scaled to the run's train.epochs when it differs from its recipe's
  (_length_keys), the paths (~ expanded), the run and backup directories, the learning rate (from an lr_find.json, then
  scaled to the batch), the warmup in epochs, and in `derived` what validate() parsed (the
  augmentation terms of data.augment and data.augment_on_device, the export formats), the
  recipe's epochs and the strategy the run uses, with the reason; runtime.mixed_precision=auto
  becomes the policy for the devices here, its reason in derived. `strategy` = (name, reason)
  from app.distribute.initialize (the command computes it before TensorFlow starts); None
  computes it here. `recipe` = the recipe as its file writes it, without the command line's
  overrides (load_recipe; app.cli.recipe_as_written); None: nothing is scaled. `overridden`:
  the keys the command line set, when the command knows them (the data-aware recipe's choice
  leaves them alone); None: those differing from `recipe`."""
  from app import distribute  # pylint: disable=g-import-not-at-top
  resolved = ml_collections.ConfigDict(config.to_dict())
  expand_user_paths(resolved)
  epochs_given = _set_by_command_line(resolved, recipe, "train.epochs", overridden)
  if epochs_given and resolved.train.time_budget and recipe is not None and \
      not _set_by_command_line(resolved, recipe, "train.time_budget", overridden):
    logging.info("--epochs=%d given: the recipe's time budget (%s) is off", resolved.train.epochs,
                 resolved.train.time_budget)
    resolved.train.time_budget = ""  # the recipe's own budget yields to the user's epochs
  _require(not (resolved.train.time_budget and epochs_given),
           f"--time_budget={resolved.train.time_budget} plans the number of epochs to fit the "
           f"budget; drop --epochs={resolved.train.epochs} (or the budget)")
  _validate_runtime(resolved.runtime)
  name, reason = strategy or distribute.strategy_name(resolved.runtime)
  # The policy first: the data-aware choice estimates the photo speed from it.
  precision_reason = _resolve_precision(resolved.runtime, name)
  data_aware = _choose_from_data(resolved, recipe, overridden) if resolved.data_aware else None
  scaled = scale_lengths(resolved, recipe)
  parsed = validate(resolved)
  if scaled:
    logging.info("%s", scaled)
  if not resolved.output_dir:
    from app.core import rerun  # pylint: disable=g-import-not-at-top
    stamp = (now or datetime.datetime.now(datetime.timezone.utc)).strftime(rerun.STAMP_FORMAT)
    resolved.output_dir = os.path.join(rerun.DEFAULT_ROOT, f"{resolved.name}-{stamp}")
  if not resolved.train.backup_dir:
    resolved.train.backup_dir = os.path.join(resolved.output_dir, "backup")
  optim = resolved.optim
  if optim.learning_rate_from and optim.learning_rate_from != "auto":  # an lr_find.json's rate
    from app.optim.lr_find import read_suggested_rate  # pylint: disable=g-import-not-at-top
    optim.learning_rate = read_suggested_rate(optim.learning_rate_from)
  from app.optim.optimizers import peak_rate  # pylint: disable=g-import-not-at-top
  optim.peak_learning_rate = peak_rate(optim, resolved.train.batch_size)
  optim.warmup_epochs = warmup_epochs(optim, resolved.train)
  resolved.derived = ml_collections.ConfigDict(dict(
      parsed, strategy=name, strategy_reason=reason, mixed_precision_reason=precision_reason,
      recipe_epochs=recipe.train.epochs if recipe else resolved.train.epochs,
      # --time_budget: the seconds, and the lengths in epochs a budgeted plan scales with the
      # epochs it sets (app/train/budget.py): those the command line did not set.
      time_budget_seconds=budget_seconds(resolved.train),
      budget_scaled_keys=[key for key in _length_keys(resolved)
                          if not _set_by_command_line(resolved, recipe, key, overridden)],
      # The data-aware recipe's plan also sets how often to validate (a share of the time).
      budget_plans_validation=bool(resolved.data_aware and not _set_by_command_line(
          resolved, recipe, "train.validation_every_epochs", overridden)),
      data_aware=data_aware))
  return resolved
