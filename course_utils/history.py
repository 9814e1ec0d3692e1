"""The record of a training run: one row of numbers per epoch.

:func:`course_utils.training.fit` returns a :class:`History`; the plots in
:mod:`course_utils.plots` draw it, and it prints as a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from course_utils.tables import format_table

#: The columns every epoch row has, in the order tables show them. Validation columns are
#: ``nan`` when a run has no validation data.
COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
    "images_per_second",
)

# How tables show each column (format specs, as in f"{value:.4f}").
_FORMATS = {
    "epoch": ".0f",
    "train_loss": ".4f",
    "train_accuracy": ".2%",
    "val_loss": ".4f",
    "val_accuracy": ".2%",
    "lr": ".3g",
    "seconds": ".1f",
    "images_per_second": ",.0f",
}


@dataclass
class History:
    """Per-epoch metrics of one training run.

    Attributes:
        rows: one ``dict`` per finished epoch with the keys in :data:`COLUMNS`
            (accuracies are fractions in [0, 1]; ``epoch`` counts from 1; ``seconds`` is
            the wall time of the epoch's training and validation).
        name: a label for plots that compare several runs.
    """

    rows: list[dict[str, float]] = field(default_factory=list)
    name: str = ""

    def append(self, row: dict[str, Any]) -> None:
        """Add one epoch's metrics; missing columns become ``nan``."""
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown history columns {sorted(unknown)}; expected some of {COLUMNS}")
        self.rows.append({c: float(row.get(c, math.nan)) for c in COLUMNS})

    def column(self, name: str) -> list[float]:
        """All epochs' values of one column, e.g. ``history.column("val_accuracy")``."""
        if name not in COLUMNS:
            raise KeyError(f"unknown history column {name!r}; choose one of {COLUMNS}")
        return [row[name] for row in self.rows]

    @property
    def last(self) -> dict[str, float]:
        """The metrics of the last finished epoch."""
        if not self.rows:
            raise IndexError("the history is empty: no epoch has finished yet")
        return self.rows[-1]

    @property
    def total_seconds(self) -> float:
        """Wall time of all epochs together."""
        return float(sum(row["seconds"] for row in self.rows))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, float]:
        return self.rows[index]

    def to_dict(self) -> dict[str, Any]:
        """A JSON- and checkpoint-friendly form (plain lists, floats and strings)."""
        return {"name": self.name, "rows": [dict(row) for row in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Rebuild a history written by :meth:`to_dict`."""
        history = cls(name=str(data.get("name", "")))
        for row in data.get("rows", []):
            history.append(row)
        return history

    def to_table(self, columns: tuple[str, ...] = COLUMNS) -> str:
        """The history as a fixed-width text table, one line per epoch (``-`` for a missing value)."""
        rows = [["-" if math.isnan(row[c]) else row[c] for c in columns] for row in self.rows]
        return format_table(rows, columns, formats=[_FORMATS[c] for c in columns], align="r" * len(columns))

    def __str__(self) -> str:
        return self.to_table()
