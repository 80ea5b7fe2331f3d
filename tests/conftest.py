"""Session fixtures: the real data sets the tests read, and a fresh data config to modify."""

import os
import zipfile

import pytest

from configs import default

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
CIFAR_MINI_ZIP = os.path.join(REPO_ROOT, "..", "shared", "datasets", "cifar10-jpg-mini.zip")


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
