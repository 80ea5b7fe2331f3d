"""The data-aware recipe's choices (configs/data_aware.py, config.data_aware=True): the keys a
recipe cannot know before it sees the data, chosen from a survey of it (app/data/survey.py) and
the run's time budget, each with the reason, which the run logs and saves (data_aware.json).

Two profiles, by the images' median shorter side as stored:
- small images (<= SMALL_SIDE pixels: CIFAR-like) train at their own size with the airbench
  ingredients of configs/cifar10_airbench.py (the hand-tuned speed recipe);
- photos train at a square side chosen from the data and the budget (never above the photos'
  median shorter side, so nothing is upsampled for most of them), each photo resized by its
  shorter side and centre-cropped (data.resize=crop: the aspect ratio kept; evaluated on 0.9 of
  the centre, data.eval_crop), with the photo augmentations (a random-resized crop, flips,
  brightness and contrast, MixUp) and ResNet-9.
Both take a batch that gives an epoch at least MIN_STEPS_PER_EPOCH steps on small data, and the
learning rate by the linear scaling rule from the profile's rate at its reference batch.

Only keys that the command line leaves as the recipe wrote them are chosen (app.config.resolve
compares with the recipe as written): --config.data.image_size=96 stays 96.
"""

import math

from app.data.survey import Survey

SMALL_SIDE = 40
MIN_STEPS_PER_EPOCH = 8
PHOTO_SIDES = (64, 96, 112, 128, 144, 160, 192, 224)
# Epochs a photo run gets at least before a larger side is taken: on a few hundred photos from
# scratch, passes with fresh augmentations matter more than pixels (the hand recipe of
# ../shared/datasets/README.md: 0.77 on hymenoptera's val/ at 128 px after 40 epochs).
PHOTO_MIN_EPOCHS = 60
# ResNet-9 width 16 at 128x128: training images per second per CPU core, by the run's resolved
# precision (scaled by the cores here). The cost per image grows with the pixels; the budgeted
# run measures its own speed before it plans its length (app/train/budget.py), so this only
# picks the side.
# - mixed_bfloat16: 120 images/s at batch 32 on the 2-core AMX Xeon (docs/BENCHMARKS.md);
# - float32: ~14 images/s at 160 px, batch 16, on the 2-core AVX2-only EPYC, where `auto` trains
#   float32 ("Your own photos on the AVX2 machine", docs/BENCHMARKS.md): 22 at 128 px. With the
#   bfloat16 figure there, 160 px was chosen for 60 epochs and 12-16 fitted.
# - mixed_float16 (a GPU): not measured; the bfloat16 CPU's figure, a floor for any such GPU.
PHOTO_IMAGES_PER_SECOND_AT_128_PER_CORE = {"mixed_bfloat16": 60.0, "float32": 11.0,
                                           "mixed_float16": 60.0}
# The share of a budget the training steps get in the side's estimate (start-up, evaluations,
# checkpoints and the export take the rest).
TRAINING_SHARE = 0.7
# The budget the side is chosen for when a data-aware run has none (--time_budget=""): the
# recipe's own default budget (configs/data_aware.py).
NOMINAL_BUDGET_SECONDS = 300.0

# Keys each profile sets (what the profile is, beyond the recipe's shared values): the same keys
# in both, so neither keeps a value the other would have set.
SMALL_IMAGES = {  # configs/cifar10_airbench.py's ingredients
    "data.resize": "crop", "data.augment": "flip|crop(pad=2)",
    "model.name": "airbench", "model.width": 32, "model.dirac": True, "model.tta": "flip",
    "model.dropout": 0.0, "data.eval_crop": 1.0,
    "train.label_smoothing": 0.2,
    "optim.learning_rate": 0.4, "optim.reference_batch_size": 512, "optim.weight_decay": 0.02,
}
# Flip test-time augmentation for photos: on hymenoptera's val/ (--time_budget=5m, the same
# exported weights evaluated with and without it, docs/BENCHMARKS.md) +2.0, +0.7, +0.7 points on
# seeds 0-2 and +1.3 on another seed 0 run, for one more view per evaluated or served image.
# Regularization: ~120 epochs of a few hundred photos overfit (training accuracy 0.98-1.0). On
# hymenoptera's val/ at --time_budget=5m (2 seeds each, docs/BENCHMARKS.md, 2026-12-05), against
# 0.725 (0.725-0.725) with weight decay 5e-4 and no dropout: decay 5e-3 0.765, dropout 0.3
# 0.775, decay 5e-3 + dropout 0.3 0.761, decay 2e-2 + dropout 0.3 0.765, decay 5e-3 + dropout
# 0.5 0.781 (0.765-0.797), taken. (Keras's decay is decoupled, w -= rate * decay * w: 5e-3 at
# rate 0.05 is PyTorch's coupled 5e-4 under momentum 0.9, about.)
# MixUp (alpha 0.2) and ResNet-9 at twice the width: the same, 3 seeds each, interleaved, on a
# 2-core Zen EPYC with avx512_bf16 (2026-12-06, docs/BENCHMARKS.md): the recipe before 0.739
# (0.725-0.784), width 32 at 112 px 0.771 (0.752-0.778), mixup 0.784 (0.771-0.810), taken.
# Evaluation on 0.9 of the centre (data.eval_crop; the random-resized crops show objects larger
# than the whole centre does): the same weights of those 9 runs evaluated both ways on val/,
# +0.65 points (one photo of 153) in the median, -1 to +2 photos: better in 7, level in 1, worse
# in 1 (0.875 and 0.8 did no better; a test side 1.15-1.3x the training side, mixed).
PHOTOS = {
    "data.resize": "crop",
    "data.augment": "resized_crop(scale=0.35)|flip|color_jitter(brightness=0.2, contrast=0.2)"
                    "|mixup(alpha=0.2)",
    "model.name": "resnet9", "model.width": 16, "model.dirac": False, "model.tta": "flip",
    "model.dropout": 0.5, "data.eval_crop": 0.9,
    "train.label_smoothing": 0.1,
    "optim.learning_rate": 0.05, "optim.reference_batch_size": 32, "optim.weight_decay": 5e-3,
}
# Every key the choice may set: what app.config.resolve leaves alone when the command line set it.
CHOSEN_KEYS = ("name", "data.image_size", "train.batch_size", *sorted(set(SMALL_IMAGES) | set(PHOTOS)))


