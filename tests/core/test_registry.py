"""app/core/registry.py: register by decorator or call, look up by name, unknown names list choices."""

import functools

import pytest

from app.core.errors import UsageError
from app.core.registry import Registry


def test_decorator_registers_and_returns_the_function():
  registry = Registry("widget")

  @registry.register("square")
  def square(x):
    return x * x

  assert registry.get("square") is square
  assert square(3) == 9
  assert "square" in registry
  assert "cube" not in registry


def test_register_with_builder_argument():
  registry = Registry("widget")
  cube = functools.partial(pow, exp=3)
  assert registry.register("cube", cube) is cube
  assert registry.get("cube")(2) == 8


def test_names_are_sorted_and_hide_test_only_names():
  registry = Registry("widget")
  for name in ("zeta", "alpha", "_private"):
    registry.register(name, lambda: None)
  assert registry.names() == ["alpha", "zeta"]
  assert "_private" in registry
  assert registry.get("_private") is not None


def test_unknown_name_raises_usage_error_listing_choices():
  registry = Registry("widget")
  registry.register("alpha", lambda: None)
  registry.register("beta", lambda: None)
  registry.register("_hidden", lambda: None)
  with pytest.raises(UsageError) as error:
    registry.get("gamma")
  message = str(error.value)
  assert "widget" in message and "'gamma'" in message
  assert "alpha, beta" in message
  assert "_hidden" not in message


def test_registering_a_name_twice_is_a_bug():
  registry = Registry("widget")
  registry.register("alpha", lambda: 1)
  with pytest.raises(ValueError, match="alpha"):
    registry.register("alpha", lambda: 2)
  assert registry.get("alpha")() == 1
