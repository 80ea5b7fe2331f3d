"""SavedModel export in the TF Serving layout: <export_dir>/<name>/<version>/, written atomically.

The export is a Keras `ExportArchive` with four endpoints, each a SavedModel signature:

  serving_default  float32 images [batch, height, width, C], 0..255, any size -> the dict below
  serve_uint8      the same for uint8 images
  serve_bytes      encoded JPEG/PNG/GIF/BMP files, tf.string [batch] -> the dict below
  serve            float32 images of the training shape -> probabilities (what Model.export writes)

The dict: `probabilities` [batch, classes], `top_class_ids` [batch, k] (int32, best first),
`top_probabilities` [batch, k] and `top_class_names` [batch, k] (tf.string), k = min(5, classes).
Images are decoded and resized in the graph by the training pipeline's own functions
(app/data/images.py) with the policy the model was evaluated with (data.resize: stretch, centre
crop or letterbox pad; data.eval_crop: the share of a centre crop kept; both recorded in the
metadata), and normalised by the model's own first layer, so a
client sends raw pixels or files and the model sees what training showed it.

The graph is float32 whatever policy the model trained under (`float32_model`). The archive is
written into a hidden temporary folder beside the versions (TF Serving ignores non-numeric
names), checked against the Keras model on held-out images (app/serving/parity.py), and only then
renamed to the next free integer version: a reader never sees half an export, a failed check
leaves nothing, and an existing version is never overwritten. The staging folder is locked by its
export while it lives; the next export into the same place removes those a killed export left
(their lock is free), never one a live export is writing. An export checked on parity images
also carries TF Serving's warmup requests made from them (assets.extra/tf_serving_warmup_requests,
app/serving/tf_serving.py), so a server's first real request is not slow.

A SavedModel is a program (its signatures may call any TensorFlow op, tf.io.write_file among
them), so the export's last file, assets.extra/integrity.json, holds the SHA-256 of every other
one, and load_export reads back only a folder that matches it, unless the user trusts the model
(--trust_model). docs/SERVING.md says what this does and does not protect against.
"""

import json
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from app import keras_compat
from app.core import console
from app.core import crash_points
from app.core import readers
from app.core import staging as staging_lib
from app.core.errors import UsageError
from app.data import images as images_lib
from app.serving import formats as export_formats
from app.serving import integrity
from app.serving import parity
from app.serving import tf_serving

METADATA_FILE = os.path.join("assets.extra", "metadata.json")
TOP_K = 5  # classes in the top_* outputs (fewer if the model has fewer classes)


def check_name(name):
  """An export name is one plain folder name: it may not climb out of the export dir."""
  if (not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name
      or (os.altsep and os.altsep in name)):
    raise UsageError(f"export name {name!r} must be a plain folder name (no path separators or "
                     "'..', not starting with '.'); pass e.g. --name=fashion_mnist")


def existing_versions(base):
  if not os.path.isdir(base):
    return []
  return sorted(int(d) for d in os.listdir(base) if d.isdigit())


def _with_float32_policies(serialized):
  if isinstance(serialized, dict):
    if serialized.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
      return dict(serialized, config=dict(serialized["config"], name="float32"))
    return {key: _with_float32_policies(value) for key, value in serialized.items()}
  if isinstance(serialized, list):
    return [_with_float32_policies(value) for value in serialized]
  return serialized


def float32_model(model):
  """`model` itself if every layer computes in float32, else a float32 copy with its weights.

  A mixed-precision model (trained, or loaded from a checkpoint, which keeps each layer's policy)
  would export bfloat16/float16 kernels that some servers cannot run; its variables are float32
  already, so the copy is exact (the fix discussed in tensorflow/tensorflow#45441). A model trained
  under MultiWorkerMirroredStrategy is copied too: its predict would need every worker, while the
  chief exports alone."""
  multi_worker = isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy)
  if not multi_worker and all(layer.dtype_policy.name == "float32"
                              for layer in keras_compat.all_layers(model)):
    return model
  serialized = _with_float32_policies(keras.saving.serialize_keras_object(model))
  twin = keras.saving.deserialize_keras_object(serialized)
  twin.set_weights(model.get_weights())
  return twin


def normalization_of(model):
  """The per-channel mean and variance of the model's `normalize` layer, or None."""
  try:
    layer = model.get_layer("normalize")
  except ValueError:
    return None
  return {"mean": np.ravel(layer.mean).tolist(), "variance": np.ravel(layer.variance).tolist()}


