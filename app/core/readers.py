"""Reading the files a user hands back to us (a run's config.yaml and metrics.json, an export's
metadata, a search's state): each may be foreign, edited or cut short by a kill, so each is read
here and nowhere else, with safe parsers only, and any failure is one UsageError naming the file
and the fix. The callers check the shape of what was read (`expect`, then their own keys)."""

import json

import yaml

from app.core.errors import UsageError


def _first_line(error):
  return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]


def _parsed(path, parse, what, fix, expect):
  try:
    with open(path, "rb") as f:
      value = parse(f.read().decode("utf-8"))
  except OSError as e:
    raise UsageError(f"cannot read {what} {path} ({e.strerror or e}); {fix}") from None
  # JSONDecodeError and UnicodeDecodeError are ValueErrors; RecursionError: nested too deep.
  except (ValueError, RecursionError, yaml.YAMLError) as e:
    raise UsageError(f"{what} {path} is damaged or not ours ({_first_line(e)}); {fix}") from None
  if expect is not None and not isinstance(value, expect):
    raise UsageError(f"{what} {path} does not hold a {expect.__name__} (found "
                     f"{type(value).__name__}); {fix}")
  return value


def read_json(path, what, fix, expect=dict):
  """The JSON in `path`, which must be an `expect` (None: anything); a missing, unreadable,
  truncated or foreign file is a UsageError "<what> <path> ...; <fix>"."""
  return _parsed(path, json.loads, what, fix, expect)


def read_yaml(path, what, fix, expect=dict):
  """As read_json, for YAML, read by yaml.safe_load: a Python tag (!!python/object/apply:...)
  is refused rather than constructed."""
  return _parsed(path, yaml.safe_load, what, fix, expect)
