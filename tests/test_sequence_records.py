"""The recipe's sequence settings agree with the benchmark records they were chosen from.

Notebook 04's quick sequence tasks (``recipe("04_cnn_vs_rnn", "quick")[0]["sequence_tasks"]``), the
training they share (``sequence_training``) and each model's learning rate
(``sequence_learning_rates[task][model]``) were measured by ``benchmarks/sequence_experiments.py``,
which wrote ``benchmarks/results/sequence_<task>.json``. These tests read the records (no training)
and check that the recipe still says what was measured, and that each record chose its rate as
the budget rule says: the lowest validation loss of the grid.

The records count optimiser steps as ``steps`` in all, scored every ``eval_every``; the recipe
counts epochs of ``steps_per_epoch`` steps, scored after each: ``steps_per_epoch = eval_every`` and
``epochs = steps / eval_every``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from course_utils.settings import recipe
from course_utils.training import TrainConfig

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
QUICK = recipe("04_cnn_vs_rnn", "quick")[0]
TASKS = ("adding", "copy", "mnist")


def fix(task: str) -> str:
    """What to do when a record and the recipe disagree."""
    return (
        f"rerun `python -m benchmarks.sequence_experiments --parts {task}` (7 to 9 minutes a task on one "
        f"CPU thread) or update the recipe (course_utils/settings.py, '04_cnn_vs_rnn')"
    )


def record(task: str) -> dict[str, Any]:
    path = RESULTS / f"sequence_{task}.json"
    assert path.is_file(), f"no record {path.name}: {fix(task)}"
    return json.loads(path.read_text())


def recorded_kind(rows: list[dict[str, Any]]) -> str:
    """The task kind ("adding", "copy", "sequential_mnist") from the task names the rows give."""
    names = {row["task"] for row in rows}
    assert len(names) == 1, f"one record holds several tasks: {sorted(names)}"
    name = names.pop()
    return "sequential_mnist" if "sequential MNIST" in name else name


def recorded_settings(result: dict[str, Any]) -> dict[str, Any]:
    """A record's settings in the recipe's form.

    Records written before the settings moved to the recipe keep the TCN's settings as
    ``"tcn": {"levels", "kernel_size"}`` and have no ``"task"`` key (the rows name the task); all
    count ``steps`` and ``eval_every`` where the recipe has ``epochs`` of ``steps_per_epoch`` steps.
    """
    settings = dict(result["settings"])
    if "tcn" in settings:
        tcn = settings.pop("tcn")
        settings["tcn_levels"], settings["tcn_kernel_size"] = tcn["levels"], tcn["kernel_size"]
    if "steps" in settings:
        steps, every = settings.pop("steps"), settings.pop("eval_every")
        assert steps % every == 0, f"{steps} steps are no whole number of epochs of {every}"
        settings["steps_per_epoch"], settings["epochs"] = every, steps // every
    settings.setdefault("task", recorded_kind(result["rows"]))
    return settings


def test_the_recipe_has_settings_and_rates_for_the_same_quick_tasks() -> None:
    assert set(QUICK["sequence_tasks"]) == set(QUICK["sequence_learning_rates"]) == set(TASKS)
    assert QUICK["select_sequence_learning_rates"] is False  # quick uses the recorded rates


@pytest.mark.parametrize("task", TASKS)
def test_the_recipe_trains_as_the_record_did(task: str) -> None:
    """The budget rule of the record (Adam at a constant rate, the gradient norm clipped) is the
    recipe's sequence_training: AdamW without weight decay is Adam, its momentum Adam's beta1."""
    rule = record(task)["budget_rule"]
    config = TrainConfig(epochs=1, lr=1e-3, **QUICK["sequence_training"])
    assert rule["optimizer"] == "Adam, constant learning rate", f"{rule['optimizer']}: {fix(task)}"
    assert (config.optimizer, config.weight_decay, config.momentum) == ("adamw", 0.0, 0.9), fix(task)
    assert config.schedule == "constant" and config.label_smoothing == 0.0, fix(task)
    assert config.grad_clip == rule["grad_clip"], (
        f"sequence_{task}.json clipped the gradient norm to {rule['grad_clip']}, the recipe's "
        f"sequence_training to {config.grad_clip}: {fix(task)}"
    )
    steps = {row["steps"] for row in record(task)["rows"]}
    settings = QUICK["sequence_tasks"][task]
    assert steps == {settings["steps_per_epoch"] * settings["epochs"]}, fix(task)


@pytest.mark.parametrize("task", TASKS)
def test_recorded_settings_are_the_recipes(task: str) -> None:
    settings = recorded_settings(record(task))
    expected = QUICK["sequence_tasks"][task]
    differences = {
        key: (settings.get(key, "missing"), expected.get(key, "missing"))
        for key in {*settings, *expected}
        if settings.get(key, "missing") != expected.get(key, "missing")
    }
    assert not differences, (
        f"benchmarks/results/sequence_{task}.json was measured with other settings than the quick "
        f"recipe's sequence_tasks[{task!r}] ({{setting: (recorded, recipe)}}: {differences}): {fix(task)}"
    )


@pytest.mark.parametrize("task", TASKS)
def test_recorded_grid_is_the_recipes(task: str) -> None:
    result = record(task)
    grid = [float(lr) for lr in QUICK["sequence_lr_grid"]]
    assert [float(lr) for lr in result["budget_rule"]["learning_rates"]] == grid, (
        f"sequence_{task}.json searched {result['budget_rule']['learning_rates']}, the recipe's "
        f"sequence_lr_grid is {grid}: {fix(task)}"
    )
    for row in result["rows"]:
        assert [float(lr) for lr in row["val_loss_per_lr"]] == grid, f"{row['model']}: {fix(task)}"


@pytest.mark.parametrize("task", TASKS)
def test_recorded_learning_rates_are_the_recipes(task: str) -> None:
    rows = record(task)["rows"]
    chosen = {row["model"]: row["lr_chosen"] for row in rows}
    expected = QUICK["sequence_learning_rates"][task]
    assert list(chosen) == list(expected), (
        f"sequence_{task}.json has rows for {list(chosen)}, the recipe's "
        f"sequence_learning_rates[{task!r}] for {list(expected)}: {fix(task)}"
    )
    for model, lr in chosen.items():
        assert math.isclose(lr, expected[model], rel_tol=1e-12), (
            f"{task}, {model}: the record chose lr {lr:g} on the validation split, the recipe's "
            f"sequence_learning_rates[{task!r}][{model!r}] is {expected[model]:g}: {fix(task)}"
        )


@pytest.mark.parametrize("task", TASKS)
def test_each_record_chose_the_lowest_validation_loss(task: str) -> None:
    for row in record(task)["rows"]:
        losses = {float(lr): loss for lr, loss in row["val_loss_per_lr"].items()}
        best = min(losses, key=losses.__getitem__)  # the first of equal losses, as select_learning_rate
        assert math.isclose(row["lr_chosen"], best, rel_tol=1e-12), (
            f"{task}, {row['model']}: lr_chosen is {row['lr_chosen']:g}, but the lowest validation loss "
            f"of {losses} is at {best:g}; the record is not self-consistent: {fix(task)}"
        )
        assert row["val_loss"] == losses[best], f"{task}, {row['model']}: {fix(task)}"
