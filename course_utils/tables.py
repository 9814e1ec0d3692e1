"""Plain-text tables, the one way every module and notebook prints rows of results.

``format_table`` lines up columns so that a printed table reads like the tables in a paper:
text left-aligned, numbers right-aligned, one header line. It returns a string, so the same
table can be printed in a notebook, written to a log, or compared in a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_table(
    rows: Sequence[Sequence[Any]],
    headers: Sequence[str] | None = None,
    *,
    formats: Sequence[str | None] | None = None,
    align: str | None = None,
    gap: int = 2,
) -> str:
    """Rows of values as a fixed-width text table.

    Args:
        rows: one sequence of cell values per row, all of the same length.
        headers: the column titles, or None for no header line.
        formats: one format spec per column (``",d"``, ``".2%"``, ``".1f"``) applied to
            numbers, or None for ``str(value)``; a cell that is already a string is kept.
        align: one letter per column, ``"l"`` or ``"r"``; by default numbers (in the first
            row) are right-aligned and everything else left-aligned.
        gap: spaces between columns.

    Returns:
        The table, lines joined by ``"\\n"``, without trailing spaces.

    Raises:
        ValueError: rows of different lengths, or ``formats`` / ``align`` / ``headers`` of
            another length than the rows.
    """
    rows = [list(row) for row in rows]
    width = len(headers) if headers is not None else (len(rows[0]) if rows else 0)
    for name, given in (("a row", None), ("formats", formats), ("align", align)):
        if given is not None and len(given) != width:
            raise ValueError(f"{name} has {len(given)} columns, the table {width}")
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row has {len(row)} cells, the table {width} columns: {row!r}")
    formats = list(formats) if formats is not None else [None] * width
    if align is None:
        first = rows[0] if rows else [""] * width
        align = "".join("r" if _is_number(cell) else "l" for cell in first)
    if set(align) - {"l", "r"}:
        raise ValueError(f"align takes the letters 'l' and 'r', got {align!r}")

    def text(value: Any, spec: str | None) -> str:
        if isinstance(value, str) or spec is None or not _is_number(value):
            return str(value)
        return format(value, spec)

    cells = [[text(value, spec) for value, spec in zip(row, formats)] for row in rows]
    lines = ([list(map(str, headers))] if headers is not None else []) + cells
    widths = [max(len(line[i]) for line in lines) for i in range(width)]
    padding = " " * gap
    out = []
    for line in lines:
        parts = [
            cell.rjust(w) if side == "r" else cell.ljust(w) for cell, w, side in zip(line, widths, align)
        ]
        out.append(padding.join(parts).rstrip())
    return "\n".join(out)
