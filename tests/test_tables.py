"""Tests for course_utils.tables: columns line up, numbers are formatted, bad shapes are refused."""

import re

import pytest

from course_utils.tables import format_table


def test_text_left_numbers_right_and_one_header_line():
    table = format_table([["LeNet-5", 61_706, 0.9912], ["MLP", 118_282, 0.978]], ["model", "params", "acc"])
    assert table.splitlines() == [
        "model    params     acc",
        "LeNet-5   61706  0.9912",
        "MLP      118282   0.978",
    ]


def test_formats_apply_to_numbers_only_and_none_means_str():
    rows = [["a", 1234, 0.5, True], ["b", "-", 0.25, False]]
    table = format_table(rows, formats=[None, ",d", ".1%", "d"])
    assert table.splitlines() == ["a  1,234  50.0%  True", "b      -  25.0%  False"]


def test_align_and_gap_are_given_per_column_and_no_line_ends_in_spaces():
    table = format_table([[1, "x"], [22, "yy"]], ["n", "name"], align="lr", gap=1)
    assert table.splitlines() == ["n  name", "1     x", "22   yy"]
    assert format_table([["a", ""]]) == "a"
    assert format_table([], ["only", "headers"]) == "only  headers"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": [[1, 2], [3]]}, "a row has 1 cells, the table 2 columns: [3]"),
        ({"rows": [[1, 2]], "headers": ["a"]}, "a row has 2 cells, the table 1 columns"),
        ({"rows": [[1, 2]], "formats": ["d"]}, "formats has 1 columns, the table 2"),
        ({"rows": [[1, 2]], "align": "lrr"}, "align has 3 columns, the table 2"),
        ({"rows": [[1, 2]], "align": "lc"}, "align takes the letters 'l' and 'r', got 'lc'"),
    ],
)
def test_rows_formats_and_align_must_fit_the_table(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        format_table(**kwargs)
