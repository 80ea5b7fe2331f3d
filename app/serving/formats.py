"""Optional export formats beside the SavedModel: ONNX and LiteRT (TFLite).

Each is converted from the exported SavedModel's `serve` signature, so it computes what is
served: float32 images of the training shape (0..255) in, probabilities out, normalisation in
the graph, resizing left to the client. Each is run back in its own runtime for the parity check
(app/parity.py): onnxruntime for ONNX, TensorFlow's LiteRT interpreter for .tflite files.

Why not Keras's `Model.export(format="onnx" | "litert")`: its ONNX path (tf2onnx.from_function)
turns the tensors a layer captures, such as our `normalize` layer's mean and variance, into extra
graph inputs the caller would have to feed; converting the saved signature, as tf2onnx's own
command line does, freezes them into the graph. LiteRT goes the same way for symmetry.
"""

import dataclasses
import importlib
import os
import warnings
from typing import Callable

import numpy as np

from app import keras_compat
from app.core.errors import UsageError
from app.core.registry import Registry

FORMATS = Registry("export format")


@dataclasses.dataclass
class Format:
  filename: str  # written in the version folder, beside saved_model.pb
  convert: Callable  # (SavedModel dir, signature name, output path) -> None
  packages: tuple  # (module, pip package) pairs the format needs
  run: Callable  # (path, float32 images) -> probabilities, in the format's own runtime
  tolerance: float  # parity: largest allowed |probability difference| from the Keras model
  extra: str = ""  # the convtrain extra that installs `packages` (setup.cfg), named when missing


def _convert_onnx(saved_model, signature, path):
  keras_compat.convert_saved_model_to_onnx(saved_model, signature, path)


def _convert_litert(saved_model, signature, path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=[signature])
  with open(path, "wb") as f:
    f.write(converter.convert())


def _run_onnx(path, images):
  import onnxruntime  # pylint: disable=g-import-not-at-top
  session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
  (probabilities,) = session.run(None, {session.get_inputs()[0].name: images})
  return probabilities


def _run_litert(path, images):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():  # TF 2.21 still ships it; the warning points at ai_edge_litert
    warnings.filterwarnings("ignore", ".*tf.lite.Interpreter is deprecated", UserWarning)
    interpreter = tf.lite.Interpreter(model_path=path)
  runner = interpreter.get_signature_runner()
  (probabilities,) = runner(**{next(iter(runner.get_input_details())): images}).values()
  return probabilities


# The same check as the SavedModel's: onnxruntime and LiteRT (XNNPACK) sum in other orders, but
# measured differences on our models are ~1e-7 in probability, well inside 1e-5.
FORMATS.register("onnx", Format("model.onnx", _convert_onnx,
                                (("tf2onnx", "tf2onnx"), ("onnx", "onnx"),
                                 ("onnxruntime", "onnxruntime")),
                                _run_onnx, 1e-5, extra="onnx"))
FORMATS.register("litert", Format("model.tflite", _convert_litert, (), _run_litert, 1e-5))


def parse(spec):
  """'onnx,litert' (or '' for none) -> ('onnx', 'litert'), checked (see `check`)."""
  return check(tuple(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip())))


def check(names):
  """Refuses unknown format names and formats whose packages are missing, before any work: a
  base install (`pip install convtrain`) has no ONNX packages, they come with the onnx extra."""
  for name in names:
    fmt = FORMATS.get(name)
    for module, package in fmt.packages:
      try:
        importlib.import_module(module)
      except ImportError:
        install = (f"pip install 'convtrain[{fmt.extra}]' (in a checkout: .venv/bin/pip install "
                   f"-c tools/constraints.txt '.[{fmt.extra}]')" if fmt.extra else
                   f".venv/bin/pip install -c tools/constraints.txt {package}")
        raise UsageError(f"export format {name!r} needs the Python package {package}; run "
                         f"{install}") from None
  return names


def write(name, saved_model, signature="serve"):
  """Converts `signature` of the SavedModel in `saved_model` to format `name`, written into the
  same folder (so it moves with the version); returns the file's path."""
  fmt = FORMATS.get(name)
  path = os.path.join(saved_model, fmt.filename)
  fmt.convert(saved_model, signature, path)
  return path


def run(name, path, images):
  return np.asarray(FORMATS.get(name).run(path, np.asarray(images, np.float32)))
