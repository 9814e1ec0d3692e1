"""The graded assignments (``grading/``, nbgrader): built from the notebooks, and a simulated class graded.

* ``python -m grading build`` makes, for both editions, the teacher's version of each notebook's exercises
  (``source/``: solutions and hidden tests) and the student's (``release/``: stubs, visible tests only);
  notebooks without exercises are left out, and the build says so. Every student version runs top to
  bottom under nbgrader's own check, only its tests failing, with the stubs' ``NotImplementedError``.
* ``python -m grading grade`` grades the simulated class of ``tests/fixtures/class/`` (written by
  ``tests/fixtures/make_class.py``): each of the eleven students gets the points :data:`FAILS` says, the
  reason in the CSV and in the feedback, while the grader survives them all and leaves the gradebook's
  tests, the other edition and the other submissions as they were.
* The Chinese edition, and the teacher's own solutions of every notebook: tests/test_grading_solutions.py
  (a file of its own, so that ``make test``'s two processes grade both at once).

The runs are real nbgrader runs (a kernel per submission): about two minutes on a 2-core CPU.
"""

from __future__ import annotations

import csv
import hashlib
import html
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason="the grading extra (pip install -e '.[grading]')")

from course_tools.editions import EDITIONS, course_notebooks, edition_dir, read_notebook  # noqa: E402
from grading.assignments import exercise_cells  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ASSIGNMENTS = [  # with exercises, at least these
    "01_concepts",
    "02_lenet5_mnist",
    "03_resnet20_cifar10",
    "04_cnn_vs_rnn",
    "05_sequences_attention",
]
ASSIGNMENT = "01_concepts"  # the one the simulated class hands in
# Seconds a cell may run when the class is graded: frank's endless loop stops there. Under make test's
# three processes on 2 cores, bob's imports once took longer than 3 s (his exercises then failed with
# NameErrors): 20 s leaves room, and frank's loop costs 20 s.
CELL_TIMEOUT = 20
ALL = "every code exercise"
# For each student of the simulated class, the code exercises that lose their points and why (a phrase of
# the reason the CSV gives): every other code exercise gets full points. Written answers left blank score
# 0 at once; those written are left to the teacher (to_grade_by_hand).
FAILS = {
    "alice_correct": {},
    "bob_partly_correct": {  # make_class.WRONG: plausible mistakes
        "conv_output_size": "F.conv2d gives",  # forgets the dilation: only a hidden test sees it
        "cross_correlate": "no kernel flip",
        "clip_by_norm": "zero gradient must stay zero",
    },
    "carol_all_wrong": {ALL: "AssertionError"},
    "dave_syntax_error": {"cross_correlate": "its code failed, SyntaxError"},
    "erin_import_error": {"conv_output_size": "its code failed, ModuleNotFoundError"},
    "frank_infinite_loop": {"rnn_step": "CellTimeoutError: stopped at the time limit"},
    "grace_tampers": {ALL: "NOT GRADED AS IT RAN: it changed files outside its own folder"},
    "heidi_deletes_files": {},
    "ivan_hands_in_the_blank_version": {ALL: "not answered"},
    "judy_not_a_notebook": {ALL: "NOT GRADED AS IT RAN: nbgrader could not run it: nbformat.reader.NotJSON"},
    "kate_older_release": {ALL: "is not the current version of the assignment"},  # not run: scored 0
}
WRITTEN = {"alice_correct", "bob_partly_correct"}  # the students who wrote the written answers
REMARKS = {"heidi_deletes_files": "deleted files of its working folder (notes.txt); no effect on the grade"}
# Solutions broken where the visible tests do not look: (assignment, exercise, text, replaced by)
MUTATIONS = [
    ("01_concepts", "conv_output_size", "- dilation * (k - 1) - 1", "- (k - 1) - 1"),
    ("02_lenet5_mnist", "train_step", "    optimizer.zero_grad()\n", ""),
    ("03_resnet20_cifar10", "blocks_per_stage", "depth < 8 or ", ""),
    # a tie between two rates goes to the larger when the grid is not sorted first
    ("04_cnn_vs_rnn", "choose_learning_rate", "max(sorted(val_accuracy), ", "max(val_accuracy, "),
    # both markers may land on the same step
    (
        "05_sequences_attention",
        "adding_example",
        "torch.randperm(length, generator=generator)[:2]",
        "torch.randint(0, length, (2,), generator=generator)",
    ),
]


