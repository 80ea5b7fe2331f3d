"""The search-space syntax (config.search.space): what it accepts, and every way it is refused."""

import json

import pytest

from app.core.errors import UsageError
from app.tune import space
from configs import tune_fashion_mnist


@pytest.fixture
def schema():
  return tune_fashion_mnist.get_config()


def test_the_search_recipe_parses_into_keras_tuner_hyperparameters(schema):
  params = space.parse(schema.search.space, schema)
  assert [(p.key, p.kind) for p in params] == [
      ("model.width", "int"), ("optim.learning_rate", "log"), ("optim.weight_decay", "log"),
      ("data.augment", "choice"), ("train.batch_size", "choice")]
  assert params[0].values == (16, 40, 8)
  assert params[3].values == ("flip", "flip|crop(pad=2)")
  hp = space.declare(params)
  assert {p.name for p in hp.space} == {p.key for p in params}
  assert hp.values["model.width"] == 16


def test_floats_choices_of_numbers_and_new_lines(schema):
  params = space.parse("model.dropout=float(0, 0.3)\noptim.momentum=choice(0.9, 0.95)\n"
                       "model.tta=choice('', 'flip'); optim.ema=choice(True, False)", schema)
  assert [p.values for p in params] == [(0, 0.3, None), (0.9, 0.95), ("", "flip"), (True, False)]


def test_lr_find_bounds_come_from_the_range_test(schema, tmp_path):
  path = tmp_path / "lr_find.json"
  path.write_text(json.dumps({"suggested_learning_rate": 0.3}))
  (param,) = space.parse(f"optim.learning_rate=lr_find('{path}', 2)", schema)
  assert param.kind == "log" and param.values == pytest.approx((0.15, 0.6))


@pytest.mark.parametrize("text, message", [
    ("", "the search space is empty"),
    (" ; ", "the search space is empty"),
    ("model.width=int(40, 16)", "bounds out of order"),
    ("optim.learning_rate=log(0.5, 0.5)", "bounds out of order"),
    ("optim.learning_rate=log(0, 0.5)", "needs lo > 0"),
    ("model.widht=int(16, 40)", "unknown config key 'model.widht'"),
    ("model.width=float(16, 40)", "integer key"),
    ("optim.learning_rate=int(1, 4)", "integer key and integer bounds"),
    ("data.augment=int(1, 4)", "search it with choice"),
    ("train.batch_size=choice(128, 128)", "lists a value twice"),
    ("train.batch_size=choice(128)", "at least two values"),
    ("train.batch_size=choice(128, 'big')", "every choice must be one too"),
    ("model.width=int(16, 40); model.width=choice(8, 16)", "names model.width twice"),
    ("model.width=range(16, 40)", "is not a spec"),
    ("model.width", "write key=spec"),
    ("data.augment=choice(flip, crop)", "is not a literal"),
    ("model.width=int(16, 40, 0)", "step 0 must be positive"),
    ("optim.step_epochs=choice(1, 2)", "a section or a sequence"),
    ("search.max_trials=int(1, 4)", "cannot be searched"),
    ("optim.learning_rate=lr_find('/nonexistent/lr_find.json')", "is not an lr_find.json"),
])
def test_bad_spaces_are_refused_naming_the_entry(schema, text, message):
  with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
    space.parse(text, schema)
