"""An export's content hash: assets.extra/integrity.json, the SHA-256 of every other file of the
version folder (graph, variables, metadata, extra formats), written last by the export and checked
before the folder is loaded back (app/serving/saved_model.py load_export).

A SavedModel is a program: its signatures may call any TensorFlow op, tf.io.write_file among
them. The check stops a foreign SavedModel passed by mistake and an export changed or damaged
since it was written; it is no signature (whoever can write the folder can recompute the record),
so --trust_model remains the user's explicit consent to run a graph we did not write, and
docs/SERVING.md says as much.
"""

import hashlib
import os

from app.core import files
from app.core import readers
from app.core.errors import UsageError

RECORD = os.path.join("assets.extra", "integrity.json")
WRITER = "convtrain"  # the record's mark of this application's exports
REEXPORT = "re-export the run with python -m app.export --run_dir=RUN"
TRUST = "or pass --trust_model if you trust whoever wrote it (its graph runs as a program)"


def content_digests(path):
  """{file path relative to `path`: SHA-256 hex digest} for every file of the export folder but
  the record itself (read in 1 MiB chunks: ~0.13 s per 100 MB)."""
  digests = {}
  for directory, folders, names in os.walk(path):
    folders.sort()
    for name in sorted(names):
      file_path = os.path.join(directory, name)
      relative = os.path.relpath(file_path, path)
      if relative == RECORD:
        continue
      digest = hashlib.sha256()
      with open(file_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
          digest.update(chunk)
      digests[relative] = digest.hexdigest()
  return digests


def write(path):
  """Writes the record of the export folder `path` (its last file)."""
  files.write_json(os.path.join(path, RECORD),
                   {"writer": WRITER, "algorithm": "sha256", "files": content_digests(path)})


def verify(path):
  """UsageError unless `path` holds exactly the files, with the contents, that this
  application's export recorded: none added, missing or changed."""
  record_path = os.path.join(path, RECORD)
  if not os.path.isfile(record_path):
    raise UsageError(f"{path} was not written by this application's export (no {RECORD}: a "
                     f"foreign SavedModel, or one exported before content hashes); {REEXPORT}, "
                     f"{TRUST}")
  record = readers.read_json(record_path, "export integrity record", f"{REEXPORT}, {TRUST}")
  recorded = record.get("files")
  if (record.get("writer") != WRITER or record.get("algorithm") != "sha256"
      or not isinstance(recorded, dict)):
    raise UsageError(f"{record_path} is not an integrity record of this application; "
                     f"{REEXPORT}, {TRUST}")
  actual = content_digests(path)
  differ = [name for name in sorted(set(recorded) | set(actual))
            if recorded.get(name) != actual.get(name)]
  if differ:
    state = lambda name: ("added" if name not in recorded else "missing" if name not in actual
                          else "changed")
    what = ", ".join(f"{name} {state(name)}" for name in differ[:3])
    raise UsageError(f"{path} is not as this application exported it ({what}"
                     f"{', ...' if len(differ) > 3 else ''}); {REEXPORT}, {TRUST}")
