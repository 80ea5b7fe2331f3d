"""app/serving/tf_serving.py and docs/SERVING.md's requests: what TF Serving reads from an export
(its warmup file) and what a client sends it (a REST body, a gRPC PredictRequest), parsed with
tensorflow-serving-api's protos and run on the export's signatures as TF Serving runs them."""

import base64
import io
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from app.core.run_dir import RunDir
from app.models import load_model
from app.serving import integrity
from app.serving import parity
from app.serving import saved_model as serving
from app.serving import tf_serving
from app.serving.runs import load_data

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                   "docs", "SERVING.md")
DOC_BLOCK_MARK = "# tests/serving/test_tf_serving.py"  # the first line of the doc's tested block
SIGNATURES = ["serving_default", "serve_uint8", "serve_bytes", "serve"]


@pytest.fixture(scope="module")
def exported(trained_run):
  """The trained run's export loaded back, the Keras model it came from and the run's parity
  images (the first test images, as the export took them)."""
  config = RunDir(trained_run.run_dir).load_config()
  images = parity.take_images(load_data(config).test, config.export.parity_images)
  model = load_model(os.path.join(trained_run.run_dir, "checkpoints", "best.keras"))
  return tf.saved_model.load(trained_run.export_path), model, images


def expected_probabilities(model, images):
  return model.predict(images.astype(np.float32), verbose=0)


def run_request(loaded, request):
  """A PredictRequest run as TF Serving runs it: the signature its model_spec names, called with
  its inputs (each TensorProto of the signature's dtype) -> the probabilities."""
  signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
  specs = signature.structured_input_signature[1]
  assert set(request.inputs) == set(specs)
  for name, proto in request.inputs.items():
    assert proto.dtype == specs[name].dtype.as_datatype_enum, name
  return parity.probabilities_of(signature, {name: tf.make_ndarray(proto)
                                             for name, proto in request.inputs.items()})


def test_the_warmup_file_is_prediction_logs_whose_requests_run_on_the_export(trained_run,
                                                                              exported):
  loaded, model, images = exported
  warmup_path = os.path.join(trained_run.export_path, "assets.extra", "tf_serving_warmup_requests")
  logs = [prediction_log_pb2.PredictionLog.FromString(record)
          for record in tf.data.TFRecordDataset(warmup_path).as_numpy_iterator()]
  assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"] * 8
  requests = [log.predict_log.request for log in logs]
  batch = lambda request: next(iter(request.inputs.values())).tensor_shape.dim[0].size
  assert [(r.model_spec.name, r.model_spec.signature_name, batch(r)) for r in requests] == [
      ("tiny", signature, size) for size in (1, 8) for signature in SIGNATURES]
  expected = expected_probabilities(model, images)
  for request in requests:  # the parity images, answered as the Keras model answers them
    np.testing.assert_allclose(run_request(loaded, request), expected[:batch(request)], atol=1e-5,
                               err_msg=request.model_spec.signature_name)

  metadata = serving.read_metadata(trained_run.export_path)
  assert metadata["warmup"] == {"file": tf_serving.WARMUP_FILE, "requests": 8,
                                "signatures": sorted(SIGNATURES), "batch_sizes": [1, 8]}
  with open(os.path.join(trained_run.export_path, integrity.RECORD)) as f:
    assert tf_serving.WARMUP_FILE in json.load(f)["files"]  # hashed like every other file
  serving.load_export(trained_run.export_path)  # and the export still passes its content hash


def test_fewer_parity_images_than_the_batch_warm_up_with_all_of_them():
  images = np.random.default_rng(0).integers(0, 256, (3, 12, 12, 1), dtype=np.uint8)
  requests = tf_serving.warmup_requests("tiny", images)
  assert [(r.model_spec.signature_name, tf.make_ndarray(next(iter(r.inputs.values()))).shape[0])
          for r in requests] == [(signature, size) for size in (1, 3) for signature in SIGNATURES]
  np.testing.assert_array_equal(tf.make_ndarray(requests[5].inputs["images"]), images)


# === docs/SERVING.md: the REST body and the gRPC PredictRequest it shows ===

def doc_snippets():
  """docs/SERVING.md's tested Python block and the JSON body of its curl line."""
  with open(DOC) as f:
    text = f.read()
  blocks = [block for block in re.findall(r"```python\n(.*?)```", text, re.S)
            if block.startswith(DOC_BLOCK_MARK)]
  assert len(blocks) == 1, f"{DOC} should hold one ```python block starting {DOC_BLOCK_MARK!r}"
  curl, = re.findall(r"^curl -d '(.*)' \\$", text, re.M)
  return blocks[0], curl


def tf_serving_rest_inputs(body, signature):
  """A REST predict body's inputs decoded as TF Serving's REST API decodes them: the row format
  ("instances", one object per example keyed by input name, or bare values for a signature of
  one input), every {"b64": ...} value base64-decoded into bytes, whatever the input's name."""
  specs = signature.structured_input_signature[1]
  is_b64 = lambda value: isinstance(value, dict) and set(value) == {"b64"}
  decode = lambda value: (base64.b64decode(value["b64"]) if is_b64(value)
                          else [decode(v) for v in value] if isinstance(value, list) else value)
  rows = [row if isinstance(row, dict) and not is_b64(row) else {next(iter(specs)): row}
          for row in json.loads(body)["instances"]]
  dtype = lambda spec: object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
  return {name: np.array([decode(row[name]) for row in rows], dtype(spec))
          for name, spec in specs.items()}


def test_the_docs_rest_body_and_grpc_request_run_on_the_export(trained_run, exported, tmp_path,
                                                               monkeypatch):
  loaded, model, images = exported
  block, curl = doc_snippets()
  png = io.BytesIO()
  Image.fromarray(images[0].squeeze(-1)).save(png, "PNG")
  (tmp_path / "shoe.png").write_bytes(png.getvalue())  # the file the doc's example reads
  monkeypatch.chdir(tmp_path)
  names = {}
  exec(block, names)  # pylint: disable=exec-used  (the doc's own code, as a user runs it)
  body, request = names["body"], names["request"]
  assert isinstance(request, predict_pb2.PredictRequest)

  # The curl line sends the same body (its $(base64 -w0 shoe.png) filled in as the shell would).
  shell_filled = curl.replace("'\"$(base64 -w0 shoe.png)\"'",
                              base64.b64encode(png.getvalue()).decode())
  assert json.loads(shell_filled) == json.loads(body)

  expected = expected_probabilities(model, images[:1])
  rest = json.loads(body)
  signature = loaded.signatures[rest.get("signature_name", "serving_default")]
  np.testing.assert_allclose(
      parity.probabilities_of(signature, tf_serving_rest_inputs(body, signature)), expected,
      atol=1e-5)
  np.testing.assert_allclose(run_request(loaded, request), expected, atol=1e-5)
  assert request.model_spec.signature_name == rest["signature_name"] == "serve_bytes"
