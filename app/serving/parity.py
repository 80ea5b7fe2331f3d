"""The parity check at export: every exported artifact, loaded back in its own runtime, gives the
Keras model's probabilities on real held-out images, within a stated tolerance.

A SavedModel is checked through each of its signatures (the bytes one on PNG-encoded copies of
the images: PNG is lossless, so it must match too) and must hold float32 variables only. The
signatures that take any size are checked again on non-square copies of the images (alternately
twice as wide and twice as tall), against the Keras model fed those copies resized by the
training pipeline's own function under the run's data.resize policy: an export that resized
differently from training would fail here.
"""

import numpy as np
import tensorflow as tf

from app.data import images as images_lib
from app.serving import formats as export_formats

SAVED_MODEL_TOLERANCE = 1e-5  # same kernels, same float32 math: only op-fusion round-off


class ParityError(RuntimeError):
  """An exported artifact does not compute what the Keras model computes: a bug, not bad input."""


def as_uint8(images):
  """Held-out images (float32 0..255 from the pipeline, or uint8) as uint8 [N, H, W, C]."""
  return np.clip(np.round(np.asarray(images, np.float32)), 0, 255).astype(np.uint8)


def take_images(dataset, count):
  """The first `count` images of a batched (images, labels) dataset, as uint8."""
  batches, taken = [], 0
  for images, _ in dataset:
    batches.append(as_uint8(images))
    taken += len(batches[-1])
    if taken >= count:
      break
  return np.concatenate(batches)[:count]


def compare(outputs, reference, tolerance):
  """The check's record: largest difference, top-1 agreement, and whether it passed."""
  outputs = np.asarray(outputs, np.float64)
  max_abs_diff = float(np.max(np.abs(outputs - reference))) if len(reference) else 0.0
  top1 = float(np.mean(outputs.argmax(-1) == reference.argmax(-1))) if len(reference) else 1.0
  return {"images": int(len(reference)), "max_abs_diff": max_abs_diff, "tolerance": tolerance,
          "top1_agreement": top1, "passed": bool(max_abs_diff <= tolerance)}


def non_square(images):
  """uint8 [N, H, W, C] -> the non-square copies the check also serves: two uint8 batches, the
  even images stretched to twice their width, the odd ones to twice their height."""
  height, width = images.shape[1:3]
  copies = [images_lib.resize(tf.constant(images[0::2]), height, 2 * width),
            images_lib.resize(tf.constant(images[1::2]), 2 * height, width)]
  return [copy.numpy() for copy in copies if len(copy)]


ANY_SIZE_SIGNATURES = ("serving_default", "serve_uint8", "serve_bytes")  # "serve": training size


def signature_inputs(images):
  """uint8 [N, H, W, C] -> {signature: {input name: NumPy array}}, what each of the export's
  signatures is called with on those images (serve_bytes on PNG files: lossless). The parity
  check and TF Serving's warmup requests (app/serving/tf_serving.py) send exactly these."""
  images = np.asarray(images, np.uint8)
  png_files = np.array([tf.io.encode_png(image).numpy() for image in images], object)
  return {"serving_default": {"images": images.astype(np.float32)},
          "serve_uint8": {"images": images},
          "serve_bytes": {"image_bytes": png_files},
          "serve": {"images": images.astype(np.float32)}}


def probabilities_of(signature, inputs):
  """A signature's probabilities on {input name: array}: the "probabilities" output of the
  dict-returning signatures, the only output of "serve"."""
  outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
  return outputs.get("probabilities", next(iter(outputs.values()))).numpy()


def _saved_model_outputs(path, images, copies):
  """Each signature's probabilities on uint8 `images`, those of the signatures taking any size
  on the non-square `copies` too ("<signature>/non_square": one call per copy, their sizes
  differ), and the float dtypes of its variables and outputs."""
  loaded = tf.saved_model.load(path)
  on = lambda name, batches: np.concatenate([
      probabilities_of(loaded.signatures[name], inputs[name]) for inputs in batches])
  square, non_square = [signature_inputs(images)], [signature_inputs(copy) for copy in copies]
  outputs = {name: on(name, square) for name in square[0]}
  outputs.update({f"{name}/non_square": on(name, non_square) for name in ANY_SIZE_SIGNATURES})
  # Integer state (e.g. seed counters) may stay; every float must be float32.
  dtypes = sorted({v.dtype.name for v in loaded.variables if v.dtype.is_floating}
                  | {probabilities.dtype.name for probabilities in outputs.values()})
  return outputs, dtypes


def check_all(model, saved_model, files, images, resize="resize"):
  """Checks the SavedModel at `saved_model` and each {format: path} in `files` against `model`
  on `images`, and the SavedModel on their non-square copies against `model` fed them resized
  by policy `resize` (the run's Datasets.evaluation_resize); returns {artifact: record} and
  raises ParityError if any check failed."""
  images = as_uint8(images)
  predict = lambda pixels: np.asarray(model.predict(np.asarray(pixels, np.float32), verbose=0),
                                      np.float64)
  height, width = images.shape[1:3]
  copies = non_square(images)
  reference = predict(images)
  trained_view = np.concatenate([  # the copies as the training pipeline resizes them
      predict(images_lib.resize(tf.constant(copy), height, width, resize)) for copy in copies])
  # The signatures taking any size resize even images of the training size when the policy
  # keeps a share of the centre (data.eval_crop < 1); "serve" takes them as they are.
  evaluated = reference if images_lib.parse_policy(resize)[1] == 1 else predict(
      images_lib.resize(tf.constant(images), height, width, resize))
  outputs, dtypes = _saved_model_outputs(saved_model, images, copies)
  expected = lambda name: (trained_view if name.endswith("/non_square") else
                           evaluated if name in ANY_SIZE_SIGNATURES else reference)
  checks = {f"saved_model/{name}": compare(probabilities, expected(name), SAVED_MODEL_TOLERANCE)
            for name, probabilities in outputs.items()}
  checks["saved_model/float_dtypes"] = {"dtypes": dtypes, "passed": dtypes == ["float32"]}
  for name, path in files.items():
    checks[name] = compare(export_formats.run(name, path, images), reference,
                           export_formats.FORMATS.get(name).tolerance)
  failed = [f"{artifact} ({record.get('max_abs_diff', record.get('dtypes'))})"
            for artifact, record in checks.items() if not record["passed"]]
  if failed:
    raise ParityError(f"exported model differs from the Keras model on {len(images)} held-out "
                      f"images: {', '.join(failed)}; nothing was exported")
  return checks
