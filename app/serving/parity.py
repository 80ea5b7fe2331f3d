"""The parity check at export: every exported artifact, loaded back in its own runtime, gives the
Keras model's probabilities on real held-out images, within a stated tolerance.

A SavedModel is checked through each of its signatures (the bytes one on PNG-encoded copies of
the images: PNG is lossless, so it must match too) and must hold float32 variables only.
"""

import numpy as np
import tensorflow as tf

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


def _saved_model_outputs(path, images):
  """Each signature's probabilities on `images` (uint8), and the dtypes of its variables."""
  loaded = tf.saved_model.load(path)
  signatures = loaded.signatures
  floats = tf.constant(images, tf.float32)
  encoded = tf.stack([tf.io.encode_png(image) for image in images])
  outputs = {
      "serving_default": signatures["serving_default"](images=floats)["probabilities"],
      "serve_uint8": signatures["serve_uint8"](images=tf.constant(images))["probabilities"],
      "serve_bytes": signatures["serve_bytes"](image_bytes=encoded)["probabilities"],
      "serve": loaded.serve(floats),
  }
  dtypes = sorted({t.dtype.name for t in [*loaded.variables, *outputs.values()]
                   if t.dtype.is_floating})  # integer state (e.g. seed counters) may stay
  return {k: v.numpy() for k, v in outputs.items()}, dtypes


def check_all(model, saved_model, files, images):
  """Checks the SavedModel at `saved_model` and each {format: path} in `files` against `model`
  on `images`; returns {artifact: record} and raises ParityError if any check failed."""
  images = as_uint8(images)
  reference = np.asarray(model.predict(images.astype(np.float32), verbose=0), np.float64)
  outputs, dtypes = _saved_model_outputs(saved_model, images)
  checks = {f"saved_model/{name}": compare(probabilities, reference, SAVED_MODEL_TOLERANCE)
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
