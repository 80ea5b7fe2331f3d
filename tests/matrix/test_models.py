"""Matrix: every model family x {float32, mixed_bfloat16} x {plain, test-time augmentation},
pairwise, each case a real run on 32x32 photos (train one epoch, evaluate, export the SavedModel,
whose parity check runs every signature against the trained model on held-out images).

The four keras.applications backbones are one family here (app.models.applications'
build_application: the same head, stem, batch norms and export path), exported as
mobilenet_v3_small, the cheapest; each of them builds, trains a step under both precisions,
saves and reloads in tests/models/test_zoo.py (an efficientnet_b0 export costs ~75 s of the
suite's 15 minutes)."""

import json
import os

import numpy as np
import pytest

from app.models import MODELS
from app.models.applications import build_application
from tests.matrix.conftest import case_id, pairwise, run, tiny_config

# The families (aliases such as resnet20 are presets of these), small where a width or depth
# key allows, so a case is a few seconds.
FAMILIES = {
    "airbench": {"model.width": 8}, "simple_cnn": {"model.width": 4}, "vgg": {"model.width": 4},
    "resnet": {"model.width": 4, "model.depth": 8}, "resnet9": {"model.width": 4},
    "preact_resnet": {"model.width": 4}, "wide_resnet": {"model.width": 8, "model.depth": 10},
    "mobilenet_v3_small": {},
}
CASES = pairwise(family=list(FAMILIES), precision=("mixed_bfloat16", "float32"),
                 tta=("flip_translate", ""))
for number, case in enumerate(CASES):  # both TTA forms appear
  if case["tta"] and number % 2:
    case["tta"] = "flip"


def test_the_matrix_covers_every_registered_family():
  """A registered name is a family, a preset (functools.partial) of one, or a keras.applications
  backbone; a new family must join the matrix."""
  covered = {MODELS.get(name) for name in FAMILIES} | {build_application}
  missing = [name for name in MODELS.names() if MODELS.get(name) not in covered
             and getattr(MODELS.get(name), "func", None) not in covered]
  assert not missing, f"families missing from the matrix: {missing}"


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
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