def _power_of_two_at_most(value):
  return 2 ** int(math.floor(math.log2(max(value, 1))))


def _batch_size(num_train, smallest, largest):
  """The largest power of two in [smallest, largest] that gives an epoch of num_train images at
  least MIN_STEPS_PER_EPOCH steps (smallest when none does)."""
  return min(largest, max(smallest, _power_of_two_at_most(num_train / MIN_STEPS_PER_EPOCH)))


def _photo_side(survey, budget_seconds, cores, precision):
  """(side, why): the largest of PHOTO_SIDES at most the photos' median shorter side at which the
  budget's training share allows PHOTO_MIN_EPOCHS epochs at the speed estimated for `precision`."""
  ceiling = survey.median_shorter_side
  speed_at_128 = PHOTO_IMAGES_PER_SECOND_AT_128_PER_CORE[precision] * cores
  fits = lambda side: (PHOTO_MIN_EPOCHS * survey.num_train / (speed_at_128 * (128 / side) ** 2)
                       <= TRAINING_SHARE * budget_seconds)
  candidates = [side for side in PHOTO_SIDES if side <= ceiling] or [PHOTO_SIDES[0]]
  fitting = [side for side in candidates if fits(side)]
  side = fitting[-1] if fitting else candidates[0]
  why = (f"the largest of {', '.join(map(str, PHOTO_SIDES))} px at most the photos' median "
         f"shorter side ({ceiling} px) at which {budget_seconds:.0f} s allow {PHOTO_MIN_EPOCHS} "
         f"epochs of {survey.num_train} images at an estimated {speed_at_128:.0f} images/s at "
         f"128 px on {cores} cores in {precision}")
  if not fitting:
    why = (f"the smallest side: even {side} px does not allow {PHOTO_MIN_EPOCHS} epochs of "
           f"{survey.num_train} images in {budget_seconds:.0f} s at the estimated speed")
  return side, why


def choose(survey: Survey, budget_seconds, cores, precision):
  """{key: (value, why)} for every key of CHOSEN_KEYS, from `survey` and the run's time budget
  in seconds (`cores`: the CPU cores the speed estimate scales with; `precision`: the run's
  resolved mixed-precision policy, which sets it)."""
  side_stored = survey.median_shorter_side
  chosen = {"name": (survey.name, "named after the data (pass --config.name to name it)")}
  if side_stored <= SMALL_SIDE:
    profile, why = SMALL_IMAGES, (f"small images (median shorter side {side_stored} px <= "
                                  f"{SMALL_SIDE}): configs/cifar10_airbench.py's ingredients")
    chosen["data.image_size"] = (side_stored, "the images' own size (median shorter side)")
    batch = _batch_size(survey.num_train, 64, 512)
  else:
    profile, why = PHOTOS, (f"photos (median shorter side {side_stored} px > {SMALL_SIDE}): "
                            "ResNet-9, shorter side resized and centre-cropped, photo augmentations")
    chosen["data.image_size"] = _photo_side(survey, budget_seconds, cores, precision)
    batch = _batch_size(survey.num_train, 16, 256)
  chosen["train.batch_size"] = (batch, f"the largest power of two giving {survey.num_train} "
                                f"training images >= {MIN_STEPS_PER_EPOCH} steps per epoch")
  for key, value in profile.items():
    chosen[key] = (value, why)
  return chosen
