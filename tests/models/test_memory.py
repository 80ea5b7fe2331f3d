"""app/models/memory.py: a model too large to build or to train in this machine's memory is one
line naming the flag to lower (issue 19, 16: --config.model.width=100000 was a traceback)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from app.core import memory as machine
from app.core.errors import UsageError
from app.models import build_model
from app.models import memory
from configs import default


def test_training_bytes_counts_weights_gradients_and_every_layer_output():
  inputs = keras.Input((4, 4, 1))
  model = keras.Model(inputs, keras.layers.Dense(3)(inputs))  # 6 weights, all trainable
  weights, activations = memory.training_bytes(model, batch_size=2)
  assert weights == 4 * (6 + 6)
  assert activations == 2 * 4 * (4 * 4 * 1 + 4 * 4 * 3)  # the input and the Dense output
  keras.config.set_dtype_policy("mixed_bfloat16")  # the default precision: 2-byte activations
  try:
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
  finally:
    keras.config.set_dtype_policy("float32")
  assert memory.training_bytes(model, batch_size=2) == (48, 2 * (4 * 16 + 2 * 48))


@pytest.mark.parametrize("error", [
    tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape"
                                     "[3,3,100000,200000]"), MemoryError()])
def test_weights_too_large_to_allocate_are_one_line(error):
  """--config.model.width=100000: simple_cnn's 3 x 3 x 100000 x 200000 kernel (670 GB), which
  TensorFlow's allocator refuses (after its 10 s of retries: the command line shows it whole,
  tools/adversarial/bad_input.py's width_100000), raised from the builder as here."""
  config = default.get_config().model
  config.width = 100000
  with pytest.raises(UsageError, match=r"^the weights of simple_cnn at width 100000 on 28x28x1 "
                     r"images do not fit in memory; lower --config.model.width"):
    with memory.weights_within_memory(config, (28, 28, 1)):
      raise error


def test_a_training_step_too_large_for_memory_names_the_flag_to_lower(monkeypatch):
  config = default.get_config().model
  build_model(config, (28, 28, 1), 10, np.zeros(1), np.ones(1), batch_size=256)  # fits
  monkeypatch.setattr(machine, "machine_bytes", lambda: 2**20)
  with pytest.raises(UsageError, match=r"^training simple_cnn \(.* parameters\) on batches of 256 "
                     r"28x28x1 images \(weights and gradients .*, activations .*\) needs at least "
                     r".* more than this machine's 1.0 MB; lower --batch_size or "
                     r"--config.data.image_size$"):
    build_model(config, (28, 28, 1), 10, np.zeros(1), np.ones(1), batch_size=256)
  build_model(config, (28, 28, 1), 10, np.zeros(1), np.ones(1))  # batch_size=0: not checked
