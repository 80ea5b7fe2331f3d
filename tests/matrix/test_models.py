"""Matrix: every model family x {float32, mixed_bfloat16} x {plain, test-time augmentation},
pairwise, each case a real run on 32x32 photos (train one epoch, evaluate, export the SavedModel,
whose parity check runs every signature against the trained model on held-out images).

The four keras.applications backbones share one builder (app.models.applications'
build_application: the same head, stem, batch norms and export path), so they are one case each,
their precision and TTA taken in turn: each backbone trains, exports and passes parity, and the
builder meets both precisions and every TTA form (tests/models/test_zoo.py trains each backbone a
step under both precisions). Each costs half a minute or more, mostly export and parity."""

import json
import os

import numpy as np
import pytest

from app.models import MODELS
from app.models.applications import APPLICATIONS, build_application
from tests.matrix.conftest import case_id, pairwise, run, tiny_config

# The families (aliases such as resnet20 are presets of these), small where a width or depth
# key allows, so a case is a few seconds.
FAMILIES = {
    "airbench": {"model.width": 8}, "simple_cnn": {"model.width": 4}, "vgg": {"model.width": 4},
    "resnet": {"model.width": 4, "model.depth": 8}, "resnet9": {"model.width": 4},
    "preact_resnet": {"model.width": 4}, "wide_resnet": {"model.width": 8, "model.depth": 10},
}
CASES = pairwise(family=list(FAMILIES), precision=("mixed_bfloat16", "float32"),
                 tta=("flip_translate", ""))
for number, case in enumerate(CASES):  # both TTA forms appear
  if case["tta"] and number % 2:
    case["tta"] = "flip"
# The backbones, one case each: together they give the shared builder both precisions and every
# TTA form.
BACKBONES = {"mobilenet_v3_small": {}, "mobilenet_v2": {"model.width": 16},  # alpha 0.5
             "efficientnet_b0": {}, "mobilenet_v3_large": {}}
CASES += [dict(family=name, precision=precision, tta=tta) for name, precision, tta in zip(
    BACKBONES, ("float32", "mixed_bfloat16", "float32", "mixed_bfloat16"),
    ("flip_translate", "flip", "", ""))]
FAMILIES.update(BACKBONES)


def test_the_matrix_covers_every_registered_family():
  """A registered name is a family, a preset (functools.partial) of one, or a keras.applications
  backbone; a new family must join the matrix."""
  covered = {MODELS.get(name) for name in FAMILIES} | {build_application}
  missing = [name for name in MODELS.names() if MODELS.get(name) not in covered
             and getattr(MODELS.get(name), "func", None) not in covered]
  assert not missing, f"families missing from the matrix: {missing}"
  assert set(BACKBONES) == set(APPLICATIONS), set(APPLICATIONS) ^ set(BACKBONES)


# The keras.applications backbones' cases take half a minute or more each (export and parity).
PARAMS = [pytest.param(case, id=case_id(case), marks=[pytest.mark.slow] * (
    case["family"] in BACKBONES)) for case in CASES]


@pytest.mark.parametrize("case", PARAMS)
def test_family_precision_tta_train_export_parity(case, tmp_path, matrix_data, restore_precision):
  config = tiny_config(tmp_path, matrix_data["folder"], **{
      "model.name": case["family"], "model.tta": case["tta"], "data.image_size": 32,
      "data.limit": 0, "runtime.mixed_precision": case["precision"],
      "data.augment": "flip", **FAMILIES[case["family"]]})
  metrics = run(config)
  assert np.isfinite(metrics["test_loss"])
  with open(os.path.join(metrics["export_path"], "assets.extra", "metadata.json")) as f:
    metadata = json.load(f)
  assert metadata["dtype"] == "float32" and metadata["parity"], metadata.get("parity")
  assert metadata["config"]["model"]["tta"] == case["tta"]
