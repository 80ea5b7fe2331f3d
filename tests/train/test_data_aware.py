"""The data-aware recipe's choices (app/train/data_aware.py), the survey they read
(app/data/survey.py) and how resolve() applies them (app/config.py)."""

import json

import ml_collections
import numpy as np
import pytest
from PIL import Image

from app import config as config_lib
from app.core.errors import UsageError
from app.data import survey as survey_lib
from app.train import data_aware
from configs import data_aware as data_aware_recipe


def _survey(side, num_train=220, name="photos"):
  return survey_lib.Survey(name=name, num_train=num_train, num_classes=2,
                           shorter_sides=[side] * 5, median_shape=(side, side * 4 // 3),
                           channels=3, description="test")


def test_photos_get_resnet9_at_a_side_within_their_size_and_the_budget():
  chosen = data_aware.choose(_survey(333), 300.0, 2, "mixed_bfloat16")
  assert chosen["model.name"][0] == "resnet9" and chosen["data.resize"][0] == "crop"
  assert "resized_crop" in chosen["data.augment"][0]
  assert chosen["model.tta"][0] == "flip"  # its evaluations and export average the mirror view
  side = chosen["data.image_size"][0]
  assert side in data_aware.PHOTO_SIDES and side <= 333
  # A shorter budget never gets a larger side; photos never get one above their own.
  assert data_aware.choose(_survey(333), 60.0, 2, "mixed_bfloat16")["data.image_size"][0] <= side
  assert data_aware.choose(_survey(100), 3600.0, 2, "mixed_bfloat16")["data.image_size"][0] <= 100
  # Enough steps per epoch on small data: 220 images -> batch 16 (13 steps).
  assert chosen["train.batch_size"][0] == 16
  assert data_aware.choose(_survey(333, num_train=50000), 300.0, 2, "mixed_bfloat16")["train.batch_size"][0] == 256
  assert chosen["name"][0] == "photos"
  assert set(chosen) == set(data_aware.CHOSEN_KEYS)


def test_a_float32_run_gets_the_side_its_slower_steps_allow():
  # The speed the side is chosen for is the run's precision's: float32 where bfloat16 would be
  # emulated trains ~5x slower, so the same budget fits the same epochs only at a smaller side.
  in_bfloat16 = data_aware.choose(_survey(333), 300.0, 2, "mixed_bfloat16")["data.image_size"]
  in_float32 = data_aware.choose(_survey(333), 300.0, 2, "float32")["data.image_size"]
  assert in_float32[0] < in_bfloat16[0]
  assert "in float32" in in_float32[1] and "in mixed_bfloat16" in in_bfloat16[1]


def test_small_images_get_the_airbench_ingredients_at_their_own_size():
  chosen = data_aware.choose(_survey(32, num_train=45000), 600.0, 2, "float32")
  assert chosen["data.image_size"][0] == 32 and chosen["model.name"][0] == "airbench"
  assert chosen["train.batch_size"][0] == 512
  assert set(chosen) == set(data_aware.CHOSEN_KEYS)


def _folder(root, sizes, per_class=6):
  rng = np.random.default_rng(0)
  for label in ("ants", "bees"):
    (root / "train" / label).mkdir(parents=True)
    for index in range(per_class):
      height, width = sizes[index % len(sizes)]
      pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
      Image.fromarray(pixels).save(root / "train" / label / f"{index}.jpg")
  return root


def test_resolve_chooses_from_the_data_and_keeps_what_the_command_line_set(tmp_path):
  folder = _folder(tmp_path / "my photos", [(60, 80), (90, 120), (75, 100)])
  recipe = data_aware_recipe.get_config()
  config = data_aware_recipe.get_config()
  config.data.data_dir = str(folder)
  config.model.width = 8  # as --config.model.width=8 would
  resolved = config_lib.resolve(config, recipe=recipe)
  assert resolved.name == "my_photos"  # the folder's name, fit to name folders
  assert resolved.data.image_size == 64  # <= the median shorter side, 75
  assert resolved.model.width == 8 and resolved.model.name == "resnet9"
  choices = resolved.derived.data_aware.to_dict()
  assert {c["key"] for c in choices["chosen"]} == set(data_aware.CHOSEN_KEYS) - {"model.width"}
  assert choices["survey"]["median_shape"] == [75, 100]
  json.dumps(choices)  # data_aware.json
  assert resolved.derived.time_budget_seconds == 300.0  # the recipe's 5m
  # The side was chosen for the precision the run trains in (auto resolved before the choice).
  side_why = next(c["why"] for c in choices["chosen"] if c["key"] == "data.image_size")
  assert resolved.runtime.mixed_precision in side_why


def test_photos_evaluate_on_a_share_of_the_centre_unless_the_user_resizes_otherwise(tmp_path):
  """data.eval_crop (issue 18): the photo profile's 0.9 of the centre, left at the whole image
  when the command line chose another resize policy (a share of a centre crop means nothing
  there), and the user's own value kept."""
  folder = str(_folder(tmp_path / "p", [(60, 80), (90, 120)]))
  recipe = data_aware_recipe.get_config()
  resolved = lambda **data: config_lib.resolve(
      ml_collections.ConfigDict(dict(recipe.to_dict(), data=dict(
          recipe.data.to_dict(), data_dir=folder, **data))), recipe=recipe).data
  assert (resolved().resize, resolved().eval_crop) == ("crop", data_aware.PHOTOS["data.eval_crop"])
  assert (resolved(resize="pad").resize, resolved(resize="pad").eval_crop) == ("pad", 1.0)
  assert resolved(eval_crop=0.8).eval_crop == 0.8


def test_budget_flags_checked_up_front(tmp_path):
  recipe = data_aware_recipe.get_config()
  config = ml_collections.ConfigDict(recipe.to_dict())
  config.data.data_dir = str(_folder(tmp_path / "p", [(40, 40)], per_class=2))
  config.train.time_budget = "5x"
  with pytest.raises(UsageError, match="not a duration; pass e.g. --time_budget=5m"):
    config_lib.resolve(config, recipe=recipe)
  config.train.time_budget, config.train.epochs = "1m", 7
  with pytest.raises(UsageError, match="drop --epochs=7"):
    config_lib.resolve(config, recipe=recipe)
  config.train.epochs, config.train.cv_folds = recipe.train.epochs, 3
  with pytest.raises(UsageError, match="cross-validation"):
    config_lib.resolve(config, recipe=recipe)
