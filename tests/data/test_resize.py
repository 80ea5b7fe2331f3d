"""Resize policies for images whose size differs from the training size."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from app.data.pipeline import _decode


def png(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  return tf.constant(buffer.getvalue())


WIDE = np.full((20, 40, 3), 200, np.uint8)  # a wide, uniformly bright image


@pytest.mark.parametrize("policy", ["resize", "crop", "pad"])
def test_every_policy_gives_the_training_shape(policy):
  out = _decode(png(WIDE), (16, 16, 3), policy).numpy()
  assert out.shape == (16, 16, 3) and out.dtype == np.uint8


def test_pad_keeps_the_aspect_ratio_with_black_bars():
  out = _decode(png(WIDE), (16, 16, 3), "pad").numpy()
  assert (out[:3] == 0).all() and (out[-3:] == 0).all() and (out[8] == 200).all()


def test_crop_fills_the_frame_and_stretch_does_too():
  for policy in ("crop", "resize"):
    assert (_decode(png(WIDE), (16, 16, 3), policy).numpy() == 200).all()


def test_crop_takes_the_centre():
  image = np.zeros((20, 40, 3), np.uint8)
  image[:, 10:30] = 255  # a bright centre square, dark sides
  out = _decode(png(image), (10, 10, 3), "crop").numpy()
  assert (out == 255).all()


def test_grayscale_and_alpha_become_the_requested_channels():
  gray = np.full((8, 8), 90, np.uint8)
  rgba = np.dstack([np.full((8, 8, 3), 50, np.uint8), np.full((8, 8), 128, np.uint8)])
  assert (_decode(png(gray), (8, 8, 3)).numpy() == 90).all()
  assert _decode(png(rgba), (8, 8, 3)).numpy().shape == (8, 8, 3)
  assert _decode(png(np.full((8, 8, 3), 30, np.uint8)), (8, 8, 1)).numpy().shape == (8, 8, 1)
