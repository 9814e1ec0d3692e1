"""The graded assignments, continued: the helpers are tests/test_grading.py's; the course is built again.

* The Chinese edition grades the simulated class as the English one does.
* The teacher's own solutions get every point, and a solution broken where only the hidden tests look
  loses that exercise's points: a change to a solution that breaks its hidden test fails this test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason="the grading extra (pip install -e '.[grading]')")

from test_grading import (  # noqa: E402  (pytest puts tests/ on the path, as for every test file here)
    ASSIGNMENT,
    CELL_TIMEOUT,
    FIXTURES,
    MUTATIONS,
    code_exercises,
    read_grades,
    read_tree,
    run_grading,
)

from course_tools.editions import read_notebook  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """Both editions' course folders, built by the teacher's command (this file's own copy, built in the
    process that runs it); and what the command printed."""
    out = tmp_path_factory.mktemp("assignments")
    return out, run_grading("build", "--out", out).stdout


def test_the_chinese_edition_grades_the_same(built):
    out, _ = built
    course = out / "zh"
    class_dir = FIXTURES / "class_zh"
    release = read_notebook(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    assert any("在此写出你的代码" in cell.source for cell in release.cells), "Chinese stubs"
    before = read_tree(class_dir)
    run_grading("grade", class_dir, "--out", out, "--edition", "zh", "--cell-timeout", CELL_TIMEOUT)
    assert read_tree(class_dir) == before
    row = read_grades(course, ASSIGNMENT)["alice_correct"]
    points = code_exercises(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    assert points == code_exercises(out / "en" / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    assert all(float(row[exercise]) == maximum for exercise, maximum in points.items()), row
    assert (course / "feedback" / "alice_correct" / ASSIGNMENT / f"{ASSIGNMENT}.html").is_file()


def test_solutions_pass_their_hidden_tests_and_broken_ones_do_not(built, tmp_path):
    """The teacher's version of each notebook, handed in as it is, gets every point; the same with one
    solution broken where the visible tests do not look loses that exercise's points, by a hidden test."""
    out, _ = built
    course = out / "en"
    for assignment, exercise, text, replacement in MUTATIONS:
        source = course / "source" / assignment / f"{assignment}.ipynb"
        for student in ("teacher", "teacher_broken"):
            (tmp_path / student / assignment).mkdir(parents=True)
        shutil.copyfile(source, tmp_path / "teacher" / assignment / source.name)
        notebook = nbformat.read(source, as_version=4)
        [cell] = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == exercise]
        assert text in cell.source, f"{assignment}, {exercise}: the solution changed, update MUTATIONS"
        cell.source = cell.source.replace(text, replacement)
        nbformat.write(notebook, tmp_path / "teacher_broken" / assignment / source.name)
    run_grading("grade", tmp_path, "--out", out, "--edition", "en", "--cell-timeout", 20)
    for assignment, broken, _, _ in MUTATIONS:
        points = code_exercises(course / "source" / assignment / f"{assignment}.ipynb")
        grades = read_grades(course, assignment)
        teacher, teacher_broken = grades["teacher"], grades["teacher_broken"]
        for exercise, maximum in points.items():
            assert float(teacher[exercise]) == maximum, f"{assignment}: {teacher['notes']}"
            expected = 0.0 if exercise == broken else maximum
            assert float(teacher_broken[exercise]) == expected, f"{assignment}: {teacher_broken['notes']}"
        assert f"{broken}: AssertionError" in teacher_broken["notes"]
