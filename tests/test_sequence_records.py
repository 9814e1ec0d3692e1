"""Notebook 05's recipe says what its benchmark records measured.

The quick profile's sequence tasks (``recipe("05_sequences_attention", "quick")[0]["tasks"]``), the training
they share (``training``), the learning-rate grid (``lr_grid``), each model's rate
(``learning_rates[task][model]``) and the checks the notebook asserts were measured by
``benchmarks/sequence_experiments.py``, which wrote ``benchmarks/results/sequence_<task>.json``. These tests
read the records (no training) and check that the recipe still says what was measured, that each record
chose its rate as the budget rule says (the lowest validation loss of the grid, never at an edge of it), and
that every seed of the records passes the quick profile's checks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from course_utils.settings import recipe

NOTEBOOK = "05_sequences_attention"
RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
QUICK, QUICK_CHECKS = recipe(NOTEBOOK, "quick")
TASKS = ("adding", "copy", "mnist", "permuted_mnist")
RECORDS = TASKS
MODELS = ["TCN", "LSTM", "GRU", "RNN"]
RECURRENT = ("LSTM", "GRU", "RNN")
FIX = (
    "rerun `python -m benchmarks.sequence_experiments` (about an hour on a 2-core CPU) and copy the rates "
    "it chooses into the recipe (course_utils/settings.py, RECIPES['05_sequences_attention'])"
)


def record(name: str) -> dict[str, Any]:
    path = RESULTS / f"sequence_{name}.json"
    assert path.is_file(), f"no record {path.name}: {FIX}"
    return json.loads(path.read_text())


def expected_settings(name: str) -> dict[str, Any]:
    """The recipe's quick settings of a task."""
    return QUICK["tasks"][name]


def seed_scores(name: str, model: str, key: str) -> list[float]:
    """One score of every seed of one model in a record, e.g. its test losses over chance."""
    (row,) = [row for row in record(name)["rows"] if row["model"] == model]
    return [seed[key] for seed in row["seeds"]]


def test_the_quick_recipe_has_rates_for_its_tasks_and_uses_them():
    assert list(QUICK["tasks"]) == list(TASKS)
    assert set(QUICK["learning_rates"]) == set(TASKS)
    assert all(list(rates) == MODELS for rates in QUICK["learning_rates"].values())
    assert QUICK["select_learning_rates"] is False  # quick trains at the recorded rates


@pytest.mark.parametrize("name", RECORDS)
def test_recorded_settings_training_grid_and_seeds_are_the_recipes(name):
    result = record(name)
    assert result["notebook"] == NOTEBOOK, FIX
    assert result["settings"] == expected_settings(name), (
        f"sequence_{name}.json was measured with {result['settings']}, the quick recipe says "
        f"{expected_settings(name)}: {FIX}"
    )
    rule = result["budget_rule"]
    assert rule["training"] == QUICK["training"], f"{name}: trained with {rule['training']}: {FIX}"
    assert rule["lr_grid"] == QUICK["lr_grid"], f"{name}: searched {rule['lr_grid']}: {FIX}"
    assert rule["seeds"] == list(range(QUICK["seeds"])), f"{name}: seeds {rule['seeds']}: {FIX}"
    assert [row["model"] for row in result["rows"]] == MODELS, FIX
    for row in result["rows"]:
        assert [float(lr) for lr in row["val_loss_per_lr"]] == QUICK["lr_grid"], f"{row['model']}: {FIX}"
        assert [seed["seed"] for seed in row["seeds"]] == rule["seeds"], f"{row['model']}: {FIX}"


@pytest.mark.parametrize("name", RECORDS)
def test_each_record_chose_the_lowest_validation_loss_inside_the_grid(name):
    grid = QUICK["lr_grid"]
    for row in record(name)["rows"]:
        losses = {float(lr): loss for lr, loss in row["val_loss_per_lr"].items()}
        best = min(losses, key=losses.__getitem__)  # the first of equal losses, as select_learning_rate
        assert math.isclose(row["lr_chosen"], best, rel_tol=1e-12), (
            f"{name}, {row['model']}: lr_chosen is {row['lr_chosen']:g}, but the lowest validation loss "
            f"of {losses} is at {best:g}: the record is not self-consistent: {FIX}"
        )
        assert best not in (grid[0], grid[-1]) and not row["at_grid_edge"], (
            f"{name}, {row['model']}: the chosen rate {best:g} is at an edge of the grid {grid}: a better "
            f"one may lie beyond it; widen lr_grid and {FIX}"
        )
        # Seed 0 trained afresh at the chosen rate repeats the grid's run at that rate, bit for bit.
        assert row["seeds"][0]["val_loss"] == losses[best], f"{name}, {row['model']}: {FIX}"


@pytest.mark.parametrize("task", TASKS)
def test_the_recipes_learning_rates_are_the_recorded_choices(task):
    chosen = {row["model"]: row["lr_chosen"] for row in record(task)["rows"]}
    expected = QUICK["learning_rates"][task]
    for model, lr in chosen.items():
        assert math.isclose(lr, expected[model], rel_tol=1e-12), (
            f"{task}, {model}: the record chose lr {lr:g} on the validation split, the recipe's "
            f"learning_rates[{task!r}][{model!r}] is {expected[model]:g}: {FIX}"
        )


# --- the quick profile's checks hold for every recorded seed --------------------------------------------


def test_every_seed_passes_the_adding_checks():
    for model in ("TCN", "LSTM", "GRU"):
        ratios = seed_scores("adding", model, "loss_over_chance")
        assert max(ratios) <= QUICK_CHECKS["max_adding_solved_loss_ratio"], (model, ratios)
    ratios = seed_scores("adding", "RNN", "loss_over_chance")
    assert min(ratios) >= QUICK_CHECKS["min_adding_rnn_loss_ratio"], ratios


def test_every_seed_passes_the_copy_checks():
    accuracies = seed_scores("copy", "TCN", "test_accuracy")
    assert min(accuracies) >= QUICK_CHECKS["min_copy_tcn_accuracy"], accuracies
    for model in RECURRENT:
        accuracies = seed_scores("copy", model, "test_accuracy")
        assert max(accuracies) <= QUICK_CHECKS["max_copy_recurrent_accuracy"], (model, accuracies)


def test_every_seed_passes_the_sequential_mnist_check():
    accuracies = seed_scores("mnist", "TCN", "test_accuracy")
    assert min(accuracies) >= QUICK_CHECKS["min_seq_mnist_tcn_accuracy"], accuracies


def test_every_seed_passes_the_permuted_mnist_checks():
    """The notebook's claims on permuted sequential MNIST: the TCN ahead of all three recurrent networks, and
    the plain RNN ahead of the LSTM: each in every seed, and the means apart by more than either model's range
    over the seeds."""
    accuracies = {model: seed_scores("permuted_mnist", model, "test_accuracy") for model in MODELS}

    def beats(first: str, second: str) -> bool:  # as the notebook's beats(): see its section 4a
        a, b = accuracies[first], accuracies[second]
        spread = max(max(values) - min(values) for values in (a, b))
        return all(x > y for x, y in zip(a, b)) and sum(a) / len(a) - sum(b) / len(b) > spread

    assert all(beats("TCN", model) for model in RECURRENT), accuracies
    assert beats("RNN", "LSTM"), accuracies
