"""app/data/images.py: decoding, channel conversion and the resize policies, shared by the input
pipeline and the serving graph."""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from app.data import images
from app.data.images import decode_and_fit as _decode
from app.serving import saved_model


def encoded(array, image_format):
  """`array` ((H, W) gray or (H, W, 3) RGB) as Pillow saves it in `image_format`."""
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format=image_format)
  return tf.constant(buffer.getvalue())


def png(array):
  return encoded(array, "PNG")


FORMATS = ["PNG", "JPEG", "BMP", "GIF"]
WIDE = np.full((20, 40, 3), 200, np.uint8)  # a wide, uniformly bright image
# 2 x 4, columns 10, 20, 30, 40: small enough to work each policy's pixels out by hand.
RAMP = np.tile(np.array([10, 20, 30, 40], np.uint8)[None, :, None], (2, 1, 3))


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


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("stored", ["gray", "rgb"])
@pytest.mark.parametrize("image_format", FORMATS)
def test_every_format_decodes_to_gray_and_to_colour(image_format, stored, channels):
  """decode_bmp takes channels 0, 3 or 4 only and a GIF decodes to RGB: channels=1 failed on both."""
  gray = np.full((6, 10), 120, np.uint8)  # one gray level: the same in every format and channels
  out = images.decode(encoded(gray if stored == "gray" else np.dstack([gray] * 3), image_format),
                      channels).numpy()
  assert out.shape == (6, 10, channels) and out.dtype == np.uint8
  assert np.abs(out.astype(int) - 120).max() <= 1  # rgb_to_grayscale's weights sum to 0.9999


def pixels_export(shape, directory, resize="resize"):
  """The loaded export of a model that returns its input pixels (as its "probabilities")."""
  model = keras.Sequential([keras.Input(shape), keras.layers.Flatten()])
  names = [str(k) for k in range(int(np.prod(shape)))]
  saved_model.build_archive(model, names, resize).write_out(str(directory / "model"),
                                                            verbose=False)
  return tf.saved_model.load(str(directory / "model"))


def test_the_serving_graph_decodes_every_format_for_a_grayscale_model(tmp_path):
  shape = (8, 12, 1)
  loaded = pixels_export(shape, tmp_path)
  colour = np.random.default_rng(5).integers(0, 256, (8, 12, 3), np.uint8)
  files = [encoded(colour, image_format) for image_format in FORMATS]
  output = loaded.signatures["serve_bytes"](image_bytes=tf.stack(files))["probabilities"].numpy()
  for row, data in zip(output, files):
    np.testing.assert_array_equal(row, _decode(data, shape).numpy().ravel().astype(np.float32))


@pytest.mark.parametrize("policy, rows", [
    ("resize", [[15, 35], [15, 35]]),  # bilinear, half-pixel centres: (10+20)/2, (30+40)/2
    ("crop", [[20, 30], [20, 30]]),  # the height already fits: the centre two columns
    ("pad", [[15, 35], [0, 0]]),  # scaled to 1 x 2, then a zero row below
])
def test_each_policy_gives_these_pixels_on_a_non_square_image(policy, rows):
  out = images.fit(tf.constant(RAMP), (2, 2, 3), policy).numpy()
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(out, np.repeat(np.array(rows, np.uint8)[..., None], 3, axis=-1))


def test_channels_of_decoded_images_are_converted():
  rgb = np.random.default_rng(0).integers(0, 256, (6, 9, 3), np.uint8)
  rgba = np.dstack([rgb, np.full((6, 9), 7, np.uint8)])
  np.testing.assert_array_equal(images.fit(tf.constant(rgba), (6, 9, 3)).numpy(), rgb)
  gray = rgb[..., :1]
  np.testing.assert_array_equal(images.fit(tf.constant(gray), (6, 9, 3)).numpy(),
                                np.repeat(gray, 3, axis=-1))
  colour = np.full((6, 9, 3), (10, 100, 200), np.uint8)  # luma 0.2989, 0.587, 0.114: 84.5
  assert (images.fit(tf.constant(colour), (6, 9, 1)).numpy() == 84).all()


def test_an_image_of_the_training_size_passes_untouched():
  image = np.random.default_rng(1).integers(0, 256, (5, 7, 3), np.uint8)
  for policy in ("resize", "crop", "pad"):
    np.testing.assert_array_equal(images.fit(tf.constant(image), (5, 7, 3), policy).numpy(), image)
  fractional = tf.constant(np.random.default_rng(2).uniform(-10, 300, (2, 5, 7, 3)), tf.float32)
  np.testing.assert_array_equal(images.resize(fractional, 5, 7).numpy(), fractional.numpy())


def test_resized_float_batches_are_clipped_and_rounded():
  batch = tf.constant(np.random.default_rng(3).uniform(-50, 300, (2, 9, 5, 1)), tf.float32)
  out = images.resize(batch, 4, 6).numpy()
  assert out.shape == (2, 4, 6, 1) and out.dtype == np.float32
  assert out.min() >= 0 and out.max() <= 255 and (out == np.round(out)).all()


