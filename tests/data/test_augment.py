"""app/data/augment.py: each op eagerly and inside tf.data, what its outputs may be, the parser."""

import numpy as np
import pytest
import tensorflow as tf

from app.data import augment
from app.core.errors import UsageError


@pytest.fixture(scope="module")
def images():
  """16 distinct images with no zero pixels, so a shifted window of the padding is recognisable."""
  rng = np.random.default_rng(0)
  return rng.integers(1, 256, size=(16, 6, 7, 3), dtype=np.uint8)


def eagerly(op, images):
  return op(tf.constant(images)).numpy()


def in_dataset(op, images):
  """The op as the pipeline runs it: traced inside Dataset.map (graph mode, unknown batch size)."""
  ds = tf.data.Dataset.from_tensor_slices(images).batch(len(images)).map(op)
  return next(iter(ds)).numpy()


RUNNERS = pytest.mark.parametrize("run", [eagerly, in_dataset], ids=["eager", "dataset"])


@RUNNERS
def test_flip_gives_each_image_or_its_mirror(images, run):
  out = run(augment.flip, images)
  assert out.shape == images.shape and out.dtype == np.uint8
  mirrored = 0
  for image, result in zip(images, out):
    if np.array_equal(result, image[:, ::-1]):
      mirrored += 1
    else:
      np.testing.assert_array_equal(result, image)
  assert 0 < mirrored < len(images)  # per-image randomness; fails with chance 2 / 2**16


def windows(image, pad, fill="zero"):
  """Every translation by up to `pad` pixels of `image`, the border filled with zeros (or the
  reflected edge, fill="reflect")."""
  height, width = image.shape[:2]
  padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)],
                  mode="reflect" if fill == "reflect" else "constant")
  return {(top, left): padded[top:top + height, left:left + width]
          for top in range(2 * pad + 1) for left in range(2 * pad + 1)}


@RUNNERS
def test_crop_gives_each_image_a_translated_window(images, run):
  pad = 2
  out = run(lambda x: augment.crop(x, pad=pad), images)
  assert out.shape == images.shape and out.dtype == np.uint8
  offsets = []
  for image, result in zip(images, out):
    found = [offset for offset, window in windows(image, pad).items()
             if np.array_equal(result, window)]
    assert len(found) == 1, "output is not a zero-padded translation of its input"
    offsets.append(found[0])
  assert len(set(offsets)) > 1  # per-image offsets, not one for the whole batch


@RUNNERS
@pytest.mark.parametrize("spec, mirrored", [("crop(pad=2, fill='reflect')", False),
                                            ("flip|crop(pad=2, fill='reflect')", True)])
def test_reflect_crop_windows_the_reflection_padded_image(images, run, spec, mirrored):
  out = run(augment.parse(spec), images)
  for image, result in zip(images, out):
    candidates = list(windows(image, 2, "reflect").values())
    if mirrored:
      candidates += list(windows(image[:, ::-1], 2, "reflect").values())
    assert any(np.array_equal(result, c) for c in candidates)
  zero_filled = [w for image in images for w in windows(image, 2).values()]
  assert not all(any(np.array_equal(r, w) for w in zero_filled) for r in out)  # not black borders


def test_crop_pad_zero_is_identity(images):
  np.testing.assert_array_equal(eagerly(lambda x: augment.crop(x, pad=0), images), images)


@RUNNERS
def test_parse_applies_ops_in_order(images, run):
  out = run(augment.parse("flip|crop(pad=4)"), images)
  assert out.shape == images.shape and out.dtype == np.float32  # uint8 in, float32 out
  for image, result in zip(images, out):
    candidates = list(windows(image, 4).values()) + list(windows(image[:, ::-1], 4).values())
    assert any(np.array_equal(result, c) for c in candidates)


@pytest.mark.parametrize("spec", ["", " ", "|"])
def test_parse_empty_is_identity(images, spec):
  np.testing.assert_array_equal(eagerly(augment.parse(spec), images), images)


def test_parse_accepts_spaces():
  augment.parse(" flip | crop( pad = 2 ) ")


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown augmentation 'nope'; choose one of: color_jitter, crop, cutmix"),
    ("flip|nope", "unknown augmentation"),
    ("crop(4)", "name\\(key=value\\)"),
    ("crop(size=3)", "size"),
    ("crop(fill='wrap')", "fill must be one of zero, reflect"),
    ("crop(pad=-4)", "pad must be a whole number of pixels >= 0; received -4"),
    ("crop(pad=2.5)", "pad must be a whole number of pixels >= 0; received 2.5"),
    ("flip(", "cannot read augmentation"),
    ("crop(pad=x)", "cannot read augmentation"),
    ("flip.x", "cannot read augmentation"),
])
def test_parse_refuses(spec, message):
  with pytest.raises(UsageError, match=message):
    augment.parse(spec)


