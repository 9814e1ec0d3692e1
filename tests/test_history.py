"""course_utils.history: the per-epoch record of a run."""

import math

import pytest

from course_utils.history import COLUMNS, History


def make_history():
    history = History(name="run")
    history.append({"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "lr": 0.1, "seconds": 2.0})
    history.append(
        {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.8, "val_accuracy": 0.75, "seconds": 3.0}
    )
    return history


def test_rows_have_every_column_and_missing_ones_are_nan():
    history = make_history()
    assert len(history) == 2
    assert set(history[0]) == set(COLUMNS)
    assert math.isnan(history[0]["val_accuracy"])
    assert history.column("train_loss") == [1.0, 0.5]
    assert history.last["val_accuracy"] == 0.75
    assert history.total_seconds == 5.0


def test_round_trip_through_dict():
    history = make_history()
    again = History.from_dict(history.to_dict())
    assert again.name == "run"
    assert again.column("train_accuracy") == history.column("train_accuracy")


def test_table_formats_values():
    table = make_history().to_table()
    lines = table.splitlines()
    assert len(lines) == 3
    assert "train_accuracy" in lines[0]
    assert "80.00%" in lines[2] and "75.00%" in lines[2]
    assert "-" in lines[1]  # no validation in epoch 1


def test_unknown_columns_are_refused():
    history = History()
    with pytest.raises(KeyError, match="unknown history columns"):
        history.append({"epoch": 1, "acc": 0.5})
    with pytest.raises(KeyError, match="unknown history column 'acc'"):
        history.column("acc")
    with pytest.raises(IndexError, match="empty"):
        _ = history.last
