"""python -m app.models as a user runs it: the registry listing, parameters and FLOPs of a model
at an input size, and one-line errors with exit status 2."""

import re

import pytest

from tests import commands


def run_models(*args, fresh_interpreter=False):
  return commands.run("app.models", *args, fresh_interpreter=fresh_interpreter)


def test_lists_every_registered_model_with_a_description():
  from app.models import MODELS  # pylint: disable=g-import-not-at-top
  result = run_models()
  assert result.returncode == 0, result.stderr[-2000:]
  listed = [line.split()[0] for line in result.stdout.strip().splitlines()]
  assert listed == MODELS.names()
  assert all(len(line.split()) > 3 for line in result.stdout.strip().splitlines())


def test_prints_no_tensorflow_start_up_notes():
  result = run_models("--model=simple_cnn", "--input_size=28x28x1",  # builds: devices start too
                      fresh_interpreter=True)  # the notes come while TensorFlow loads
  assert result.returncode == 0, result.stderr[-2000:]
  for note in ("oneDNN custom operations", "cpu_feature_guard", "TF_ENABLE_ONEDNN_OPTS",
               "absl::InitializeLog", "cuInit"):
    assert note not in result.stderr, result.stderr[-2000:]


def test_prints_parameters_and_flops_per_image_for_a_model_and_input_size():
  result = run_models("--model=resnet20", "--input_size=32x32x3")
  assert result.returncode == 0, result.stderr[-2000:]
  row = re.search(r"^resnet20\s+resnet20\s+([\d,]+)\s+([\d.]+)$", result.stdout, re.MULTILINE)
  assert row, result.stdout
  assert int(row.group(1).replace(",", "")) == 274_042  # He et al.: 0.27M
  assert float(row.group(2)) == pytest.approx(81.63, abs=0.01)  # 2 x 40.8M multiply-adds
  assert "input 32x32x3" in result.stdout


@pytest.mark.parametrize("args, expected", [
    (["--model=resnet_nope"], "unknown model 'resnet_nope'; choose one of: airbench, "),
    (["--model=resnet9", "--input_size=6x6x3"], "input size 6x6 is too small for resnet9"),
    (["--model=vgg", "--input_size=32x32"], "--input_size=32x32 is not HEIGHTxWIDTHxCHANNELS"),
])
def test_bad_input_is_one_line_and_exit_2(args, expected):
  result = run_models(*args)
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and expected in last, last
