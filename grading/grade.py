"""`make grade`: autograde a class's submissions with nbgrader, without trusting the code they contain.

``grade(course, class_dir)`` takes a folder in nbgrader's submitted layout (``<student>/<assignment>/
<notebook>.ipynb``) and grades every submission in two passes:

1. **Run** (untrusted): each submission alone, in a new temporary course folder that holds only that
   submission, nbgrader's settings and a copy of the gradebook without any student. ``nbgrader autograde``
   runs there in its own process group, under a time limit for the whole notebook (on top of nbgrader's
   per-cell limit); what it leaves is the executed notebook. Before the first run the grader reads the
   class folder and every edition's course folder (gradebooks, tests, earlier grades and feedback) into
   memory; after every run it compares them, undoes any change and gives that submission no automatic
   points.
2. **Score** (trusted, no student code): nbgrader scores the executed notebooks in the real course folder,
   with the tests and points of the teacher's source, and writes feedback (HTML) per student;
   :func:`report` writes ``grades/<assignment>.csv``, one row per student, one column per exercise.

A submission that could not run (the time limit, a file that is no notebook, a change outside its folder)
is scored with every test failed, each saying why.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_output

from course_tools.editions import EDITIONS
from grading.assignments import CONFIG, GradingError, check, nbgrader_api

EXECUTED = "executed"  # the course folder's copy of the executed submissions, which the scoring pass reads
# nbgrader's settings in the run: execute only (no scores are saved there; the scoring pass saves them).
RUN_SETTINGS = """
from nbgrader.preprocessors import Execute, LimitOutput
c.Autograde.autograde_preprocessors = [Execute, LimitOutput]
"""


@dataclass
class Submission:
    """One student's files for one assignment: ``files`` maps paths relative to the assignment's folder to
    their bytes, read before any code runs. ``problem`` says why its code was not graded as it ran."""

    student: str
    assignment: str
    files: dict[str, bytes]
    problem: str | None = None
    remarks: list[str] = field(default_factory=list)  # what the run did that does not change the grade
    seconds: float = 0.0
    notebooks: dict[str, bytes] = field(default_factory=dict)  # the executed notebooks
    other_version: bool = False  # not a copy of the current student version: not run, scored 0


def read_tree(folder: Path) -> dict[Path, bytes]:
    """Every file under ``folder`` (or ``folder`` itself, a file), by path, with its bytes."""
    paths = [folder] if folder.is_file() else sorted(folder.rglob("*"))
    return {path: path.read_bytes() for path in paths if path.is_file()}


def read_class(class_dir: Path) -> list[Submission]:
    """The submissions of ``class_dir`` (``<student>/<assignment>/...``), hidden folders and symbolic links
    (to a file of the teacher's, or a device that never ends) left out."""
    submissions = []
    for student in sorted(p for p in class_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for assignment in sorted(p for p in student.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = {  # rglob does not enter linked folders
                str(path.relative_to(assignment)): path.read_bytes()
                for path in sorted(assignment.rglob("*"))
                if path.is_file() and not path.is_symlink()
            }
            submissions.append(Submission(student.name, assignment.name, files))
    return submissions


class Snapshot:
    """The files under some folders, kept in memory: what changed since, and how to undo it."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = [folder for folder in folders if folder.exists()]
        self.files = {path: data for folder in self.folders for path, data in read_tree(folder).items()}
        self.digest = {path: hashlib.sha256(data).hexdigest() for path, data in self.files.items()}

    def changes(self) -> list[Path]:
        """Files changed, removed or added since the snapshot."""
        now = {
            path: hashlib.sha256(data).hexdigest()
            for f in self.folders
            for path, data in read_tree(f).items()
        }
        return sorted(
            path for path in self.digest.keys() | now.keys() if self.digest.get(path) != now.get(path)
        )

    def restore(self, paths: list[Path]) -> None:
        """Put ``paths`` back as they were: rewritten, or removed if they were not there."""
        for path in paths:
            if path in self.files:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(self.files[path])
            elif path.is_file() or path.is_symlink():
                path.unlink()


def shown_path(path: Path, folders: list[Path]) -> str:
    """``path`` relative to the first of ``folders`` that holds it, with that folder's name."""
    for folder in folders:
        if path.is_relative_to(folder):
            return str(Path(folder.name) / path.relative_to(folder))
    return str(path)


def gradebook_without_students(course: Path) -> bytes:
    """The course's gradebook with its assignments and no student: what the run of one submission gets."""
    from nbgrader.api import Gradebook

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "gradebook.db"
        shutil.copyfile(course / "gradebook.db", copy)
        with Gradebook(f"sqlite:///{copy}") as gradebook:
            for student in list(gradebook.students):
                gradebook.remove_student(student.id)
        return copy.read_bytes()


def end_processes(marker: str) -> None:
    """Kill what is left of a run: every process whose environment carries ``marker`` (Linux's /proc;
    elsewhere nothing), also those that left the run's process group."""
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue  # gone already, or not ours to read


def run_submission(
    course: Path, submission: Submission, gradebook: bytes, timeout: float, cell_timeout: int | None
) -> None:
    """Execute ``submission`` with ``nbgrader autograde`` in a temporary course folder of its own (step 1):
    fills ``submission.notebooks``, or ``submission.problem`` when it did not finish."""
    # ignore_cleanup_errors: a file the run made unremovable (chmod 000) must not stop the grading
    with tempfile.TemporaryDirectory(prefix="grading-", ignore_cleanup_errors=True) as temporary:
        # the folder's name is the edition, which nbgrader_config.py reads
        sandbox = Path(temporary) / course.name
        folder = sandbox / "submitted" / submission.student / submission.assignment
        for name, data in submission.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        (sandbox / "gradebook.db").write_bytes(gradebook)
        limit = "" if cell_timeout is None else f"c.Execute.timeout = {int(cell_timeout)}\n"
        (sandbox / CONFIG.name).write_text((course / CONFIG.name).read_text() + RUN_SETTINGS + limit)
        marker = f"GRADING_RUN={uuid.uuid4().hex}"
        environment = {  # nothing of the teacher's environment (tokens, paths) but what Python needs
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(sandbox),
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1",
            "COURSE_OUTPUT_DIR": str(sandbox / "outputs"),
            marker.split("=")[0]: marker.split("=")[1],
        }
        command = [
            sys.executable,
            "-m",
            "nbgrader",
            "autograde",
            submission.assignment,
            "--student",
            submission.student,
        ]
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=sandbox,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            log = process.communicate(timeout=timeout)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            submission.problem = f"the notebook did not finish within the time limit of {timeout:g} s"
            log = ""
        finally:
            submission.seconds = time.perf_counter() - started
            with contextlib.suppress(ProcessLookupError):  # what the group left running
                os.killpg(process.pid, signal.SIGKILL)
            end_processes(marker)
        executed = sandbox / "autograded" / submission.student / submission.assignment
        gone = sorted(name for name in submission.files if not (executed / name).is_file())
        if executed.is_dir() and gone:
            submission.remarks.append(
                f"its code deleted files of its working folder ({', '.join(gone)}); no effect on the grade"
            )
        submission.notebooks = (
            {p.name: p.read_bytes() for p in executed.glob("*.ipynb")} if executed.is_dir() else {}
        )
        if submission.problem is None and not submission.notebooks:
            errors = [
                line.strip() for line in log.splitlines() if re.match(r"\s*[\w.]+(Error|Exception): ", line)
            ]
            submission.problem = (
                "nbgrader could not run it: " + (errors[-1] if errors else log[-300:].strip())[:300]
            )


def graded_cells(data: bytes) -> set[str] | None:
    """The grade ids of the cells nbgrader scores or overwrites (solutions, tests, written answers) in the
    notebook ``data``; None where ``data`` is no notebook (the run says why)."""
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception:  # noqa: BLE001 (not UTF-8, not JSON, not a notebook)
        return None
    return {
        str(cell.metadata.nbgrader.get("grade_id"))
        for cell in notebook.cells
        if "nbgrader" in cell.metadata
        and (cell.metadata.nbgrader.get("grade") or cell.metadata.nbgrader.get("solution"))
    }


def other_version(course: Path, submission: Submission) -> str | None:
    """Why ``submission`` is not a copy of the assignment's current student version (its graded cells are
    not the same), or None. nbgrader cannot score such a notebook: a student who worked in an older release
    must copy the answers into the current one."""
    for name in sorted(n for n in submission.files if n.endswith(".ipynb") and "/" not in n):
        release = course / "release" / submission.assignment / name
        found = graded_cells(submission.files[name])
        if not release.is_file() or found is None:
            continue  # not a notebook of the assignment, or no notebook: the run reports it
        expected = graded_cells(release.read_bytes()) or set()
        if found != expected:
            unknown, missing = sorted(found - expected), sorted(expected - found)
            return (
                f"{name} is not the current version of the assignment (cells not in it: {unknown or 'none'}; "
                f"cells missing: {missing or 'none'}): it was made from another release, or its cells' "
                "metadata was edited; ask the student to copy the answers into "
                f"release/{submission.assignment}/{name}"
            )
    return None


def failed_everywhere(data: bytes, reason: str, student_version: bytes) -> bytes:
    """The notebook ``data`` (or, where it is no notebook at all, ``student_version``) with every autograded
    test failed by ``reason``: nbgrader scores a test cell with an error output 0."""
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
    except Exception:  # noqa: BLE001 (not UTF-8, not JSON, not a notebook: the reason says which)
        notebook = nbformat.reads(student_version.decode("utf-8"), as_version=4)
    for cell in notebook.cells:
        nbgrader = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and nbgrader.get("grade") and not nbgrader.get("solution"):
            cell.outputs = [
                new_output(
                    "error", ename="GradingError", evalue=reason, traceback=[f"GradingError: {reason}"]
                )
            ]
    return nbformat.writes(notebook).encode()


def score(course: Path, submission: Submission) -> None:
    """Step 2, in the real course folder, running no student code: nbgrader scores the executed notebooks
    with the source's tests and points, saves the scores in the gradebook and writes the feedback."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        DeduplicateIds,
        IgnorePattern,
        LimitOutput,
        OverwriteCells,
        OverwriteKernelspec,
        SaveAutoGrades,
    )
    from traitlets.config import Config

    folder = course / EXECUTED / submission.student / submission.assignment
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    names = [name for name in submission.files if name.endswith(".ipynb") and "/" not in name]
    for name in names:
        executed = submission.notebooks.get(name)
        if submission.problem is not None or executed is None:
            student_version = (course / "release" / submission.assignment / name).read_bytes()
            # a notebook of another version cannot be scored: its cells are not the gradebook's
            handed_in = b"" if submission.other_version else submission.files[name]
            executed = failed_everywhere(handed_in, submission.problem or "it did not run", student_version)
        (folder / name).write_bytes(executed)
    if "timestamp.txt" in submission.files:
        (folder / "timestamp.txt").write_bytes(submission.files["timestamp.txt"])
    config = Config()
    config.CourseDirectory.submitted_directory = EXECUTED
    # nbgrader's own steps, without clearing the outputs (ClearOutput) and without running anything (Execute)
    config.Autograde.sanitize_preprocessors = [
        DeduplicateIds,
        OverwriteKernelspec,
        OverwriteCells,
        CheckCellMetadata,
    ]
    config.Autograde.autograde_preprocessors = [IgnorePattern, ClearMetadataPreprocessor, LimitOutput]
    config.Autograde.autograde_preprocessors += [SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    api = nbgrader_api(course, config)
    check(api.autograde(submission.assignment, submission.student), f"scoring {submission.student}")
    check(
        api.generate_feedback(submission.assignment, submission.student), f"feedback for {submission.student}"
    )


def first_line(error: NotebookNode) -> str:
    """``Name: message``, the first line of an error output, shortened; what a student reads first."""
    if error.ename == "CellTimeoutError":  # nbgrader interrupted the cell: say so
        return "CellTimeoutError: stopped at the time limit of a cell (an endless loop?)"
    if error.ename == "NotImplementedError":
        return "NotImplementedError: not answered (the stub of the student version is still there)"
    return f"{error.ename}: {error.evalue}".strip().splitlines()[0][:200]


def failures(course: Path, student: str, assignment: str) -> list[str]:
    """``exercise: why`` for every test that failed, from the scored notebook: the first line of its error,
    or of the error of the exercise's own code where that failed first (a syntax error, a failed import).
    First, the first cell that is no exercise and failed (the imports, past the time limit): the cause of
    the NameErrors after it."""
    found = []
    for path in sorted((course / "autograded" / student / assignment).glob("*.ipynb")):
        code_errors = {}  # grade id of a solution cell: its error
        setup_failed = False
        for cell in nbformat.read(path, as_version=4).cells:
            nbgrader = cell.metadata.get("nbgrader", {})
            errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
            if not errors or errors[-1].ename == "GradingError":  # GradingError: the notes say why
                continue
            if nbgrader.get("solution"):
                code_errors[nbgrader.get("grade_id")] = errors[-1]
            elif nbgrader.get("grade"):
                exercise = nbgrader.get("grade_id", "").removesuffix("_tests")
                if exercise in code_errors:
                    found.append(f"{exercise}: its code failed, {first_line(code_errors[exercise])}")
                else:
                    found.append(f"{exercise}: {first_line(errors[-1])}")
            elif not setup_failed:
                setup_failed = True
                start = (cell.source.strip().splitlines() or [""])[0][:60]
                found.insert(0, f"a cell that is no exercise failed (`{start}`): {first_line(errors[-1])}")
    return found


def save_runs(course: Path, submissions: list[Submission]) -> Path:
    """Add how each submission's run went to ``grades/runs.json`` (``{assignment: {student: ...}}``): its
    seconds, its problem (None: graded as it ran) and its remarks, which :func:`report` writes as notes."""
    path = course / "grades" / "runs.json"
    runs = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for s in submissions:
        runs.setdefault(s.assignment, {})[s.student] = {
            "seconds": round(s.seconds, 1),
            "problem": s.problem,
            "remarks": s.remarks,
        }
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(runs, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    return path


def report(course: Path, assignments: list[str]) -> list[Path]:
    """Write ``grades/<assignment>.csv`` from the gradebook: a row per submission, a column per graded cell
    (empty: a written answer still to grade by hand), the total, and in ``notes`` why: every test passed,
    or why each failed, or why the submission was not graded as it ran. Returns the files."""
    from nbgrader.api import Gradebook

    path = course / "grades" / "runs.json"
    runs = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    written = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for assignment in assignments:
            rows = []
            for submission in gradebook.assignment_submissions(assignment):
                grades = [grade for notebook in submission.notebooks for grade in notebook.grades]
                scores = {
                    g.name.removesuffix("_tests"): "" if g.needs_manual_grade else g.score for g in grades
                }
                student = submission.student.id
                run = runs.get(assignment, {}).get(student, {})
                failing = failures(course, student, assignment)
                reasons = [
                    f"NOT GRADED AS IT RAN: {run['problem']}" if run.get("problem") else None,
                    None if failing or run.get("problem") else "every test passed",
                    *failing,
                    *run.get("remarks", []),
                ]
                rows.append(
                    {
                        "student": student,
                        **scores,
                        "score": submission.score,
                        "max_score": submission.max_score,
                        "to_grade_by_hand": sum(grade.needs_manual_grade for grade in grades),
                        "notes": "; ".join(reason for reason in reasons if reason),
                    }
                )
            path = course / "grades" / f"{assignment}.csv"
            path.parent.mkdir(exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as out:
                writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["student"])
                writer.writeheader()
                writer.writerows(sorted(rows, key=lambda row: row["student"]))
            written.append(path)
    return written


def grade(
    course: Path, class_dir: Path, timeout: float = 300, cell_timeout: int | None = None
) -> list[Submission]:
    """Grade every submission in ``class_dir`` against the course folder ``course`` (steps 1 and 2), write the
    reports; returns the submissions, each with its ``problem`` (None: it ran)."""
    if not (course / "gradebook.db").is_file():
        raise GradingError(f"no gradebook in {course}: build the assignments first (make assignments)")
    if not class_dir.is_dir():
        raise GradingError(f"no folder {class_dir}: the class is <student>/<assignment>/<notebook>.ipynb")
    submissions = read_class(class_dir)
    if not submissions:
        raise GradingError(f"no submission in {class_dir}: expected <student>/<assignment>/<notebook>.ipynb")
    known = {path.name for path in (course / "source").iterdir()}
    if unknown := sorted({s.assignment for s in submissions} - known):
        raise GradingError(
            f"{class_dir} has submissions for {unknown}, not assignments of {course} ({sorted(known)})"
        )
    # the class, and every edition's course folder: gradebooks, tests, earlier grades and feedback
    snapshot = Snapshot([class_dir, *(course.parent / edition for edition in EDITIONS)])
    empty_gradebook = gradebook_without_students(course)
    for submission in submissions:
        if reason := other_version(course, submission):
            submission.problem, submission.other_version = reason, True
            print(f"{submission.student}/{submission.assignment}: NOT RUN: {reason}", flush=True)
            continue
        run_submission(course, submission, empty_gradebook, timeout, cell_timeout)
        if changed := snapshot.changes():
            snapshot.restore(changed)
            shown = ", ".join(shown_path(path, [class_dir, course.parent]) for path in changed[:5])
            submission.problem = f"it changed files outside its own folder ({len(changed)}: {shown}); undone"
        problem = f", NOT GRADED AS RUN: {submission.problem}" if submission.problem else ""
        print(
            f"{submission.student}/{submission.assignment}: ran {submission.seconds:.1f} s{problem}",
            flush=True,
        )
    for submission in submissions:
        score(course, submission)
    save_runs(course, submissions)
    for path in report(course, sorted({s.assignment for s in submissions})):
        print(f"wrote {path}")
    return submissions
