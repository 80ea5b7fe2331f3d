"""Matrix: every augmentation op x {host, device} x {float32, mixed_bfloat16}. Each case is a real
run (train one epoch on RGB photos, evaluate) whose host spec chains every host op and whose
device spec chains every device op, so an op that fails with another precision, or after another
op, fails its case. (tests/matrix/test_sources.py runs each op alone in some source x resize case,
with export; a guard here fails if an op is registered but in neither chain.)"""

import numpy as np
import pytest

from app.core.errors import UsageError
from app.data.augment import AUGMENTATIONS, parse_terms
from tests.matrix.conftest import run, tiny_config
from tests.matrix.test_sources import DEVICE_OPS, HOST_OPS

# test_sources.py's ops, each alone there, in a row here (its README combination left out).
HOST_CHAIN = "|".join(op for op in HOST_OPS if "|" not in op)
DEVICE_CHAIN = "|".join(DEVICE_OPS)


def _names(spec, on_device):
  return {name for name, _ in parse_terms(spec, on_device, 16, 3)}


def test_the_chains_hold_every_registered_op():
  host, device = _names(HOST_CHAIN, False), _names(DEVICE_CHAIN, True)
  assert host == set(AUGMENTATIONS.names()), set(AUGMENTATIONS.names()) - host
  device_capable = set()
  for name in AUGMENTATIONS.names():  # an op with a device form must be in the device chain
    try:
      parse_terms(name, True, 16, 3)
      device_capable.add(name)
    except UsageError:  # refused on device: a host-only op
      pass
  assert device == device_capable, device_capable - device


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "float32"])
def test_every_op_on_host_and_device_trains_under_each_precision(precision, tmp_path, matrix_data,
                                                                 restore_precision):
  config = tiny_config(tmp_path, matrix_data["folder"], **{
      "data.augment": HOST_CHAIN, "data.augment_on_device": DEVICE_CHAIN,
      "runtime.mixed_precision": precision, "export.enabled": False})
  metrics = run(config)
  assert metrics["epochs_completed"] == 1 and np.isfinite(metrics["test_loss"])