def test_terms_build_the_augmenter_parse_gives(images):
  """resolve() keeps parse_terms()'s terms; build() from them gives parse()'s ops and output."""
  spec = "flip|crop(pad=2, fill='reflect')|erase(factor=0.5)"
  terms = augment.parse_terms(spec)
  assert terms == [["flip", {}], ["crop", {"pad": 2, "fill": "reflect"}], ["erase", {"factor": 0.5}]]
  built, parsed = augment.build(terms), augment.parse(spec)
  assert [op.name for op in built.ops] == [op.name for op in parsed.ops] == ["flip+crop", "erase"]
  seed = tf.constant([3, 4], tf.int64)
  first = augment.build(augment.parse_terms("flip|crop(pad=2)"))(images, seed=seed)
  np.testing.assert_array_equal(first, augment.parse("flip|crop(pad=2)")(images, seed=seed))


def test_parse_terms_refuses_what_parse_refuses():
  with pytest.raises(UsageError, match="runs in the host pipeline"):
    augment.parse_terms("mixup(alpha=0.2)", on_device=True)
  with pytest.raises(UsageError, match="crop\\(size=3\\)"):
    augment.parse_terms("crop(size=3)")


@pytest.mark.parametrize("spec", ["crop(pad=8, fill='reflect')", "flip|crop(pad=12, fill='reflect')"])
def test_parse_accepts_a_reflect_pad_of_any_size(spec):
  """Whether a pad fits depends on the images, which parsing does not know (issue 20: a check on
  an 8x8 dummy image failed every reflect pad >= 8 with a MirrorPad traceback)."""
  assert augment.parse(spec).ops


@pytest.mark.parametrize("spec, side, fits", [
    ("crop(pad=8, fill='reflect')", 9, True), ("crop(pad=8, fill='reflect')", 8, False),
    ("flip|crop(pad=8, fill='reflect')", 8, False), ("crop(pad=8)", 8, True),
    ("flip|crop(pad=20)", 4, True)])
def test_reflect_pad_must_be_smaller_than_the_image_side(spec, side, fits):
  """Reflect padding mirrors the image inside its border, so it needs pad < side; zero fill
  takes any pad."""
  augmenter = augment.parse(spec)
  if fits:
    augmenter.check_image_shape((side, side + 3, 3))
    assert augmenter(np.ones((2, side, side + 3, 3), np.uint8)).shape == (2, side, side + 3, 3)
  else:
    with pytest.raises(UsageError, match=r"crop\(pad=8, fill='reflect'\) needs pad < the "
                       r"images' shorter side, 8 pixels \(8x11\); pass pad <= 7"):
      augmenter.check_image_shape((side, side + 3, 3))


def test_pipeline_build_refuses_a_reflect_pad_too_large_for_the_source(data_config):
  """The source's image shape is known when the pipeline is built: the error comes then, as one
  line, not from MirrorPad in the first training step."""
  from app.data import pipeline  # pylint: disable=g-import-not-at-top
  from app.data.sources import Examples, Source  # pylint: disable=g-import-not-at-top
  train = Examples(labels=np.arange(8, dtype=np.int32) % 2, images=np.ones((8, 6, 6, 1), np.uint8))
  source = Source(train, train, ["a", "b"], (6, 6, 1), "made in the test")
  data_config.augment = "crop(pad=6, fill='reflect')"
  with pytest.raises(UsageError, match="needs pad < the images' shorter side, 6 pixels"):
    pipeline.build(source, data_config, batch_size=4, seed=0)
  data_config.augment = "crop(pad=5, fill='reflect')"
  pipeline.build(source, data_config, batch_size=4, seed=0)


def test_validate_refuses_a_reflect_pad_too_large_for_data_image_size():
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.data.image_size, config.data.augment = 16, "crop(pad=16, fill='reflect')"
  with pytest.raises(UsageError, match="needs pad < the images' shorter side, 16 pixels"):
    config_lib.validate(config)
  config.data.augment = "crop(pad=15, fill='reflect')"
  config_lib.validate(config)


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("spec, refused", [
    ("color_jitter(saturation=0.2)", True), ("color_jitter(hue=0.1)", True),
    ("color_jitter(brightness=0.2, contrast=0.2)", False), ("randaugment", False)])