def run_grading(*arguments: str | Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m grading ...`` from the repository's root, as a teacher runs it; fails on a crash."""
    done = subprocess.run(
        [sys.executable, "-m", "grading", *map(str, arguments)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    return done


def cells(path: Path) -> dict[str, nbformat.NotebookNode]:
    """The cells of a notebook that carry nbgrader's metadata, by grade id."""
    found = {}
    for cell in read_notebook(path).cells:
        if "nbgrader" in cell.metadata:
            found[cell.metadata.nbgrader["grade_id"]] = cell
    return found


def code_exercises(path: Path) -> dict[str, float]:
    """The auto-graded code exercises of a notebook: {exercise: points}, from its test cells."""
    return {
        grade_id.removesuffix("_tests"): cell.metadata.nbgrader["points"]
        for grade_id, cell in cells(path).items()
        if cell.cell_type == "code" and cell.metadata.nbgrader.get("grade")
    }


def read_tree(folder: Path) -> dict[str, str]:
    """{path relative to folder: sha256 of its bytes}, for every file under folder."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def gradebook_tests(course: Path) -> list[tuple]:
    """What the gradebook keeps of the assignments: every cell's source (the hidden tests included) and
    every grade cell's points, whatever was graded since."""
    with sqlite3.connect(course / "gradebook.db") as database:
        return [
            *database.execute("SELECT name, source, checksum FROM source_cell ORDER BY id").fetchall(),
            *database.execute(
                "SELECT name, max_score, grade_cells.cell_type FROM grade_cells JOIN base_cell USING (id)"
                " ORDER BY id"
            ).fetchall(),
        ]


def read_grades(course: Path, assignment: str) -> dict[str, dict[str, str]]:
    """``grades/<assignment>.csv`` by student."""
    with (course / "grades" / f"{assignment}.csv").open(encoding="utf-8") as file:
        return {row["student"]: row for row in csv.DictReader(file)}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """Both editions' course folders, built by the teacher's command; and what the command printed."""
    out = tmp_path_factory.mktemp("assignments")
    return out, run_grading("build", "--out", out).stdout


@pytest.fixture(scope="module")
def graded_class(built, tmp_path_factory) -> dict:
    """The simulated class graded as a teacher grades it (a copy, by absolute paths: grace finds them)."""
    out, _ = built
    course = out / "en"
    class_dir = tmp_path_factory.mktemp("class") / "class"
    shutil.copytree(FIXTURES / "class", class_dir)
    before = {
        "class": read_tree(class_dir),
        "tests": gradebook_tests(course),
        "teacher's files": read_tree(course / "source") | read_tree(course / "release"),
        "other edition": read_tree(out / "zh"),
    }
    done = run_grading(
        "grade", class_dir, "--out", out, "--edition", "en", "--cell-timeout", CELL_TIMEOUT, "--timeout", 120
    )
    after = {
        "class": read_tree(class_dir),
        "tests": gradebook_tests(course),
        "teacher's files": read_tree(course / "source") | read_tree(course / "release"),
        "other edition": read_tree(out / "zh"),
    }
    return {"course": course, "log": done.stdout, "before": before, "after": after}


def test_build_makes_student_and_teacher_versions(built):
    out, log = built
    for edition in EDITIONS:
        notebooks = course_notebooks(edition_dir(edition))
        with_exercises = [path for path in notebooks if exercise_cells(read_notebook(path))]
        without = [path.stem for path in notebooks if path not in with_exercises]
        assert {path.stem for path in with_exercises} >= set(ASSIGNMENTS)
        assert f"{out / edition}: {', '.join(path.stem for path in with_exercises)}" in log
        for name in without:  # left out, and the build says so
            assert name in log and not (out / edition / "release" / name).exists()
        for path in with_exercises:
            for cell in exercise_cells(read_notebook(path)):  # the course notebook folds its solutions
                if cell.cell_type == "code" and cell.metadata.nbgrader.get("solution"):
                    assert cell.metadata.get("jupyter", {}).get("source_hidden"), f"{path.name}: {cell.id}"
            source = out / edition / "source" / path.stem / path.name
            release = out / edition / "release" / path.stem / path.name
            teacher, student = cells(source), cells(release)
            assert teacher.keys() == student.keys()
            assert len(code_exercises(source)) >= 5, f"{path.name}: fewer than 5 auto-graded code exercises"
            for grade_id, cell in teacher.items():
                meta, text = cell.metadata.nbgrader, student[grade_id].source
                if meta.get("solution") and cell.cell_type == "code":  # a stub, in plain view
                    assert "### BEGIN SOLUTION" in cell.source and "SOLUTION" not in text
                    assert "raise NotImplementedError()" in text
                    assert "jupyter" not in student[grade_id].metadata, "a student's stub is not folded"
                elif meta.get("solution"):  # a written answer: the place to write it, not the rubric
                    assert text == {"en": "YOUR ANSWER HERE", "zh": "在此写出你的回答"}[edition]
                elif "### BEGIN HIDDEN TESTS" in cell.source:  # the hidden tests are withheld
                    visible = cell.source.split("### BEGIN HIDDEN TESTS")[0].strip()
                    assert text.strip() == visible and "HIDDEN" not in text
            assert sum("### BEGIN HIDDEN TESTS" in cell.source for cell in teacher.values()) == len(
                code_exercises(source)
            ), f"{path.name}: every code exercise has hidden tests"
            english = out / "en" / "source" / path.stem / path.name
            assert code_exercises(source) == code_exercises(english), "both editions: the same points"


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_runs_top_to_bottom(built, edition, assignment):
    """nbgrader's validate, every cell checked: only the test cells fail, with the stubs' error."""
    from nbgrader.validator import Validator

    out, _ = built
    release = out / edition / "release" / assignment / f"{assignment}.ipynb"
    results = Validator(validate_all=True).validate(str(release))
    tests = {
        cell.source.strip()
        for cell in cells(release).values()
        if cell.cell_type == "code" and cell.metadata.nbgrader.get("grade")
    }
    assert set(results) == {"failed"}, results
    # what failed: the tests, with the stubs' error; and the blank written answers, which score 0
    failed = {cell["source"]: cell["raw_error"] for cell in results["failed"]}
    blank = failed.pop({"en": "YOUR ANSWER HERE", "zh": "在此写出你的回答"}[edition])
    assert "You did not provide a response" in blank, blank
    assert failed.keys() - tests == set(), f"cells other than tests failed: {failed.keys() - tests}"
    assert failed.keys() == tests, f"tests that passed on the student version: {tests - failed.keys()}"
    for source, error in failed.items():
        assert "NotImplementedError" in error, f"{source[:80]}: {error[-300:]}"


def test_students_check_before_handing_in(built):
    """A student runs nbgrader validate: the correct notebook passes, a partly correct one is told which
    tests fail."""
    from nbgrader.validator import Validator

    alice = FIXTURES / "class" / "alice_correct" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert Validator().validate(str(alice)) == {}
    bob = FIXTURES / "class" / "bob_partly_correct" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    failed = Validator().validate(str(bob))["failed"]
    # the visible tests catch one of bob's three mistakes (cross_correlate's flip), the hidden ones the others
    assert [cell["source"].split("(")[0] for cell in failed] == ["image = torch.arange"]
    assert "no kernel flip" in failed[0]["raw_error"]


def test_every_student_gets_the_score_deserved(graded_class):
    course = graded_class["course"]
    points = code_exercises(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    grades = read_grades(course, ASSIGNMENT)
    assert set(grades) >= set(FAILS), "a row per student, none lost"
    for student, fails in FAILS.items():
        row = grades[student]
        failed = set(points) if ALL in fails else set(fails)
        for exercise, maximum in points.items():
            expected = 0.0 if exercise in failed else maximum
            assert float(row[exercise]) == expected, f"{student}, {exercise}: {row[exercise]}; {row['notes']}"
        for exercise, reason in fails.items():
            assert reason in row["notes"], f"{student}, {exercise}: '{reason}' not in '{row['notes']}'"
        if not fails:
            assert row["notes"].startswith("every test passed"), row["notes"]
        assert float(row["score"]) == sum(points[e] for e in points if e not in failed), student
        answers = [column for column in row if column.startswith("answer_")]
        assert int(row["to_grade_by_hand"]) == (len(answers) if student in WRITTEN else 0), student
        for answer in answers:  # written: the teacher's to grade; blank: 0 at once
            assert row[answer] == ("" if student in WRITTEN else "0.0"), f"{student}, {answer}"
        if student in REMARKS:
            assert REMARKS[student] in row["notes"]


def test_every_student_gets_feedback(graded_class):
    """The feedback page shows the score and, for each failed test, its error: what failed and why."""
    course = graded_class["course"]
    points = code_exercises(course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    grades = read_grades(course, ASSIGNMENT)
    for student in FAILS:
        page = (course / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text(encoding="utf-8")
        page = re.sub(r"<(style|script)\b.*?</\1>", "", page, flags=re.DOTALL)
        text = html.unescape(re.sub(r"<[^>]+>", "", page))  # what the student reads
        assert f"Score: {float(grades[student]['score'])} / " in text, student
        scored = nbformat.read(course / "autograded" / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", 4)
        shown = 0
        for cell in scored.cells:
            errors = [output for output in cell.get("outputs", []) if output.output_type == "error"]
            if cell.metadata.get("nbgrader", {}).get("grade") and errors:
                why = f"{errors[-1].ename}: {errors[-1].evalue}".splitlines()[0]
                assert why in text, f"{student}: {why}"
                shown += 1
        failed = set(points) if ALL in FAILS[student] else set(FAILS[student])
        assert shown == len(failed), f"{student}: {shown} failed tests shown, {len(failed)} expected"


def test_the_class_cannot_change_what_it_is_graded_by(graded_class):
    before, after, log = graded_class["before"], graded_class["after"], graded_class["log"]
    assert "grace_tampers/01_concepts: ran" in log and "changed files outside its own folder" in log
    for what in before:  # the submissions, the gradebook's tests and points, the teacher's files
        assert after[what] == before[what], f"{what} changed by grading the class"


def test_an_endless_loop_is_stopped_and_the_rest_graded(graded_class):
    log = graded_class["log"]
    assert "frank_infinite_loop/01_concepts: ran" in log
    after_frank = log.split("frank_infinite_loop")[1]
    assert all(student in after_frank for student in ("grace_tampers", "heidi_deletes_files", "judy_not_a"))


def test_a_failed_setup_cell_is_named_before_the_errors_it_causes(tmp_path):
    """Imports stopped at the time limit make the exercises fail with NameErrors: the notes say why first."""
    from grading.grade import failures

    def code(source: str, error: tuple[str, str], **nbgrader) -> nbformat.NotebookNode:
        cell = nbformat.v4.new_code_cell(source, metadata={"nbgrader": nbgrader} if nbgrader else {})
        cell.outputs = [nbformat.v4.new_output("error", ename=error[0], evalue=error[1], traceback=[])]
        return cell

    not_defined = ("NameError", "name 'torch' is not defined")
    notebook = nbformat.v4.new_notebook(
        cells=[
            code("import torch", ("CellTimeoutError", "Cell execution timed out")),
            code("def f(x):\n    return torch.relu(x)", not_defined, solution=True, grade_id="f"),
            code("assert f(1) == 1", not_defined, grade=True, grade_id="f_tests", points=1),
        ]
    )
    folder = tmp_path / "autograded" / "bob" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / f"{ASSIGNMENT}.ipynb")
    assert failures(tmp_path, "bob", ASSIGNMENT) == [
        "a cell that is no exercise failed (`import torch`): "
        "CellTimeoutError: stopped at the time limit of a cell (an endless loop?)",
        "f: its code failed, NameError: name 'torch' is not defined",
    ]
