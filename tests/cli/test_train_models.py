"""python -m app.train with the model zoo's bad inputs: an unknown model (the error lists the
registry), a weights file of the wrong architecture or shape, images too small for the model.
Each is one line on stderr, exit status 2, and nothing written."""

import pytest

from tests import commands


def run_train(*args):
  return commands.run("app.train", *args, timeout=600)


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory):
  """backbone.weights.h5 files of mobilenet_v3_small and of a narrower mobilenet_v2 (alpha 0.25)."""
  from app.models import build_model  # pylint: disable=g-import-not-at-top
  from app.models.applications import backbone_of  # pylint: disable=g-import-not-at-top
  from configs import default  # pylint: disable=g-import-not-at-top
  root, paths = tmp_path_factory.mktemp("weights"), {}
  for name, width in (("mobilenet_v3_small", 0), ("mobilenet_v2", 8)):
    config = default.get_config().model
    config.name, config.width = name, width
    paths[name] = str(root / f"{name}.weights.h5")
    model = build_model(config, (32, 32, 3), 10, [0.0] * 3, [1.0] * 3)
    backbone_of(model).save_weights(paths[name])
  return paths


def cifar(cifar_mini_dir, *more):
  return ["--dataset=folder", f"--data_dir={cifar_mini_dir}", "--config.data.limit=40",
          "--epochs=1", "--config.optim.warmup_epochs=0", *more]


def test_unknown_model_lists_the_registry(tmp_path):
  from app.models import MODELS  # pylint: disable=g-import-not-at-top
  result = run_train("--model=resnet_nope", f"--output_dir={tmp_path / 'run'}")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last == f"error: unknown model 'resnet_nope'; choose one of: {', '.join(MODELS.names())}"


@pytest.mark.parametrize("case", ["wrong architecture", "wrong shape", "too small"])
def test_bad_model_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, cifar_mini_dir,
                                                               weights_files):
  args, expected = {
      "wrong architecture": (
          ["--model=mobilenet_v2", "--config.model.width=16",
           f"--weights={weights_files['mobilenet_v3_small']}"],
          "does not fit the mobilenet_v2 backbone (Layer "),
      "wrong shape": (
          ["--model=mobilenet_v2", "--config.model.width=16",
           f"--weights={weights_files['mobilenet_v2']}"],
          # Width 16 is alpha 0.5 (16 stem filters); the file has alpha 0.25.
          "does not fit the mobilenet_v2 backbone (layer Conv1 has weights of shape (3, 3, 3, 16), "
          "the file (3, 3, 3, 8))"),
      "too small": (
          ["--model=resnet9", "--config.data.image_size=6"],
          "input size 6x6 is too small for resnet9, which needs at least 8x8 pixels"),
  }[case]
  run_dir, exports = tmp_path / "run", tmp_path / "exports"
  result = run_train(*cifar(cifar_mini_dir, *args), f"--output_dir={run_dir}",
                     f"--export_dir={exports}")
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr and "Warning" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and expected in last, last
  assert not run_dir.exists() and not exports.exists()


def test_help_documents_weights_and_the_model_zoo_keys():
  result = run_train("--help")
  assert result.returncode == 0
  for flag in ("--weights", "--config.model.weights", "--config.model.whitening",
               "--config.train.frozen_epochs", "--config.optim.fine_tune_rate_factor"):
    assert flag in result.stdout, flag
