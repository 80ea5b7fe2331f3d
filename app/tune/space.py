"""The search space, declared in the recipe as data (config.search.space) and parsed here.

  "model.width=int(16, 40, 8); optim.learning_rate=log(0.05, 0.8);
   data.augment=choice('flip', 'flip|crop(pad=2)'); train.batch_size=choice(128, 256, 512)"

Entries are separated by ";" (or new lines); each is a dotted recipe key and one of
  int(lo, hi[, step])     integers lo..hi (both included), step 1 by default
  float(lo, hi[, step])   uniform floats (a step makes a grid)
  log(lo, hi)             floats sampled on a log scale (learning rates, weight decay); lo > 0
  choice(a, b, ...)       distinct values of the key's type (strings quoted)
  lr_find(path[, factor]) log(rate / factor, rate * factor) around the suggested rate of an
                          lr_find.json (python -m app.lr_find); factor 3 by default
Arguments are Python literals, read with ast.literal_eval: nothing in a recipe's space is run.
`parse` checks everything it can without the data: keys, types, bounds, duplicates.
"""

import ast
import dataclasses
import re

from app.core.errors import UsageError

KINDS = ("int", "float", "log", "choice", "lr_find")
# Keys a trial may not change: they name the search's own files or settings.
_UNSEARCHABLE = re.compile(r"^(search\.|output_dir$|export\.|train\.backup_dir$)")


@dataclasses.dataclass(frozen=True)
class Param:
  """One searched key. `kind` is int, float, log or choice (lr_find is read into a log)."""
  key: str
  kind: str
  values: tuple  # (lo, hi, step) for int/float, (lo, hi) for log, the choices for choice

  def declare(self, hp):
    """Adds this key to a keras_tuner.HyperParameters."""
    if self.kind == "int":
      return hp.Int(self.key, self.values[0], self.values[1], step=self.values[2])
    if self.kind == "float":
      return hp.Float(self.key, self.values[0], self.values[1], step=self.values[2])
    if self.kind == "log":
      return hp.Float(self.key, self.values[0], self.values[1], sampling="log")
    return hp.Choice(self.key, list(self.values))

  def extremes(self):
    """The values that bound this key's range: every choice, or the two ends."""
    return self.values if self.kind == "choice" else self.values[:2]


def _fail(entry, message):
  raise UsageError(f"search space entry {entry!r}: {message}")


def _literal(entry, node):
  try:
    return ast.literal_eval(node)
  except ValueError:
    _fail(entry, f"{ast.unparse(node)} is not a literal; quote strings, e.g. choice('flip', 'crop')")


def _read_lr_find(entry, path, factor):
  # Imported here, as keras_tuner in declare(): app.optim loads Keras, and a space without
  # lr_find(...) parses without TensorFlow start-up.
  from app.optim.lr_find import read_suggested_rate  # pylint: disable=g-import-not-at-top
  try:
    rate = read_suggested_rate(path)
  except UsageError as e:
    # Its messages name optim.learning_rate_from; an entry of the space says it in its own words.
    if e.__context__ is None:  # the file was read, but its rate is not positive
      _fail(entry, str(e))
    _fail(entry, f"{path} is not an lr_find.json ({e.__context__}); run python -m app.lr_find "
          "first")
  if not factor > 1:
    _fail(entry, f"needs a positive suggested rate and a factor > 1; got {rate} and {factor}")
  return rate / factor, rate * factor


def _schema_value(entry, key, schema):
  node = schema
  for part in key.split("."):
    if not hasattr(node, "keys") or part not in node:
      _fail(entry, f"unknown config key {key!r}; python -m app.train --help lists the keys")
    node = node[part]
  if hasattr(node, "keys") or isinstance(node, (tuple, list)):
    _fail(entry, f"{key} is a section or a sequence; search one scalar key at a time")
  if _UNSEARCHABLE.match(key):
    _fail(entry, f"{key} cannot be searched (it names the search's own files or settings)")
  return node


