"""app/serving/parity.py: the records of the export parity check, and the held-out images it uses."""

import numpy as np
import pytest
import tensorflow as tf

from app.serving import parity
from app.serving import saved_model


def test_compare_records_the_largest_difference_and_top1_agreement():
  reference = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
  close = reference + np.array([[4e-6, -4e-6, 0], [0, 0, 0]])
  assert parity.compare(close, reference, 1e-5) == {
      "images": 2, "max_abs_diff": parity.compare(close, reference, 1e-5)["max_abs_diff"],
      "tolerance": 1e-5, "top1_agreement": 1.0, "passed": True}
  assert abs(parity.compare(close, reference, 1e-5)["max_abs_diff"] - 4e-6) < 1e-12
  swapped = reference[:, ::-1]
  record = parity.compare(swapped, reference, 1e-5)
  assert not record["passed"] and record["top1_agreement"] == 0.0


def test_take_images_returns_the_first_images_as_uint8():
  images = np.arange(10 * 2 * 2 * 1, dtype=np.float32).reshape(10, 2, 2, 1) % 256
  dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(10))).batch(4)
  taken = parity.take_images(dataset, 6)
  assert taken.dtype == np.uint8 and taken.shape == (6, 2, 2, 1)
  np.testing.assert_array_equal(taken, images[:6].astype(np.uint8))
  assert len(parity.take_images(dataset, 64)) == 10  # a split smaller than asked: all of it


def test_non_square_copies_are_twice_as_wide_then_twice_as_tall():
  images = np.random.default_rng(0).integers(0, 256, (5, 4, 6, 1), np.uint8)
  wide, tall = parity.non_square(images)
  assert wide.shape == (3, 4, 12, 1) and tall.shape == (2, 8, 6, 1) and wide.dtype == np.uint8
  assert [copy.shape for copy in parity.non_square(images[:1])] == [(1, 4, 12, 1)]


def test_an_export_that_resizes_unlike_training_fails_the_check(tmp_path, make_tiny_model):
  """Issue 20 (9): an export that stretches, from a run that letterboxed (data.resize=pad)."""
  model = make_tiny_model()
  path = str(tmp_path / "model")
  saved_model.build_archive(model, ["ant", "bee", "cat"], "resize").write_out(path, verbose=False)
  images = np.random.default_rng(1).integers(0, 256, (8, 12, 12, 1), np.uint8)
  with pytest.raises(parity.ParityError, match="saved_model/serve_bytes/non_square"):
    parity.check_all(model, path, {}, images, resize="pad")
  checks = parity.check_all(model, path, {}, images, resize="resize")
  assert checks["saved_model/serve_bytes/non_square"]["images"] == 8
