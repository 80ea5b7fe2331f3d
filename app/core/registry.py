"""One small registry class; every pluggable kind (models, datasets, optimizers, ...) uses it."""

from app.core.errors import UsageError


class Registry:
  """Maps a name to a builder. Names starting with `_` are test-only and hidden from `names()`."""

  def __init__(self, kind):
    self.kind = kind
    self._builders = {}

  def register(self, name, builder=None):
    """`@REG.register("name")` on a function, or `REG.register("name", partial(...))`."""

    def add(fn):
      if name in self._builders:
        raise ValueError(f"{self.kind} {name!r} is registered twice")
      self._builders[name] = fn
      return fn

    return add(builder) if builder is not None else add

  def get(self, name):
    if name not in self._builders:
      raise UsageError(
          f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
    return self._builders[name]

  def names(self):
    return sorted(n for n in self._builders if not n.startswith("_"))

  def __contains__(self, name):
    return name in self._builders