def test_the_serving_graph_gives_the_pipelines_pixels(tmp_path):
  """An export of a model that returns its input pixels: every signature's "probabilities" are
  the pixels the training pipeline ("resize" policy) makes of the same non-square images."""
  shape = (8, 12, 3)
  loaded = pixels_export(shape, tmp_path)
  rng = np.random.default_rng(4)
  for size in ((21, 37), (45, 19), shape[:2]):
    image = rng.integers(0, 256, (*size, 3), np.uint8)
    expected = _decode(png(image), shape, "resize").numpy().reshape(1, -1).astype(np.float32)
    outputs = [
        loaded.signatures["serve_bytes"](image_bytes=png(image)[None]),
        loaded.signatures["serve_uint8"](images=tf.constant(image[None])),
        loaded.signatures["serving_default"](images=tf.constant(image[None], tf.float32)),
    ]
    for output in outputs:
      np.testing.assert_array_equal(output["probabilities"].numpy(), expected)


# === Issue 18: evaluation keeps a share of the centre (data.eval_crop) ===

def test_evaluation_policy_is_the_training_policy_unless_a_crop_keeps_less():
  assert images.evaluation_policy("crop", 1.0) == "crop"
  assert images.evaluation_policy("crop", 0.875) == "crop(0.875)"
  assert images.evaluation_policy("resize", 1.0) == "resize"
  assert images.parse_policy("crop(0.9)") == ("crop", 0.9)
  assert images.parse_policy("pad") == ("pad", 1.0)


def test_a_crop_keeping_half_the_centre_scales_that_half_to_the_side():
  # 40 x 80: the shorter side to 20 / 0.5 = 40 (the image as it is), its centre 20 x 20 taken.
  image = np.random.default_rng(6).integers(0, 256, (40, 80, 3), np.uint8)
  out = images.fit(tf.constant(image), (20, 20, 3), "crop(0.5)").numpy()
  np.testing.assert_array_equal(out, image[10:30, 30:50])
  # At the training size too: an image of 20 x 20 has its centre 10 x 10 scaled up, not passed.
  square = np.zeros((20, 20, 3), np.uint8)
  square[5:15, 5:15] = 255  # a bright centre half, dark border
  centre = images.fit(tf.constant(square), (20, 20, 3), "crop(0.5)").numpy()
  assert (centre[1:-1, 1:-1] == 255).all() and (centre > 128).all()  # the border row bilinear
  assert (images.fit(tf.constant(square), (20, 20, 3), "crop").numpy()[:5] == 0).all()


def test_the_serving_graph_keeps_the_share_of_the_centre_evaluation_keeps(tmp_path):
  shape = (8, 8, 3)
  loaded = pixels_export(shape, tmp_path, "crop(0.8)")
  rng = np.random.default_rng(7)
  for size in ((21, 37), (45, 19), shape[:2]):
    image = rng.integers(0, 256, (*size, 3), np.uint8)
    expected = _decode(png(image), shape, "crop(0.8)").numpy().reshape(1, -1).astype(np.float32)
    assert not np.array_equal(expected, _decode(png(image), shape, "crop").numpy().reshape(1, -1))
    for output in (loaded.signatures["serve_bytes"](image_bytes=png(image)[None]),
                   loaded.signatures["serve_uint8"](images=tf.constant(image[None]))):
      np.testing.assert_array_equal(output["probabilities"].numpy(), expected)


# === Issue 19 (14, 16): sizes read from headers, and bounded by memory ===


def test_stored_sizes_reads_headers_without_decoding(tmp_path):
  """A 16000 x 16000 header is measured (Pillow's decompression-bomb guard off, no pixels read);
  a file that is no image is None."""
  import struct  # pylint: disable=g-import-not-at-top
  import zlib  # pylint: disable=g-import-not-at-top
  chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data
                              + struct.pack(">I", zlib.crc32(kind + data)))
  header = struct.pack(">IIBBBBB", 16000, 12000, 8, 2, 0, 0, 0)  # width, height, RGB 8-bit
  (tmp_path / "huge.png").write_bytes(  # the signature, IHDR and an empty IDAT: no pixels at all
      b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b""))
  Image.new("L", (5, 3)).save(tmp_path / "small.gif")
  (tmp_path / "junk.jpg").write_bytes(b"junk")
  assert images.stored_sizes([str(tmp_path / n) for n in ("huge.png", "small.gif", "junk.jpg")]) \
      == [(12000, 16000), (3, 5), None]
  assert Image.MAX_IMAGE_PIXELS  # the guard is back on


def test_a_batch_or_resized_data_set_too_large_for_memory_is_refused(monkeypatch):
  """Fashion-MNIST resized to 100000 x 100000 was a numpy MemoryError traceback; a folder of
  huge photos a ResourceExhausted one."""
  from app.core import memory  # pylint: disable=g-import-not-at-top
  from app.core.errors import UsageError  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(memory, "machine_bytes", lambda: 2**30)
  with pytest.raises(UsageError, match=r"^one batch of 128 float32 images of 16000x16000x3 \(their "
                     r"size as stored\) needs at least 366.2 GB of memory, more than this "
                     r"machine's 1.0 GB; pass --config.data.image_size=SIDE to resize them \(or lower "
                     r"--batch_size\)$"):
    images.require_batch_fits((16000, 16000, 3), 128, as_stored=True)
  images.require_batch_fits((224, 224, 3), 128)
  with pytest.raises(UsageError, match=r"^2 images resized to 30000x30000x1 in memory needs at "
                     r"least 1.7 GB .*; lower --config.data.image_size$"):
    images.fit_arrays(np.zeros((2, 28, 28, 1), np.uint8), (30000, 30000, 1))