def build_archive(model, class_names, resize="resize"):
  """The ExportArchive described in the module docstring; `resize` is the policy the model was
  evaluated with (images_lib.evaluation_policy: data.resize, and data.eval_crop's share)."""
  height, width, channels = model.input_shape[1:]
  names = tf.constant(class_names, tf.string)
  top_k = min(TOP_K, len(class_names))

  # The model's graph, traced once and called by every endpoint (each endpoint tracing the model
  # itself wrote it four times: 2.4x longer to export, and a SavedModel 2.6x larger, for
  # mobilenet_v3_small at 32x32, tools/bench_export.py).
  forward = tf.function(lambda images: model(images, training=False), autograph=False,
                        input_signature=[tf.TensorSpec([None, height, width, channels])])

  def classify(images, fitted=False):  # float32 [batch, h, w, C], 0..255 (fitted: resized)
    probabilities = forward(images if fitted else images_lib.resize(images, height, width, resize))
    top_probabilities, top_class_ids = tf.math.top_k(probabilities, k=top_k)
    return {"probabilities": probabilities, "top_class_ids": top_class_ids,
            "top_probabilities": top_probabilities,
            "top_class_names": tf.gather(names, top_class_ids)}

  def decode(data):  # the training pipeline's decode_and_fit, exactly
    return tf.cast(images_lib.decode_and_fit(data, (height, width, channels), resize), tf.float32)

  archive = keras.export.ExportArchive()
  archive.track(model)
  spec = lambda dtype, name, shape=(None, None, None, channels): [tf.TensorSpec(shape, dtype, name)]
  archive.add_endpoint("serving_default", lambda images: classify(images),
                       spec(tf.float32, "images"))
  archive.add_endpoint("serve_uint8", lambda images: classify(tf.cast(images, tf.float32)),
                       spec(tf.uint8, "images"))
  archive.add_endpoint(
      "serve_bytes",
      lambda image_bytes: classify(tf.map_fn(
          decode, image_bytes, fn_output_signature=tf.TensorSpec([height, width, channels])),
          fitted=True),
      spec(tf.string, "image_bytes", (None,)))
  archive.add_endpoint("serve", forward,
                       spec(tf.float32, "images", (None, height, width, channels)))
  return archive


RESIZE_RULES = {  # app/data/images.py's policies, for the metadata's reader
    "resize": "stretched to input_shape",
    "crop": "shorter side scaled to input_shape, then the centre taken",
    "pad": "longer side scaled to input_shape, then padded with zeros (letterbox)",
}

SIGNATURES = {
    "serving_default": "images: float32 [batch, height, width, channels], 0..255, any size",
    "serve_uint8": "images: uint8 [batch, height, width, channels], any size",
    "serve_bytes": "image_bytes: string [batch], encoded JPEG, PNG, GIF or BMP files",
    "serve": "images: float32 [batch, *input_shape], 0..255 -> probabilities only",
}


def _describe(model, class_names, formats, resize):
  policy, kept = images_lib.parse_policy(resize)
  rule = (f"{RESIZE_RULES[policy]}, bilinear, clipped to 0..255 and rounded, as in training's "
          "evaluation; images of input_shape pass unchanged") if kept == 1 else (
          f"shorter side scaled to input_shape / {kept:g}, then the centre taken (a share "
          f"{kept:g} of it, every image), bilinear, clipped to 0..255 and rounded, as in "
          "training's evaluation")
  return {
      "class_names": list(class_names),
      "input_shape": list(model.input_shape[1:]),
      "input": "raw pixels 0..255 (resized and normalised in the graph)",
      "signatures": SIGNATURES,
      "outputs": {"probabilities": "float32 [batch, classes]",
                  "top_class_ids": f"int32 [batch, {min(TOP_K, len(class_names))}], best first",
                  "top_probabilities": "float32, the probabilities of top_class_ids",
                  "top_class_names": "string, the names of top_class_ids"},
      "preprocessing": {"resize": policy,  # data.resize of the training run
                        "eval_crop": kept,  # data.eval_crop: the share of the centre kept
                        "resize_rule": rule,
                        "normalize": normalization_of(model)},
      "dtype": "float32",
      "files": {fmt: export_formats.FORMATS.get(fmt).filename for fmt in formats},
  }


STAGING_PREFIX = ".export-"  # the hidden folders exports are written in, beside the versions


