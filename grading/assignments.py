"""`make assignments`: each notebook's exercises as an nbgrader assignment, in each edition.

A notebook's exercises are the cells of its "Check your understanding" section that carry nbgrader's
metadata (``cell.metadata.nbgrader``), from the first such cell to the last: nbgrader's own source format,
so that the course notebook is the teacher's version and runs as it is. The assignment is the notebook's
title, its install cell and that section; ``nbgrader generate_assignment`` then writes the student version
(solutions replaced by stubs, hidden tests removed) into ``release/``. Each edition is its own nbgrader
course folder, ``build/assignments/en`` and ``build/assignments/zh``, with the same exercises, tests and
points (the code cells of the two editions are the same cells) and its own prose. A notebook without
such cells has no exercises to hand out: the build leaves it out and says so.
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nbformat import NotebookNode
from nbformat.v4 import new_markdown_cell

from course_tools.editions import (
    EDITIONS,
    EditionError,
    course_notebooks,
    edition_dir,
    read_notebook,
    write_notebook,
)
from course_utils.environment import project_root

CONFIG = Path(__file__).with_name("nbgrader_config.py")
DEFAULT_OUT = Path("build") / "assignments"


class GradingError(RuntimeError):
    """A step of building or grading that could not be done; the message says why and what to do."""


def exercise_cells(notebook: NotebookNode) -> list[NotebookNode]:
    """The cells from the first with nbgrader metadata to the last (empty: the notebook has no exercises)."""
    marked = [index for index, cell in enumerate(notebook.cells) if "nbgrader" in cell.metadata]
    return notebook.cells[marked[0] : marked[-1] + 1] if marked else []


def assignment_notebook(notebook: NotebookNode) -> NotebookNode:
    """The assignment made from a course notebook: its title, its install cell, then its exercises."""
    assignment = copy.deepcopy(notebook)
    title = new_markdown_cell(notebook.cells[0].source.splitlines()[0])
    title.id = "assignment-title"
    assignment.cells = [title, copy.deepcopy(notebook.cells[1]), *copy.deepcopy(exercise_cells(notebook))]
    for cell in assignment.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)  # the course run's timestamps
            cell.metadata.pop("jupyter", None)  # the course folds solutions away; a stub stays open
    return assignment


def nbgrader_api(course: Path, config=None):
    """nbgrader's Python API on the course folder ``course``, with its nbgrader_config.py and ``config``."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    # nbgrader runs `alembic` (a command of this environment) when it creates a gradebook
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    merged = PyFileConfigLoader(CONFIG.name, path=str(course)).load_config()
    merged.merge(config or Config())
    merged.CourseDirectory.root = str(course.resolve())
    return NbGraderAPI(coursedir=CourseDirectory(config=merged), config=merged)


def check(result: dict, what: str) -> None:
    """Raise GradingError with nbgrader's log when one of its API calls failed."""
    if not result.get("success"):
        raise GradingError(f"{what} failed:\n{result.get('log', '')}\n{result.get('error', '')}")


@dataclass
class Built:
    """What :func:`build` did for one edition: the assignments it generated, and the notebooks it left out
    because none of their cells carries nbgrader's metadata (no exercises to hand out yet)."""

    made: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def build(
    out: Path = DEFAULT_OUT,
    editions: Sequence[str] = tuple(EDITIONS),
    only: Sequence[str] = (),
    folders: Mapping[str, Path] | None = None,
) -> dict[str, Built]:
    """Write each edition's course folder under ``out`` and generate its assignments; returns
    ``{edition: Built}``. ``folders``: where an edition's notebooks are (default: the repository's
    ``notebooks/`` and ``notebooks/zh/``). Raises GradingError for an unknown edition or notebook."""
    made = {}
    for edition in editions:
        course = (out if out.is_absolute() else project_root() / out) / edition
        try:
            paths = course_notebooks((folders or {}).get(edition) or edition_dir(edition), only)
        except EditionError as error:
            raise GradingError(str(error)) from error
        (course / "source").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(CONFIG, course / CONFIG.name)
        made[edition] = Built()
        for path in paths:
            notebook = read_notebook(path)
            if not exercise_cells(notebook):
                made[edition].skipped.append(path.stem)
                continue
            write_notebook(course / "source" / path.stem / path.name, assignment_notebook(notebook))
            check(
                nbgrader_api(course).generate_assignment(path.stem),
                f"nbgrader generate_assignment {path.stem}",
            )
            made[edition].made.append(path.stem)
    return made
