"""Probabilities and labels made for the evaluation tests (tests/evaluate/)."""

import numpy as np
import pytest

CLASSES = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture(scope="session")
def predictions():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, len(CLASSES), 300)
  logits = rng.normal(size=(300, len(CLASSES))) + 2.0 * np.eye(len(CLASSES))[labels]
  probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  return probabilities, labels
