"""app/serving/formats.py: ONNX and LiteRT files beside the SavedModel, each checked in its own
runtime against the Keras model."""

import os

import numpy as np
import pytest

from app.serving import formats as export_formats
from app.serving import saved_model as serving
from app.core.errors import UsageError
CLASSES = ["ant", "bee", "cat"]


def test_onnx_and_litert_are_written_and_pass_parity_in_their_runtimes(tmp_path, make_tiny_model):
  model = make_tiny_model()
  images = np.random.default_rng(0).integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)
  path = serving.export_saved_model(model, str(tmp_path), "tiny", CLASSES, {}, images,
                                    formats=("onnx", "litert"))
  metadata = serving.read_metadata(path)
  assert metadata["files"] == {"onnx": "model.onnx", "litert": "model.tflite"}
  expected = model.predict(images.astype(np.float32), verbose=0)
  for name, filename in metadata["files"].items():
    record = metadata["parity"][name]
    assert record["passed"] and record["max_abs_diff"] <= 1e-5 and record["images"] == 16, record
    # Run again here, in the format's own runtime, on images the check did not see.
    fresh = np.random.default_rng(1).integers(0, 256, (3, 12, 12, 1)).astype(np.float32)
    np.testing.assert_allclose(export_formats.run(name, os.path.join(path, filename), fresh),
                               model.predict(fresh, verbose=0), atol=1e-5)
  assert expected.shape == (16, 3)


def test_format_specs_are_parsed_and_checked():
  assert export_formats.parse("") == ()
  assert export_formats.parse(" onnx , litert,onnx ") == ("onnx", "litert")
  with pytest.raises(UsageError, match="unknown export format 'tflite'; choose one of: litert, onnx"):
    export_formats.parse("onnx,tflite")


def test_a_missing_runtime_package_is_named_with_the_install_command(monkeypatch):
  monkeypatch.setattr(export_formats.FORMATS.get("onnx"), "packages",
                      (("no_such_module_xyz", "no-such-package"),))
  with pytest.raises(UsageError, match=r"needs the Python package no-such-package; run pip install "
                                       r"'convtrain\[onnx\]' \(in a checkout: \.venv/bin/pip "
                                       r"install -c tools/constraints\.txt '\.\[onnx\]'\)$"):
    export_formats.parse("onnx")
  monkeypatch.setattr(export_formats.FORMATS.get("onnx"), "extra", "")  # a format of no extra
  with pytest.raises(UsageError, match=r"run \.venv/bin/pip install -c tools/constraints\.txt "
                                       "no-such-package$"):
    export_formats.parse("onnx")