def export_saved_model(model, export_dir, name, class_names, metadata, parity_images=None,
                       formats=(), resize="resize"):
  """Exports `model` as described in the module docstring; returns the version folder's path.

  `metadata` (JSON-able: metrics, recipe, ...) goes to assets.extra/metadata.json with the input
  spec, preprocessing and the parity results. `parity_images` (uint8 or float32 [N, *input shape],
  real held-out images) are what the export is checked on; `formats` ('onnx', 'litert') adds
  model.onnx / model.tflite beside the SavedModel, each checked in its own runtime. `resize` is
  the run's data.resize: the signatures resize other sizes as its training pipeline did."""
  check_name(name)
  formats = export_formats.check(tuple(formats))
  model = float32_model(model)
  base = os.path.join(export_dir, name)
  os.makedirs(base, exist_ok=True)
  staging_lib.remove_abandoned(base, STAGING_PREFIX)  # killed exports'
  staging, lock = staging_lib.new_folder(base, STAGING_PREFIX)
  try:
    saved_model = os.path.join(staging, "model")
    build_archive(model, class_names, resize).write_out(saved_model, verbose=False)
    crash_points.crash_point("export")  # a testing hook (app/core/crash_points.py)
    files = {fmt: export_formats.write(fmt, saved_model) for fmt in formats}
    checks, warmup = {}, None
    if parity_images is not None:
      checks = parity.check_all(model, saved_model, files, parity_images, resize)
      # The parity check's inputs: TF Serving's replay at load runs what was just checked
      warmup = tf_serving.write_warmup(saved_model, name, parity_images)
    versions = existing_versions(base)
    version = (versions[-1] if versions else 0) + 1
    metadata = dict(metadata, **_describe(model, class_names, formats, resize), parity=checks,
                    warmup=warmup, version=version)
    os.makedirs(os.path.join(saved_model, "assets.extra"), exist_ok=True)
    with open(os.path.join(saved_model, METADATA_FILE), "w") as f:
      json.dump(metadata, f, indent=2)
    integrity.write(saved_model)  # last: it hashes every file written above
    target = os.path.join(base, str(version))
    appeared = UsageError(f"export version {target} appeared while exporting; export again")
    if os.path.exists(target):  # a concurrent export took it: never overwrite
      raise appeared
    try:
      os.rename(saved_model, target)  # fails onto a (concurrent export's) non-empty folder
    except OSError:
      raise appeared from None
  finally:
    shutil.rmtree(staging, ignore_errors=True)
    staging_lib.release(lock)
  return target


# === Reading an export back: only what this application wrote, unless the user trusts it ===

def read_metadata(path):
  """The export's assets.extra/metadata.json, checked to hold what prediction and evaluation read
  (class_names, input_shape); a damaged or foreign one is a UsageError."""
  metadata_path = os.path.join(path, METADATA_FILE)
  metadata = readers.read_json(metadata_path, "export metadata", integrity.REEXPORT)
  names, shape = metadata.get("class_names"), metadata.get("input_shape")
  if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
    raise UsageError(f"export metadata {metadata_path} has no list of class names; "
                     f"{integrity.REEXPORT}")
  if not (isinstance(shape, list) and len(shape) == 3
          and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
    raise UsageError(f"export metadata {metadata_path} has no input_shape [height, width, "
                     f"channels] (found {shape!r}); {integrity.REEXPORT}")
  return metadata


def _classes_out(signature, key=None):
  """The class count a signature's probabilities output declares (None when it declares none)."""
  outputs = signature.structured_outputs
  output = outputs.get(key) if key else next(iter(outputs.values()), None)
  if output is None or output.shape.rank != 2:
    return None
  return output.shape[-1]


def load_export(path, trust=False):
  """An export of ours -> (the loaded SavedModel, its metadata); anything else is a UsageError.

  A SavedModel is a program (its signatures may call any TensorFlow op, writing files among
  them), so unless `trust` (the user's --trust_model) the export's files must match the hashes
  its export recorded (app/serving/integrity.py) before TensorFlow reads its graph."""
  if not tf.saved_model.contains_saved_model(path):
    versions = existing_versions(path)
    hint = (f"pass a version folder such as {os.path.join(path, str(versions[-1]))}" if versions
            else "pass a version folder such as saved_models/<name>/1")
    raise UsageError(f"{path} is not a SavedModel (no saved_model.pb); {hint}")
  if not os.path.isfile(os.path.join(path, METADATA_FILE)):
    raise UsageError(f"{path} is a SavedModel without {METADATA_FILE}; pass an export of "
                     "app.train or app.export")
  if not trust:
    integrity.verify(path)
  metadata = read_metadata(path)
  try:
    with console.native_stderr_hidden():  # TensorFlow's own log of the failure: ours is one line
      loaded = tf.saved_model.load(path)
  except Exception as e:  # pylint: disable=broad-except  (a damaged graph raises what it meets)
    reason = (str(e).strip().splitlines() or [""])[0][:160]
    raise UsageError(f"cannot load {path} as a SavedModel ({type(e).__name__}: {reason}); "
                     f"{integrity.REEXPORT}") from None
  missing = [name for name in ("serve_bytes", "serve") if name not in loaded.signatures]
  if missing:
    raise UsageError(f"{path} lacks the {' and '.join(missing)} signature; {integrity.REEXPORT}")
  classes = len(metadata["class_names"])
  declared = {_classes_out(loaded.signatures["serve_bytes"], "probabilities"),
              _classes_out(loaded.signatures["serve"])}
  if declared != {classes}:
    found = ", ".join(str(n) for n in sorted(declared, key=str))
    raise UsageError(f"{path}: its metadata.json names {classes} classes but the model outputs "
                     f"{found} probabilities per image, so its labels would be wrong; "
                     f"{integrity.REEXPORT}")
  return loaded, metadata
