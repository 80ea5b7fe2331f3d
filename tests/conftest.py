"""Session fixtures: the real data sets the tests read, and a fresh data config to modify."""

import os
import zipfile

import pytest

from configs import default

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
CIFAR_MINI_ZIP = os.path.join(REPO_ROOT, "..", "shared", "datasets", "cifar10-jpg-mini.zip")


def pytest_collection_modifyitems(items):
  """The slow tests first (a stable sort: the rest keep their order). pytest-xdist hands tests out
  in this order, so the longest start while both workers are busy instead of leaving one worker
  alone with them at the end."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def fashion_mnist_dir():
  """Debian's dataset-fashion-mnist files. Setup installs them, so a missing copy is a failure."""
  if not os.path.isfile(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")):
    pytest.fail(f"Fashion-MNIST IDX files missing from {FASHION_MNIST_DIR}; run tools/setup_env.sh "
                "(apt-get install dataset-fashion-mnist)")
  return FASHION_MNIST_DIR


@pytest.fixture(scope="session")
def cifar_mini_dir(tmp_path_factory):
  """The shared CIFAR-10 mini set unzipped once: train/<class>/ 100 JPEGs, test/<class>/ 20 JPEGs."""
  if not os.path.isfile(CIFAR_MINI_ZIP):
    pytest.fail(f"{CIFAR_MINI_ZIP} is missing; the shared data sets come with the checkout")
  root = tmp_path_factory.mktemp("cifar_mini")
  with zipfile.ZipFile(CIFAR_MINI_ZIP) as archive:
    archive.extractall(root)
  return str(root / "cifar10-jpg-mini")


@pytest.fixture
def data_config():
  """The default recipe's `data` block: a fresh, unlocked ConfigDict for each test to modify."""
  return default.get_config().data


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, fashion_mnist_dir):
  """A tiny Fashion-MNIST run (600 images, one epoch, float32), trained in-process once for the
  export, predict and evaluate tests: run_dir (config.yaml, checkpoints/, metrics.json) and its
  export at export_dir/tiny/1. Tests may add versions; none may change version 1."""
  import types  # pylint: disable=g-import-not-at-top
  from app import config as config_lib  # pylint: disable=g-import-not-at-top
  from app.train.train_and_evaluate import train_and_evaluate  # pylint: disable=g-import-not-at-top
  from configs import fashion_mnist  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("trained")
  config = fashion_mnist.get_config()
  config.name = "tiny"
  config.data.data_dir = fashion_mnist_dir
  config.data.limit = 600
  config.model.name, config.model.width = "simple_cnn", 8
  config.train.epochs, config.train.batch_size = 1, 64
  config.optim.name, config.optim.learning_rate, config.optim.schedule = "adam", 3e-3, "constant"
  config.optim.warmup_epochs, config.optim.weight_decay = 0.0, 0.0
  config.runtime.mixed_precision = "float32"
  config.output_dir, config.export.dir = str(root / "run"), str(root / "exports")
  metrics = train_and_evaluate(config_lib.resolve(config))
  return types.SimpleNamespace(run_dir=str(root / "run"), export_dir=str(root / "exports"),
                               export_path=metrics["export_path"], metrics=metrics)


@pytest.fixture(scope="session")
def make_tiny_model():
  """A factory for an untrained simple_cnn (width 4) behind our `normalize` input layer:
  make_tiny_model(shape=(12, 12, 1), classes=3) -> keras.Model, built under the global policy."""
  def make(shape=(12, 12, 1), classes=3):
    import keras  # pylint: disable=g-import-not-at-top
    from app.models import build_model  # pylint: disable=g-import-not-at-top
    config = default.get_config().model
    config.name, config.width = "simple_cnn", 4
    keras.utils.set_random_seed(0)
    return build_model(config, shape, classes, [100.0] * shape[-1], [3000.0] * shape[-1])
  return make


@pytest.fixture(scope="session")
def unsafe_keras_file(tmp_path_factory):
  """A .keras file holding a Python lambda (a Lambda layer) for 28x28x1 images: loading it in
  Keras's safe mode must be refused."""
  import keras  # pylint: disable=g-import-not-at-top
  inputs = keras.Input((28, 28, 1))
  scaled = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
  model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(scaled)))
  path = str(tmp_path_factory.mktemp("unsafe") / "unsafe.keras")
  model.save(path)
  return path
