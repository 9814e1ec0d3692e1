"""Plain-text tables, the one way every module and notebook prints rows of results.

``format_table`` lines up columns like the tables in a paper: text left-aligned, numbers
right-aligned, one header line. It returns a string: print it, write it to a log, compare it in a test.
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
        ValueError: rows, ``headers``, ``formats`` or ``align`` of different lengths.
    """
    rows = [list(row) for row in rows]
    width = len(headers) if headers is not None else (len(rows[0]) if rows else 0)
    for name, given in (("formats", formats), ("align", align)):
        if given is not None and len(given) != width:
            raise ValueError(f"{name} has {len(given)} columns, the table {width}")
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row has {len(row)} cells, the table {width} columns: {row!r}")
    formats = formats or [None] * width
    if align is None:  # numbers (in the first row) to the right, everything else to the left
        align = "".join("r" if _is_number(cell) else "l" for cell in (rows[0] if rows else [""] * width))
    if set(align) - {"l", "r"}:
        raise ValueError(f"align takes the letters 'l' and 'r', got {align!r}")
    lines = [list(map(str, headers))] if headers is not None else []
    lines += [[format(v, f) if f and _is_number(v) else str(v) for v, f in zip(row, formats)] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(width)]
    justify = {"l": str.ljust, "r": str.rjust}
    aligned = [[justify[side](cell, w) for cell, w, side in zip(line, widths, align)] for line in lines]
    return "\n".join((" " * gap).join(line).rstrip() for line in aligned)
