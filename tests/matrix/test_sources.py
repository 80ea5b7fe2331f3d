"""Matrix: every source x {RGB, grayscale} x {resize, crop, pad} x {float32, mixed_bfloat16},
pairwise, each case a real run (train one epoch, evaluate, export with parity) and then predictions through
the export's serve_bytes signature (what app.predict and TF Serving clients call) on non-square
image files, which must give the top-1 class the training pipeline's decode + resize gives with the
same weights: one resize policy for training and serving. Each case also carries one host and one
device augmentation, so every op runs through a real pipeline and model in some case."""

import os

import numpy as np
import pytest

from tests.matrix.conftest import case_id, pairwise, run, tiny_config

HOST_OPS = ("flip", "crop(pad=3)", "crop(pad=8, fill='reflect')", "rotate(factor=0.05)",
            "zoom(factor=0.1)", "translate(factor=0.1)",
            "color_jitter(brightness=0.2, contrast=0.2, saturation=0.3, hue=0.05)",
            "erase(factor=0.5)", "randaugment(num_ops=2, factor=0.5)", "mixup(alpha=0.2)",
            "cutmix(factor=1.0)", "resized_crop(scale=0.35)", "flip|crop(pad=2)|mixup(alpha=0.2)")
DEVICE_OPS = ("flip", "rotate(factor=0.03)", "zoom(factor=0.1)", "translate(factor=0.1)",
              "color_jitter(brightness=0.2, contrast=0.2, saturation=0.3, hue=0.05)",
              "erase(factor=0.5)", "randaugment(num_ops=1, factor=0.3)")
GRAY_COLOR_JITTER = "color_jitter(brightness=0.2, contrast=0.2)"  # saturation and hue need RGB
CASES = pairwise(source=("folder", "tfrecord", "idx", "tfds", "fashion_mnist"),
                 channels=(3, 1), resize=("resize", "crop", "pad"),
                 precision=("mixed_bfloat16", "float32"))
for number, case in enumerate(CASES):
  case["host"] = HOST_OPS[number % len(HOST_OPS)]
  case["device"] = DEVICE_OPS[number % len(DEVICE_OPS)]
  for where in ("host", "device"):
    if case["channels"] == 1 and case[where].startswith("color_jitter"):
      case[where] = GRAY_COLOR_JITTER


def _check_files(tmp_path, source, matrix_data):
  """Image files to predict on: the photo folder's test files (non-square, four formats), or the
  28x28 sources' test images written as PNG."""
  if source in ("folder", "tfrecord"):
    root = os.path.join(matrix_data["folder"][1], "test")
    return sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from app.data import sources  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  data = default.get_config().data
  data.name, data.data_dir = matrix_data[source]
  images = sources.load(data).test.images[:12, ..., 0]
  paths = [str(tmp_path / f"check-{i}.png") for i in range(len(images))]
  for path, image in zip(paths, images):
    Image.fromarray(image).save(path)
  return paths


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_source_channels_resize_precision_train_export_predict(case, tmp_path, matrix_data,
                                                               restore_precision):
  from app.data import pipeline  # pylint: disable=g-import-not-at-top
  from app.data.sources import Examples  # pylint: disable=g-import-not-at-top
  from app.models import load_model  # pylint: disable=g-import-not-at-top
  from app.serving import predict, saved_model  # pylint: disable=g-import-not-at-top
  config = tiny_config(tmp_path, matrix_data[case["source"]], **{
      "data.channels": case["channels"], "data.resize": case["resize"],
      "data.augment": case["host"], "data.augment_on_device": case["device"],
      "runtime.mixed_precision": case["precision"]})
  metrics = run(config)
  assert np.isfinite(metrics["test_loss"]) and metrics["epochs_completed"] == 1
  loaded, metadata = saved_model.load_export(metrics["export_path"])
  assert metadata["input_shape"] == [16, 16, case["channels"]]

  files = _check_files(tmp_path, case["source"], matrix_data)
  classes = len(metadata["class_names"])
  served = np.array([sorted(p["probability"] for p in row["predictions"] if p["class_id"] == k)
                     for row in predict.predict_files(loaded, metadata, files, top_k=classes)
                     for k in range(classes)]).reshape(len(files), classes)
  # The export computes in float32 whatever the training precision: compare with the same.
  model = saved_model.float32_model(
      load_model(os.path.join(config.output_dir, "checkpoints", "last.keras")))
  examples = Examples(labels=np.zeros(len(files), np.int32), paths=np.asarray(files))
  batches = pipeline.ordered_batches(examples, (16, 16, case["channels"]), 64, cache=False,
                                     resize=case["resize"])
  trained = np.concatenate([model.predict(images.numpy().astype(np.float32), verbose=0)
                            for images, _ in batches])
  agreement = float(np.mean(served.argmax(-1) == trained.argmax(-1)))
  assert agreement == 1.0, f"export and training pipeline agree on top-1 for {agreement:.0%}"
  np.testing.assert_allclose(served, trained, atol=1e-4)


@pytest.mark.parametrize("source, keys, message", [
    ("fashion_mnist", {"data.augment_on_device": "color_jitter(saturation=0.2)"},
     "augmentation color_jitter with saturation or hue needs RGB images"),
    ("folder", {"data.channels": 1, "data.augment": "color_jitter(hue=0.1)"},
     "augmentation color_jitter with saturation or hue needs RGB images"),
    ("idx", {"data.augment": "crop(pad=16, fill='reflect')"},
     "needs pad < the images' shorter side, 16 pixels"),
])
def test_pairs_that_cannot_work_are_refused_before_the_run_starts(source, keys, message, tmp_path,
                                                                  matrix_data, restore_precision):
  from app.core.errors import UsageError  # pylint: disable=g-import-not-at-top
  config = tiny_config(tmp_path, matrix_data[source], **keys)
  with pytest.raises(UsageError, match=message):
    run(config)
  assert not os.path.exists(config.output_dir) and not os.path.exists(config.export.dir)
