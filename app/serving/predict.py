"""Top-k classes for image files from an export (app.serving), as a table, CSV or JSON.

Files go through the export's `serve_bytes` signature, the one TF Serving clients use, so what
`python -m app.predict` prints is what a server answers. A file that cannot be read or decoded
is reported on its own row; the other files are still predicted.
"""

import csv
import io
import json
import os

import numpy as np
import tensorflow as tf

from app.core import console
from app.data import images as images_lib
from app.data.sources import IMAGE_EXTENSIONS
from app.core.errors import UsageError
from app.core.registry import Registry

OUTPUT_FORMATS = Registry("output format")


def list_images(paths):
  """Files as given (whatever their extension: a bad one is reported, not skipped) and, for each
  folder, the image files under it, sorted."""
  if not paths:
    raise UsageError("no images given; pass image files or folders after the flags, e.g. "
                     "python -m app.predict --model=saved_models/fashion_mnist/1 photo.png")
  files = []
  for path in paths:
    if not os.path.isdir(path):
      files.append(path)
      continue
    found = sorted(os.path.join(d, f) for d, _, names in os.walk(path) for f in names
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not found:
      raise UsageError(f"folder {path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    files.extend(found)
  return files


def _read_image(path, channels):
  """(encoded bytes, None) for a decodable image file, else (None, the reason)."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    return None, f"cannot read it ({e.strerror or e})"
  try:
    with console.native_stderr_hidden():  # libjpeg's own complaint: our one-line reason is clearer
      images_lib.decode(data, channels)
  except (tf.errors.InvalidArgumentError, ValueError):
    return None, "not a decodable image (JPEG, PNG, GIF or BMP); skipped"
  return data, None


def predict_files(loaded, metadata, paths, top_k=3, batch_size=64):
  """One row per file: {"file", "predictions": [{"rank", "class_id", "class_name",
  "probability"}, ...] best first, "error": None} or, for a bad file, predictions [] and the
  error. Rows keep the order of `paths`."""
  class_names = metadata["class_names"]
  if not 1 <= top_k <= len(class_names):
    raise UsageError(f"top_k={top_k} must be between 1 and the {len(class_names)} classes")
  channels = metadata["input_shape"][-1]
  rows = [{"file": path, "predictions": [], "error": None} for path in paths]
  readable = []
  for row in rows:
    data, row["error"] = _read_image(row["file"], channels)
    if data is not None:
      readable.append((row, data))
  serve_bytes = loaded.signatures["serve_bytes"]
  for start in range(0, len(readable), batch_size):
    batch = readable[start:start + batch_size]
    outputs = serve_bytes(image_bytes=tf.constant([data for _, data in batch]))
    for (row, _), probabilities in zip(batch, outputs["probabilities"].numpy()):
      best = np.argsort(-probabilities, kind="stable")[:top_k]
      row["predictions"] = [
          {"rank": rank, "class_id": int(i), "class_name": class_names[i],
           "probability": float(probabilities[i])} for rank, i in enumerate(best, 1)]
  return rows


@OUTPUT_FORMATS.register("table")
def as_table(rows):
  lines = [("file", "rank", "class_id", "class", "probability")]
  for row in rows:
    if row["error"]:
      lines.append((row["file"], "-", "-", "error: " + row["error"], "-"))
    for p in row["predictions"]:
      lines.append((row["file"] if p["rank"] == 1 else "", str(p["rank"]), str(p["class_id"]),
                    p["class_name"], f"{p['probability']:.4f}"))
  widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
  return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                   for line in lines) + "\n"


@OUTPUT_FORMATS.register("csv")
def as_csv(rows):
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(["file", "rank", "class_id", "class_name", "probability", "error"])
  for row in rows:
    if row["error"]:
      writer.writerow([row["file"], "", "", "", "", row["error"]])
    for p in row["predictions"]:
      writer.writerow([row["file"], p["rank"], p["class_id"], p["class_name"],
                       f"{p['probability']:.6f}", ""])
  return out.getvalue()


@OUTPUT_FORMATS.register("json")
def as_json(rows):
  return json.dumps(rows, indent=2) + "\n"
