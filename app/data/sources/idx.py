"""The IDX file format (LeCun's MNIST format, also used by Fashion-MNIST), gzip or plain."""

import gzip
import struct
import zlib

import numpy as np

from app.core.errors import UsageError

# IDX type codes -> numpy dtypes (big-endian on disk).
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
  """Returns the array stored in an IDX file (`.gz` is decompressed)."""
  opener = gzip.open if str(path).endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise UsageError(f"cannot read IDX file {path}: {e}; replace it with an intact copy") from None
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
    raise UsageError(f"{path} is not an IDX file (bad magic number); pass the original IDX files")
  dtype, ndim = np.dtype(_DTYPES[data[2]]), data[3]
  if len(data) < 4 + 4 * ndim:
    raise UsageError(f"{path} is truncated inside its header; replace it with an intact copy")
  shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
  body = data[4 + 4 * ndim:]
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(body) != expected:
    raise UsageError(
        f"{path} is truncated or padded ({len(body)} bytes of data, header says {expected}); "
        "replace it with an intact copy")
  return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
