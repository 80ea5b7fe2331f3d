"""app/evaluate/verdict.py: a model at chance, a late validation collapse and a training loss that
ended badly are warned of (issue 18, item 4); a run that learnt is not."""

import math

import pytest

from app.evaluate import verdict

BALANCED_5 = [40, 40, 40, 40, 40]  # majority rate 0.20


def _codes(warnings):
  return [w["code"] for w in warnings]


def test_the_issues_run_is_flagged_at_chance_and_as_a_collapse():
  """Test accuracy 0.200 on 5 balanced classes after validation fell from 0.448 to 0.200."""
  warnings = verdict.check_run(0.200, BALANCED_5, 0.200, BALANCED_5,
                               {"loss": [1.6, 1.5, 1.58], "val_accuracy": [0.30, 0.448, 0.200]},
                               steps_trained=12)
  assert _codes(warnings) == ["chance_level", "chance_level", "validation_collapse"]
  test, _, collapse = warnings
  assert test["figures"] == {"split": "test", "accuracy": 0.2, "majority_rate": 0.2,
                             "margin": 0.02, "images": 200, "steps_trained": 12}
  assert test["message"].startswith("test accuracy 0.200 is at chance after 12 training steps: "
                                    "always answering the most common class scores 0.200")
  for fix in ("python -m app.lr_find", "--learning_rate", "--epochs", "--batch_size",
              "--config.data.image_size"):
    assert fix in test["message"], fix
  assert collapse["figures"]["best_accuracy"] == 0.448 and collapse["figures"]["best_epoch"] == 2
  assert "0.448 of epoch 2" in collapse["message"]
  for fix in ("early_stopping_patience", "best.keras", "--learning_rate", "float32"):
    assert fix in collapse["message"], fix
  assert all("\n" not in w["message"] for w in warnings)


@pytest.mark.parametrize("accuracy,counts,flagged", [
    (0.219, BALANCED_5, True),  # within 2 points of 0.20
    (0.221, BALANCED_5, False),
    (0.05, BALANCED_5, True),  # below chance
    (0.75, [75, 10, 15], True),  # always "class 0" on an unbalanced split scores 0.75
    (0.765, [75, 10, 15], True),
    (0.775, [75, 10, 15], False),
    (0.80, [25, 25, 25, 25], False),
])
def test_chance_level_is_the_majority_class_rate_plus_two_points(accuracy, counts, flagged):
  assert bool(verdict.chance_level(accuracy, counts, "test")) == flagged


def test_validation_on_the_test_split_is_checked_once():
  """data.validation_split=0 (the speedrun convention): the validation figures are the test's."""
  warnings = verdict.check_run(0.2, BALANCED_5, 0.2, BALANCED_5, {"val_accuracy": [0.2]},
                               validation_is_test=True)
  assert _codes(warnings) == ["chance_level"]


@pytest.mark.parametrize("final,history,flagged", [
    (0.348, [0.30, 0.448], False),  # 10 points, but 22%: under the 25% share
    (0.30, [0.40, 0.35], True),  # 10 points and 25%: at both thresholds
    (0.30, [0.30, 0.448], True),  # 14.8 points, 33%
    (0.85, [0.90, 0.95], False),  # 10 points but 10.5%: a high-accuracy wobble
    (0.70, [0.90, 0.95], True),
    (0.40, [0.30, 0.448], False),  # 4.8 points
    (0.448, [0.30, 0.448, 0.20], False),  # early stopping restored the best
])
def test_collapse_needs_ten_points_and_a_quarter_of_the_best(final, history, flagged):
  assert bool(verdict.collapse(final, history)) == flagged


def test_collapse_names_the_epoch_of_the_best_when_validating_every_few_epochs():
  (warning,) = verdict.collapse(0.1, [0.3, 0.6, 0.2], validation_every=3)
  assert warning["figures"]["best_epoch"] == 6 and "of epoch 6" in warning["message"]


def test_a_good_run_is_not_flagged():
  history = {"loss": [2.0, 1.1, 0.7], "val_accuracy": [0.55, 0.70, 0.78]}
  assert verdict.check_run(0.79, [100] * 10, 0.78, [10] * 10, history, steps_trained=300) == []


def test_a_loss_that_ended_non_finite_or_higher_than_it_started():
  (diverged,) = verdict.loss_trend([2.3, math.nan])
  assert diverged["code"] == "loss_not_finite" and diverged["figures"]["last_loss"] == "nan"
  (rose,) = verdict.loss_trend([2.3, 1.9, 2.5])
  assert rose["code"] == "loss_rose" and "from 2.3000 (epoch 1) to 2.5000 (epoch 3)" in rose[
      "message"]
  assert verdict.loss_trend([2.3]) == verdict.loss_trend([]) == verdict.loss_trend([2.3, 1.0]) == []


def test_report_prints_one_warning_line_each(capsys):
  verdict.report(verdict.chance_level(0.2, BALANCED_5, "test"))
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1 and lines[0].startswith("warning: test accuracy 0.200 is at chance")
