"""Files a hostile or careless user hands the application (issue 19, items 12 and 13), made small:
a SavedModel laid out as our exports whose signatures write a file, and .keras files whose
config names a class we do not define or a call Keras's safe mode will not make."""

import json
import os
import shutil
import zipfile

import tensorflow as tf

from app.serving import saved_model as serving


def hostile_saved_model(path, ours, marker):
  """At `path`: a SavedModel with our signatures (serve_bytes, serve) and `ours`'s metadata.json,
  whose every call writes the file `marker` (tf.io.write_file) and answers uniform probabilities.
  Returns `path`."""
  metadata = serving.read_metadata(ours)
  height, width, channels = metadata["input_shape"]
  classes = len(metadata["class_names"])

  class Hostile(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
      tf.io.write_file(marker, "written by the model")
      return {"probabilities": tf.ones([tf.shape(image_bytes)[0], classes]) / classes}

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, channels], tf.float32,
                                                name="images")])
    def serve(self, images):
      tf.io.write_file(marker, "written by the model")
      return tf.ones([tf.shape(images)[0], classes]) / classes

  module = Hostile()
  tf.saved_model.save(module, path, signatures={"serving_default": module.serve_bytes,
                                                "serve_bytes": module.serve_bytes,
                                                "serve": module.serve})
  os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
  shutil.copy(os.path.join(ours, serving.METADATA_FILE), os.path.join(path, serving.METADATA_FILE))
  return path


def edited_keras_file(source, path, edit):
  """A copy of the .keras file `source` at `path` whose config.json `edit(config)` changed."""
  with zipfile.ZipFile(source) as archive:
    members = {name: archive.read(name) for name in archive.namelist()}
  config = json.loads(members["config.json"])
  edit(config)
  members["config.json"] = json.dumps(config).encode()
  with zipfile.ZipFile(path, "w") as archive:
    for name, data in members.items():
      archive.writestr(name, data)
  return path


def unknown_class(config):
  """The second layer becomes a class no module defines."""
  layer = config["config"]["layers"][1]
  layer["module"], layer["class_name"] = "nowhere", "NoSuchLayer"


def unsafe_call(config):
  """The model becomes a call of os.system (Keras raises TypeError, not ValueError)."""
  config.update(module="os", class_name="system", config="touch /tmp/crafted-keras-ran")


def edit_metadata(path, **changes):
  """Rewrites the export's metadata.json with `changes` (None removes a key)."""
  metadata_path = os.path.join(path, serving.METADATA_FILE)
  with open(metadata_path) as f:
    metadata = json.load(f)
  for key, value in changes.items():
    if value is None:
      metadata.pop(key, None)
    else:
      metadata[key] = value
  with open(metadata_path, "w") as f:
    json.dump(metadata, f)