def _is_number(value):
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_range(entry, kind, key, current, args):
  if not 2 <= len(args) <= (2 if kind == "log" else 3):
    _fail(entry, f"{kind} takes (lo, hi{'' if kind == 'log' else '[, step]'}); got {len(args)} "
          "arguments")
  if not all(_is_number(a) for a in args):
    _fail(entry, f"{kind} bounds must be numbers; got {args}")
  if isinstance(current, bool) or not _is_number(current):
    _fail(entry, f"{key} holds a {type(current).__name__}; search it with choice(...)")
  if kind == "int" and not (isinstance(current, int) and all(isinstance(a, int) for a in args)):
    _fail(entry, f"int(...) needs an integer key and integer bounds; {key} is "
          f"{type(current).__name__}: use float(...) or log(...)")
  if kind != "int" and isinstance(current, int):
    _fail(entry, f"{key} is an integer key; search it with int(lo, hi[, step]) or choice(...)")
  lo, hi, step = (list(args) + [None])[:3]
  if not lo < hi:
    _fail(entry, f"bounds out of order: lo={lo} must be below hi={hi}")
  if kind == "log" and lo <= 0:
    _fail(entry, f"log(...) needs lo > 0; got {lo}")
  if step is not None and not 0 < step <= hi - lo:
    _fail(entry, f"step {step} must be positive and at most hi - lo = {hi - lo}")
  if kind == "int":
    step = step or 1
  return (float(lo), float(hi)) if kind == "log" else (lo, hi, step)


def _check_choice(entry, key, current, args):
  if len(args) < 2:
    _fail(entry, "a choice needs at least two values (a single value belongs in the recipe)")
  if len(set(args)) != len(args):
    _fail(entry, f"choice lists a value twice: {args}")
  if isinstance(current, bool):
    ok = all(isinstance(a, bool) for a in args)
  elif isinstance(current, int):
    ok = all(isinstance(a, int) and not isinstance(a, bool) for a in args)
  elif isinstance(current, float):
    ok = all(_is_number(a) for a in args)
    args = tuple(float(a) for a in args) if ok else args
  else:
    ok = all(isinstance(a, type(current)) for a in args)
  if not ok:
    _fail(entry, f"{key} holds a {type(current).__name__}; every choice must be one too "
          f"(got {args})")
  return tuple(args)


def _parse_entry(entry, schema):
  key, equals, spec = entry.partition("=")
  key, spec = key.strip(), spec.strip()
  if not equals or not key or not spec:
    _fail(entry, "write key=spec, e.g. model.width=int(16, 40, 8)")
  current = _schema_value(entry, key, schema)
  try:
    call = ast.parse(spec, mode="eval").body
  except SyntaxError:
    _fail(entry, f"{spec!r} is not a spec; write one of {', '.join(k + '(...)' for k in KINDS)}")
  if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not call.keywords
          and call.func.id in KINDS):
    _fail(entry, f"{spec!r} is not a spec; write one of {', '.join(k + '(...)' for k in KINDS)}")
  kind, args = call.func.id, tuple(_literal(entry, node) for node in call.args)
  if kind == "lr_find":
    if not 1 <= len(args) <= 2 or not isinstance(args[0], str):
      _fail(entry, "write lr_find('path/to/lr_find.json'[, factor])")
    kind, args = "log", _read_lr_find(entry, args[0], args[1] if len(args) > 1 else 3.0)
  if kind == "choice":
    return Param(key, kind, _check_choice(entry, key, current, args))
  return Param(key, kind, _check_range(entry, kind, key, current, args))


def parse(text, schema):
  """config.search.space -> [Param], checked against `schema` (the recipe: keys and types).
  UsageError names the entry and what to change."""
  entries = [e.strip() for e in re.split(r"[;\n]", text or "") if e.strip()]
  if not entries:
    raise UsageError("the search space is empty; set config.search.space in the recipe (or "
                     "--config.search.space=\"model.width=int(16, 40, 8); "
                     "optim.learning_rate=log(0.05, 0.8)\")")
  params = [_parse_entry(entry, schema) for entry in entries]
  keys = [p.key for p in params]
  twice = sorted({k for k in keys if keys.count(k) > 1})
  if twice:
    raise UsageError(f"the search space names {', '.join(twice)} twice; keep one entry per key")
  return params


def declare(params):
  """A keras_tuner.HyperParameters holding the space (the oracle samples from it)."""
  import keras_tuner  # pylint: disable=g-import-not-at-top
  hp = keras_tuner.HyperParameters()
  for param in params:
    param.declare(hp)
  return hp
