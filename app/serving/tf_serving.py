"""TF Serving's own formats for an export: the warmup requests file and the PredictRequest it holds.

TF Serving initialises much of its runtime lazily, so the first requests after a model loads can
be orders of magnitude slower than the rest. A SavedModel that carries
assets.extra/tf_serving_warmup_requests (a TFRecord file of `PredictionLog` records, at most
1000) has each record replayed at load time, before the version is served
(tensorflow/serving#385, #733; TF Serving's "SavedModel Warmup" guide). A warmup request that
fails fails the load, so the export writes only requests built as its parity check has just
called the signatures (app/serving/parity.py signature_inputs), on the parity images: every
signature once with one image (the common first request) and once with a small batch (cuDNN
picks convolution algorithms per input shape, so each batch size is warmed separately on a GPU).

The protos are tensorflow-serving-api's, the package TF Serving's own clients use.
"""

import os

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from app.serving import parity

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")  # TF Serving's name
WARMUP_BATCH_SIZES = (1, 8)  # images per warmup request: a single image and a small batch


def predict_request(model_name, signature_name, inputs):
  """A PredictRequest for `signature_name` of model `model_name` with {input name: array}."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
  return request


def batch_sizes(count):
  """The warmup requests' batch sizes for `count` parity images (fewer than 8: all of them)."""
  return sorted({min(size, count) for size in WARMUP_BATCH_SIZES})


def warmup_requests(model_name, images):
  """The PredictRequests of the warmup file for uint8 `images` [N, H, W, C]: every signature,
  on the first image and on the first WARMUP_BATCH_SIZES[-1] images."""
  return [predict_request(model_name, signature_name, inputs)
          for size in batch_sizes(len(images))
          for signature_name, inputs in parity.signature_inputs(images[:size]).items()]


def write_warmup(saved_model, model_name, images):
  """Writes <saved_model>/assets.extra/tf_serving_warmup_requests from `images` (the parity
  images) and returns what the metadata records of it. The export's staging folder is the
  atomic write: the file is hashed (integrity.json) and renamed into place with the rest."""
  requests = warmup_requests(model_name, parity.as_uint8(images))
  os.makedirs(os.path.join(saved_model, "assets.extra"), exist_ok=True)
  with tf.io.TFRecordWriter(os.path.join(saved_model, WARMUP_FILE)) as writer:
    for request in requests:
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(request=request))
      writer.write(log.SerializeToString())
  return {"file": WARMUP_FILE, "requests": len(requests),
          "signatures": sorted({request.model_spec.signature_name for request in requests}),
          "batch_sizes": batch_sizes(len(images))}