def test_saturation_and_hue_on_grayscale_images_are_refused_in_one_line(spec, refused, on_device):
  """Keras's RandomSaturation and RandomHue fail on one channel with a traceback (issue 20's
  matrix: color_jitter x grayscale); the check refuses the pair up front."""
  augmenter = augment.parse(spec, on_device=on_device)
  augmenter.check_image_shape((16, 16, 3))
  augmenter.check_image_shape((16, 16, None))
  if refused:
    with pytest.raises(UsageError, match=r"^augmentation color_jitter with saturation or hue "
                       r"needs RGB images, and these have one channel; drop saturation and hue "
                       r"from it, or pass --config.data.channels=3$"):
      augmenter.check_image_shape((16, 16, 1))
  else:
    augmenter.check_image_shape((16, 16, 1))


def test_validate_refuses_saturation_with_data_channels_1_on_host_and_device():
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  for key in ("augment", "augment_on_device"):
    config = default.get_config()
    config.data.channels = 1
    config.data[key] = "color_jitter(saturation=0.3)"
    with pytest.raises(UsageError, match="needs RGB images"):
      config_lib.validate(config)


@pytest.mark.parametrize("alpha", [0, -1, "0.2"])
def test_mixup_needs_a_positive_alpha(alpha):
  """Issue 19 (16): Keras's MixUp took alpha <= 0, and Beta(alpha, alpha) made every label NaN."""
  with pytest.raises(UsageError, match=r"augmentation .mixup\(alpha=.*\).: alpha must be a number "
                     r"> 0 \(e.g. 0.2\)"):
    augment.parse(f"mixup(alpha={alpha!r})")
  assert augment.parse("mixup(alpha=0.4)").ops[0].mixes_labels


def test_alternating_mirror_mirrors_a_fixed_half_then_the_other_half():
  """Jordan 2024's alternating flip: a seeded half of the images in even epochs, the rest in odd
  ones, the same half again two epochs later; another seed draws another half."""
  ids = tf.range(10_000, dtype=tf.int64)
  mask = lambda epoch, seed: augment.alternating_mirror(ids, epoch, seed).numpy()
  even, odd = mask(0, 3), mask(1, 3)
  assert 0.47 < even.mean() < 0.53
  np.testing.assert_array_equal(odd, ~even)
  np.testing.assert_array_equal(mask(2, 3), even)
  np.testing.assert_array_equal(mask(7, 3), odd)
  assert 0.4 < (mask(0, 4) != even).mean() < 0.6  # independent of seed 3's half


def mirrored_images(out, images):
  """Which of `out` are their `images`' mirrors (each must be the image or its mirror)."""
  mirrored = []
  for image, result in zip(images, out):
    mirrored.append(np.array_equal(result, image[:, ::-1]))
    if not mirrored[-1]:
      np.testing.assert_array_equal(result, image)
  return np.array(mirrored)


@pytest.mark.parametrize("spec", ["flip(alternate=True)", "flip(alternate=True)|crop(pad=0)",
                                  "crop(pad=0)|flip(alternate=True)"])  # the last two fused
def test_alternating_flip_mirrors_as_the_batch_identity_says(images, spec):
  augmenter = augment.parse(spec)
  ids = tf.range(len(images), dtype=tf.int64) + 100
  for epoch in (0, 1, 2):
    identity = (ids, tf.constant(epoch, tf.int64), tf.constant(5, tf.int64))
    ds = tf.data.Dataset.from_tensors(images).map(lambda x: augmenter(x, identity=identity))
    out = next(iter(ds)).numpy().astype(np.uint8)
    np.testing.assert_array_equal(mirrored_images(out, images),
                                  augment.alternating_mirror(*identity).numpy())


def test_alternating_flip_without_an_identity_mirrors_a_random_half(images):
  """Previews and direct calls have no epoch: a random half, as plain flip (2 / 2**16 to fail)."""
  mirrored = mirrored_images(
      augment.parse("flip(alternate=True)")(tf.constant(images)).numpy().astype(np.uint8), images)
  assert 0 < mirrored.sum() < len(images)


@pytest.mark.parametrize("spec, message", [
    ("flip(alternate=1)", "alternate must be True or False"),
])
def test_alternating_flip_refuses(spec, message):
  with pytest.raises(UsageError, match=message):
    augment.parse(spec)


def test_alternating_flip_is_host_only():
  with pytest.raises(UsageError, match="index and the epoch.*--config.data.augment"):
    augment.parse("flip(alternate=True)", on_device=True)
