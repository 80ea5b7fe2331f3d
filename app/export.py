"""SavedModel export in the TF Serving layout: <export_dir>/<name>/<version>/, written atomically.

The model is saved into a hidden temporary folder beside the versions (TF Serving ignores
non-numeric names) and renamed to the next free integer version, so a reader never sees half an
export and an existing version is never overwritten.
"""

import json
import os
import shutil
import tempfile

from app.errors import UsageError

METADATA_FILE = os.path.join("assets.extra", "metadata.json")


def existing_versions(base):
  if not os.path.isdir(base):
    return []
  return sorted(int(d) for d in os.listdir(base) if d.isdigit())


def export_saved_model(model, export_dir, name, metadata):
  """Exports `model` (Keras `Model.export`, endpoint `serve` = signature `serving_default`) and
  returns the version folder's path. `metadata` (JSON-able) goes to assets.extra/metadata.json."""
  if os.sep in name or (os.altsep and os.altsep in name) or name in ("", ".", ".."):
    raise UsageError(f"export name {name!r} must be a plain folder name (no path separators or '..')")
  base = os.path.join(export_dir, name)
  os.makedirs(base, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".export-", dir=base)
  try:
    saved_model = os.path.join(staging, "model")
    model.export(saved_model, format="tf_saved_model", verbose=False)
    os.makedirs(os.path.join(saved_model, "assets.extra"), exist_ok=True)
    versions = existing_versions(base)
    version = (versions[-1] if versions else 0) + 1
    metadata = dict(metadata, version=version)
    with open(os.path.join(saved_model, METADATA_FILE), "w") as f:
      json.dump(metadata, f, indent=2)
    target = os.path.join(base, str(version))
    if os.path.exists(target):  # a concurrent export took it: never overwrite
      raise UsageError(f"export version {target} appeared while exporting; export again")
    os.rename(saved_model, target)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return target
