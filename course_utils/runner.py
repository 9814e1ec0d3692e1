"""Run the whole course in batch, and regenerate the notebooks' stored outputs.

Two jobs, both reached from the command line (``python -m course_utils …``, see
:mod:`course_utils.__main__`):

* :func:`run_course` (``make course``) executes the notebooks of ``notebooks/`` in order
  with papermill, each in a fresh kernel of this Python, into a new folder per run::

      runs/20250101-120000-quick/
          01_concepts.ipynb        the executed notebook (kept when it fails, for inspection)
          01_concepts.html         the same, readable without Jupyter
          01_concepts/metrics.json what the notebook measured (it writes this itself)
          …
          summary.json             status, minutes and key metrics of every notebook
          summary.md               the same as a Markdown table

  Every notebook gets ``PROFILE`` (one profile for the whole run) and ``OUTPUT_DIR`` (the
  run folder), so notebook 04 finds the checkpoint that notebook 03 wrote in the same run.

* :func:`regenerate_outputs` (``make outputs``) re-executes the notebooks *in place* with
  nbconvert, leaving their parameters cell untouched (``PROFILE = "auto"``; the environment
  variable ``COURSE_PROFILE`` picks the profile), so that the outputs a reader sees on the
  repository page are what the committed code does.

Bad arguments are refused before anything runs (:class:`UsageError`); a failing notebook
is reported by name and cell, with the exception's name and message rather than its whole
traceback (the saved notebook has the rest).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from course_utils.data import project_root
from course_utils.profiles import (
    CONCRETE_PROFILES,
    METRICS_FILE,
    OUTPUT_ENV,
    PROFILE_ENV,
    PROFILES,
    ProfileError,
    configure,
    resolve_profile,
)
from course_utils.recipes import RECIPES

#: The kernel every notebook runs in; :func:`this_python_kernel` makes it this Python.
KERNEL_NAME = "python3"

#: Exit statuses of the command line.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Parameters the runner sets itself: a ``-p`` for them is refused.
RUNNER_PARAMETERS = {
    "PROFILE": "use --profile to choose the profile",
    "OUTPUT_DIR": "the runner writes into the run folder (use --runs-dir to move it)",
}
#: Parameters that :func:`course_utils.profiles.configure` takes as named arguments, not knobs.
CONFIGURE_ARGUMENTS = {"PROFILE": "profile", "SEED": "seed", "DEVICE": "device", "DATA_DIR": "data_dir"}

#: Statuses of a notebook in a run.
OK = "ok"
FAILED = "failed"
TIMEOUT = "timeout"
INTERRUPTED = "interrupted"
NOT_RUN = "not run"
PENDING = "pending"  # not started yet (only seen in a summary written while the run goes on)

_NUMBERED = re.compile(r"^(\d+)_")
_EVALUE_LIMIT = 600  # characters of an exception message shown in the terminal


class UsageError(ValueError):
    """Arguments that cannot be run (unknown profile, notebook or parameter, invalid value)."""


# --------------------------------------------------------------------------------------
# Finding notebooks and checking arguments
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CourseNotebook:
    """One notebook of the course.

    Attributes:
        path: the ``.ipynb`` file.
        number: its number prefix (``2`` for ``02_lenet5_mnist.ipynb``), which orders the course.
        parameters: the names its ``parameters`` cell declares, with their default as source text.
    """

    path: Path
    number: int
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The notebook's name without ``.ipynb``; also its recipe and output folder name."""
        return self.path.stem


def default_notebooks_dir() -> Path:
    """``notebooks/`` at the repository root."""
    return project_root() / "notebooks"


def declared_parameters(path: Path) -> dict[str, str]:
    """The parameters that the notebook's cell tagged ``parameters`` assigns.

    Returns:
        ``{name: default as source text}`` in the cell's order; empty when there is no such cell.
    """
    import papermill

    inspected = papermill.inspect_notebook(str(path))
    return {name: str(info["default"]) for name, info in inspected.items()}


def find_notebooks(folder: Path) -> list[CourseNotebook]:
    """The numbered notebooks (``NN_name.ipynb``) of ``folder``, in course order.

    Ordered by number (so ``10_`` comes after ``9_``), then by name.
    """
    found = []
    for path in folder.glob("*.ipynb"):
        match = _NUMBERED.match(path.name)
        if match:
            found.append(CourseNotebook(path, int(match.group(1)), declared_parameters(path)))
    return sorted(found, key=lambda notebook: (notebook.number, notebook.path.name))


def select_notebooks(notebooks: Sequence[CourseNotebook], only: Iterable[str]) -> list[CourseNotebook]:
    """The notebooks that ``only`` names, in course order (all of them when ``only`` is empty).

    Args:
        only: number prefixes (``"02"`` or ``"2"``) or names (``"02_lenet5_mnist"``, with or
            without ``.ipynb``); an entry may be a comma-separated list.

    Raises:
        UsageError: a name that matches no notebook; the message lists the valid ones.
    """
    wanted = [token.strip() for entry in only for token in entry.split(",") if token.strip()]
    if not wanted:
        return list(notebooks)
    chosen: set[Path] = set()
    unknown = []
    for token in wanted:
        name = token.removesuffix(".ipynb")
        matches = [
            notebook
            for notebook in notebooks
            if notebook.key == name or (name.isdigit() and int(name) == notebook.number)
        ]
        if not matches:
            unknown.append(token)
        chosen.update(notebook.path for notebook in matches)
    if unknown:
        valid = ", ".join(f"{notebook.path.name.split('_')[0]} ({notebook.key})" for notebook in notebooks)
        raise UsageError(f"no notebook {', '.join(map(repr, unknown))}; the notebooks are: {valid or 'none'}")
    return [notebook for notebook in notebooks if notebook.path in chosen]


def parse_parameter_value(text: str) -> Any:
    """A ``-p NAME VALUE`` value as Python, the way papermill's ``-p`` reads it.

    Numbers, ``True``/``False``/``None`` (any case), and Python literals (``[1, 2]``,
    ``'text'``) are read as such; anything else stays a string.

    >>> parse_parameter_value("3"), parse_parameter_value("0.5"), parse_parameter_value("true")
    (3, 0.5, True)
    >>> parse_parameter_value("none") is None, parse_parameter_value("cpu")
    (True, 'cpu')
    """
    keywords = {"true": True, "false": False, "none": None}
    if text.strip().lower() in keywords:
        return keywords[text.strip().lower()]
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parameters_for(
    notebooks: Sequence[CourseNotebook], parameters: Sequence[tuple[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Which of the ``-p`` parameters each notebook gets: those its parameters cell declares.

    Names match regardless of case (``-p epochs 3`` sets ``EPOCHS``).

    Returns:
        ``{notebook key: {declared name: value}}``.

    Raises:
        UsageError: a parameter that the runner sets itself, or that no selected notebook
            declares; the message lists the parameters each notebook declares.
    """
    chosen: dict[str, dict[str, Any]] = {notebook.key: {} for notebook in notebooks}
    for name, value in parameters:
        if name.upper() in RUNNER_PARAMETERS:
            raise UsageError(f"-p {name}: {RUNNER_PARAMETERS[name.upper()]}")
        takers = 0
        for notebook in notebooks:
            declared = {declared.upper(): declared for declared in notebook.parameters}
            if name.upper() in declared:
                chosen[notebook.key][declared[name.upper()]] = value
                takers += 1
        if not takers:
            accepted = "\n".join(
                f"  {notebook.key}: "
                + ", ".join(n for n in notebook.parameters if n.upper() not in RUNNER_PARAMETERS)
                for notebook in notebooks
            )
            raise UsageError(f"no notebook declares the parameter {name!r}; they declare:\n{accepted}")
    return chosen


def check_notebook_parameters(notebook: CourseNotebook, profile: str, values: dict[str, Any]) -> None:
    """Refuse, before anything runs, values that the notebook's ``configure`` call would refuse.

    Only notebooks that have a recipe in :data:`course_utils.recipes.RECIPES` are checked;
    the check calls :func:`course_utils.profiles.configure` with the profile and the
    parameters the notebook will get, exactly as its ``configure`` cell will.

    Raises:
        UsageError: the notebook would stop at its ``configure`` cell; says why.
    """
    if notebook.key not in RECIPES:
        return
    arguments: dict[str, Any] = {}
    knobs: dict[str, Any] = {}
    recipe_names = set(RECIPES[notebook.key][CONCRETE_PROFILES[0]])
    for name, value in values.items():
        if name.upper() in CONFIGURE_ARGUMENTS:
            arguments[CONFIGURE_ARGUMENTS[name.upper()]] = value
        elif name.lower() in recipe_names:
            knobs[name.lower()] = value
    try:
        configure(notebook.key, profile, **arguments, **knobs)
    except ProfileError as error:
        raise UsageError(f"{notebook.key}: {error}") from None


# --------------------------------------------------------------------------------------
# The kernel and its environment
# --------------------------------------------------------------------------------------


def kernel_executable(kernel_name: str = KERNEL_NAME) -> str | None:
    """The Python executable that the kernel ``kernel_name`` would start, or None if there is none.

    jupyter_client starts ``sys.executable`` for a kernelspec whose command is plain
    ``python``/``python3``/``python3.X`` (as ipykernel's own spec is), else the command as written.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        return None
    command = spec.argv[0] if spec.argv else ""
    version = sys.version_info
    if command in {"python", f"python{version[0]}", f"python{version[0]}.{version[1]}"}:
        return sys.executable
    return shutil.which(command) or command


def runs_this_python(executable: str | None) -> bool:
    """Whether ``executable`` is a Python of this environment (the same ``bin/`` folder as ours).

    Symbolic links are deliberately not resolved: a virtual environment's ``python`` links
    to the system's, but only the link gives the environment's packages.
    """
    if not executable:
        return False
    return Path(os.path.abspath(executable)).parent == Path(os.path.abspath(sys.executable)).parent


@contextlib.contextmanager
def this_python_kernel(kernel_name: str = KERNEL_NAME) -> Iterator[str]:
    """Make sure that the kernel ``kernel_name`` starts this Python (with this course's packages).

    When the kernelspec found under that name starts another Python (a spec installed by
    another environment, earlier on the Jupyter path), a spec for ``sys.executable`` is
    written to a temporary folder that goes first on ``JUPYTER_PATH`` for the duration.

    Yields:
        The kernel name to execute with.
    """
    if runs_this_python(kernel_executable(kernel_name)):
        yield kernel_name
        return
    with tempfile.TemporaryDirectory(prefix="course-kernel-") as folder:
        spec_dir = Path(folder) / "kernels" / kernel_name
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python 3 ({sys.prefix})",
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
        previous = os.environ.get("JUPYTER_PATH")
        with environment(JUPYTER_PATH=os.pathsep.join(p for p in (folder, previous) if p)):
            yield kernel_name


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, remove) environment variables for the duration, then restore them.

    Kernels inherit this process's environment, so this is how the runner talks to them.
    """
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def kernel_environment(output_dir: Path, profile: str | None = None) -> dict[str, str | None]:
    """The environment variables every batch kernel gets.

    Text progress bars (widgets do not render in a saved notebook or a terminal), a
    headless Matplotlib, the output folder for notebooks that do not take ``OUTPUT_DIR``,
    and the profile that ``PROFILE = "auto"`` resolves to.
    """
    values: dict[str, str | None] = {
        "COURSE_PROGRESS": "text",
        "MPLBACKEND": "Agg",
        OUTPUT_ENV: str(output_dir),
    }
    if profile is not None:
        values[PROFILE_ENV] = profile
    return values


class CellTracker:
    """An nbclient ``on_cell_start`` hook: remembers the cell that runs, and may print a line for it.

    The index it reports is the cell's index in the *source* notebook: the cell papermill
    injects after the parameters cell is not counted.
    """

    def __init__(self, total_code_cells: int = 0, stream: TextIO | None = None) -> None:
        self.total = total_code_cells
        self.stream = stream
        self.code_cells_started = 0
        self.injected_index: int | None = None
        self.cell_index: int | None = None
        self.source_first_line = ""

    def source_index(self, executed_index: int) -> int:
        """A cell's index in the notebook as written, from its index in the executed notebook."""
        injected_before = self.injected_index is not None and self.injected_index < executed_index
        return executed_index - 1 if injected_before else executed_index

    def __call__(self, cell: Any, cell_index: int) -> None:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            self.injected_index = cell_index  # papermill's cell: not one of the notebook's own
            return
        if cell.get("cell_type") != "code" or not cell.get("source", "").strip():
            return
        self.code_cells_started += 1
        self.cell_index = self.source_index(cell_index)
        self.source_first_line = first_line(cell["source"])
        if self.stream is not None:
            of_total = f"/{self.total}" if self.total else ""
            print(
                f"    cell {self.code_cells_started}{of_total} (index {self.cell_index}): "
                f"{shorten(self.source_first_line, 70)}",
                file=self.stream,
                flush=True,
            )

    def describe(self) -> str:
        """``cell index 7: `first line``` for messages, or a placeholder before any cell ran."""
        if self.cell_index is None:
            return "before the first cell (kernel start-up)"
        return f"cell index {self.cell_index}: `{shorten(self.source_first_line, 80)}`"


def first_line(source: str | list[str]) -> str:
    """The first non-blank line of a cell's source."""
    text = "".join(source) if isinstance(source, list) else source
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def count_code_cells(path: Path) -> int:
    """The number of non-empty code cells of a notebook."""
    import nbformat

    notebook = nbformat.read(str(path), as_version=4)
    return sum(1 for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip())


def kernel_config() -> Any:
    """Configuration for the kernel managers: encrypt the kernel's connection when possible.

    The kernel listens on local TCP ports; with CurveZMQ keys provisioned by the manager
    nobody else on the machine can read or inject code, and ipykernel does not print its
    "running over TCP without encryption" warning for every notebook.
    """
    import zmq
    from traitlets.config import Config

    config = Config()
    if zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"  # used when the kernelspec supports it
    return config


def deadline_timeout(deadline: float | None) -> Callable[[Any], float | None] | None:
    """An nbclient ``timeout_func`` that gives each cell what is left of the notebook's time."""
    if deadline is None:
        return None
    # nbclient reads 0 as "no limit": never hand it less than a hundredth of a second.
    return lambda cell: max(deadline - time.monotonic(), 0.01)


def export_html(notebook_path: Path) -> Path:
    """Write ``<name>.html`` beside the notebook (nbconvert's HTML exporter) and return its path."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook_path))
    html_path = notebook_path.with_suffix(".html")
    html_path.write_text(body, encoding="utf-8")
    return html_path


def display_path(path: Path) -> str:
    """``path`` relative to the current folder when it lies below it (shorter, and no machine paths)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------
# Results and the summary
# --------------------------------------------------------------------------------------


@dataclass
class NotebookResult:
    """What happened to one notebook of a run.

    Attributes:
        notebook: its key (``"02_lenet5_mnist"``).
        status: ``ok``, ``failed``, ``timeout``, ``interrupted``, ``not run`` (or ``pending``).
        seconds: wall-clock time, kernel start-up included.
        parameters: the parameters it was given.
        metrics: what it wrote to ``<run folder>/<notebook>/metrics.json`` (None if nothing).
        error: where and why it stopped: ``cell_index`` (in the source notebook),
            ``execution_count``, ``source``, ``ename``, ``evalue`` (None when it did not fail).
        files: the executed notebook and its HTML, relative to the run folder.
    """

    notebook: str
    status: str = PENDING
    seconds: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "status": self.status,
            "seconds": None if self.seconds is None else round(self.seconds, 2),
            "minutes": None if self.seconds is None else round(self.seconds / 60, 2),
            "parameters": self.parameters,
            "metrics": self.metrics,
            "error": self.error,
            "files": self.files,
        }


@dataclass
class RunReport:
    """A batch run of the course: where it went, with what, and how each notebook ended."""

    run_dir: Path
    profile: str
    requested_profile: str
    parameters: dict[str, Any]
    results: list[NotebookResult]
    started: datetime
    finished: datetime | None = None
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 when every notebook succeeded, 130 after Ctrl-C, else 1."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if all(result.status == OK for result in self.results) else EXIT_FAILED

    def to_dict(self) -> dict[str, Any]:
        import torch

        return {
            "run": self.run_dir.name,
            "profile": self.profile,
            "requested_profile": self.requested_profile,
            "parameters": self.parameters,
            "started": self.started.isoformat(timespec="seconds"),
            "finished": None if self.finished is None else self.finished.isoformat(timespec="seconds"),
            "exit_code": self.exit_code,
            "environment": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
            },
            "notebooks": [result.to_dict() for result in self.results],
        }

    def rows(self) -> list[list[str]]:
        """The summary table: notebook, status, minutes, test accuracy, parameters, device, profile."""
        rows = []
        for result in self.results:
            metrics = result.metrics or {}
            rows.append(
                [
                    result.notebook,
                    result.status,
                    "" if result.seconds is None else f"{result.seconds / 60:.2f}",
                    format_accuracy(metrics.get("test_accuracy")),
                    format_count(metrics.get("parameters")),
                    str(metrics.get("device", "")),
                    str(metrics.get("profile", "")),
                ]
            )
        return rows

    HEADER = ("notebook", "status", "minutes", "test accuracy", "parameters", "device", "profile")

    def to_text(self) -> str:
        """The summary table as aligned plain text, for the terminal."""
        table = [list(self.HEADER), *self.rows()]
        widths = [max(len(row[i]) for row in table) for i in range(len(self.HEADER))]
        right = {2, 3, 4}  # numbers align right
        lines = [
            "  ".join(
                cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))
            )
            for row in table
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(line.rstrip() for line in lines)

    def to_markdown(self) -> str:
        """The summary as Markdown: a table, then each notebook's error or other metrics."""
        lines = [
            f"# Course run {self.run_dir.name}",
            "",
            f"Profile **{self.profile}**"
            + (f" (from `{self.requested_profile}`)" if self.requested_profile != self.profile else "")
            + (f", parameters `{self.parameters}`" if self.parameters else "")
            + f"; started {self.started:%Y-%m-%d %H:%M:%S}.",
            "",
            "| " + " | ".join(self.HEADER) + " |",
            "| " + " | ".join("---:" if i in (2, 3, 4) else "---" for i in range(len(self.HEADER))) + " |",
        ]
        for row, result in zip(self.rows(), self.results):
            if result.files.get("html"):
                row[0] = f"[{row[0]}]({result.files['html']})"
            lines.append("| " + " | ".join(cell or " " for cell in row) + " |")
        for result in self.results:
            if result.error:
                lines += [
                    "",
                    f"**{result.notebook}** stopped at cell index {result.error.get('cell_index')}: "
                    f"`{shorten(result.error.get('source', ''), 100)}`",
                    "",
                    "```",
                    f"{result.error.get('ename')}: "
                    + shorten(str(result.error.get("evalue", "")), _EVALUE_LIMIT),
                    "```",
                ]
            scalars = {
                name: value
                for name, value in (result.metrics or {}).items()
                if isinstance(value, (int, float, str)) and name not in ("notebook", "written")
            }
            if scalars:
                listed = ", ".join(f"{name} = {format_scalar(value)}" for name, value in scalars.items())
                lines += ["", f"{result.notebook} metrics: {listed}"]
        lines.append("")
        return "\n".join(lines)

    def write(self) -> None:
        """Write ``summary.json`` and ``summary.md`` into the run folder."""
        (self.run_dir / "summary.json").write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        (self.run_dir / "summary.md").write_text(self.to_markdown(), encoding="utf-8")


def format_accuracy(value: Any) -> str:
    """A test accuracy as a percentage (fractions ≤ 1 are scaled by 100); blank when absent."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    return f"{100 * value if value <= 1 else value:.2f} %"


def format_count(value: Any) -> str:
    """A whole number with thousands separators; blank when absent."""
    if isinstance(value, bool) or not isinstance(value, int):
        return ""
    return f"{value:,}"


def format_scalar(value: Any) -> str:
    """A metric for the Markdown summary: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def read_metrics(run_dir: Path, key: str) -> dict[str, Any] | None:
    """``<run folder>/<notebook>/metrics.json``, or None when the notebook wrote none (or a broken one)."""
    path = run_dir / key / METRICS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def new_run_dir(runs_dir: Path, profile: str, now: datetime) -> Path:
    """Create ``runs_dir/<YYYYmmdd-HHMMSS>-<profile>`` (``-2``, ``-3``, … if it exists)."""
    base = f"{now:%Y%m%d-%H%M%S}-{profile}"
    for attempt in range(1, 1000):
        candidate = runs_dir / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder under {runs_dir}")


# --------------------------------------------------------------------------------------
# Running the course (papermill)
# --------------------------------------------------------------------------------------


@dataclass
class RunPlan:
    """Checked arguments of a run: nothing has run yet when this exists."""

    notebooks: list[CourseNotebook]
    profile: str
    requested_profile: str
    parameters: dict[str, dict[str, Any]]
    given: dict[str, Any]


def plan_run(
    notebooks_dir: Path,
    profile: str = "auto",
    parameters: Sequence[tuple[str, Any]] = (),
    only: Iterable[str] = (),
) -> RunPlan:
    """Check every argument of a run and resolve the profile, before anything runs.

    Raises:
        UsageError: an unknown profile, notebook or parameter, a parameter value that a
            notebook would refuse, or no notebooks at all.
    """
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    if not notebooks_dir.is_dir():
        raise UsageError(f"no notebooks folder {notebooks_dir}")
    notebooks = select_notebooks(find_notebooks(notebooks_dir), only)
    if not notebooks:
        raise UsageError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}")
    try:
        concrete = resolve_profile(profile)
    except ProfileError as error:
        raise UsageError(str(error)) from None
    per_notebook = parameters_for(notebooks, parameters)
    for notebook in notebooks:
        check_notebook_parameters(notebook, concrete, per_notebook[notebook.key])
    return RunPlan(
        notebooks, concrete, profile, per_notebook, {name.upper(): value for name, value in parameters}
    )


def run_course(
    notebooks_dir: Path | None = None,
    runs_dir: Path | None = None,
    profile: str = "auto",
    parameters: Sequence[tuple[str, Any]] = (),
    only: Iterable[str] = (),
    timeout_minutes: float | None = None,
    keep_going: bool = False,
    progress: str = "auto",
    log_output: bool = False,
    stream: TextIO | None = None,
) -> RunReport:
    """Execute the course's notebooks in order into a new run folder, and summarise.

    Args:
        notebooks_dir: where the notebooks are (default: ``notebooks/`` of the repository).
        runs_dir: where run folders go (default: ``runs/`` of the repository).
        profile: ``auto``, ``smoke``, ``quick`` or ``full``; ``auto`` is resolved once, here.
        parameters: ``(NAME, value)`` pairs, given to every notebook that declares ``NAME``.
        only: a subset of notebooks, by number prefix or name (see :func:`select_notebooks`).
        timeout_minutes: per notebook; past it the notebook is stopped and marked ``timeout``.
        keep_going: run the remaining notebooks after a failure (default: mark them ``not run``).
        progress: ``bar`` (papermill's cell progress bar), ``lines`` (a line per cell),
            ``none``, or ``auto`` (a bar on a terminal, lines otherwise).
        log_output: also stream each notebook's printed output to the terminal.
        stream: where to print (default ``sys.stdout``).

    Returns:
        The report, also written as ``summary.json`` and ``summary.md`` in the run folder.
        After Ctrl-C the report has ``interrupted`` set (exit status 130).

    Raises:
        UsageError: bad arguments, before anything runs.
    """
    stream = stream or sys.stdout
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else default_notebooks_dir()
    runs_dir = Path(runs_dir) if runs_dir is not None else project_root() / "runs"
    if timeout_minutes is not None and not timeout_minutes > 0:
        raise UsageError(f"--timeout must be a positive number of minutes, got {timeout_minutes}")
    if progress not in ("auto", "bar", "lines", "none"):
        raise UsageError(f"unknown progress style {progress!r}; use auto, bar, lines or none")
    plan = plan_run(notebooks_dir, profile, parameters, only)
    if progress == "auto":
        progress = "bar" if sys.stderr.isatty() else "lines"

    started = datetime.now()
    run_dir = new_run_dir(runs_dir.absolute(), plan.profile, started)
    report = RunReport(
        run_dir=run_dir,
        profile=plan.profile,
        requested_profile=plan.requested_profile,
        parameters=plan.given,
        results=[NotebookResult(n.key, parameters=plan.parameters[n.key]) for n in plan.notebooks],
        started=started,
    )
    print(
        f"Running {len(plan.notebooks)} notebook(s) with profile {plan.profile}"
        + (f" (from {plan.requested_profile})" if plan.requested_profile != plan.profile else "")
        + f" into {display_path(run_dir)}",
        file=stream,
        flush=True,
    )
    report.write()
    running: NotebookResult | None = None  # the notebook that Ctrl-C would interrupt
    try:
        with (
            this_python_kernel() as kernel_name,
            environment(**kernel_environment(run_dir, plan.profile)),
        ):
            for position, (notebook, result) in enumerate(zip(plan.notebooks, report.results), start=1):
                print(
                    f"[{position}/{len(plan.notebooks)}] {notebook.key} ({plan.profile}) ...",
                    file=stream,
                    flush=True,
                )
                running = result
                _execute_with_papermill(
                    notebook,
                    result,
                    run_dir,
                    plan,
                    kernel_name=kernel_name,
                    timeout_minutes=timeout_minutes,
                    progress=progress,
                    log_output=log_output,
                    stream=stream,
                )
                _finish_notebook(result, run_dir, stream)
                running = None
                report.write()
                if result.status != OK and not keep_going:
                    break
    except KeyboardInterrupt:
        report.interrupted = True
        if running is not None:
            running.status = INTERRUPTED
            print(f"\n    Ctrl-C: stopped {running.notebook}", file=stream, flush=True)
            with contextlib.suppress(Exception, KeyboardInterrupt):
                _finish_notebook(running, run_dir, stream)
    for result in report.results:
        if result.status == PENDING:
            result.status = NOT_RUN
    report.finished = datetime.now()
    report.write()
    print("", file=stream)
    print(report.to_text(), file=stream)
    print(f"\nSummary: {display_path(run_dir / 'summary.md')} (and summary.json)", file=stream, flush=True)
    return report


def _execute_with_papermill(
    notebook: CourseNotebook,
    result: NotebookResult,
    run_dir: Path,
    plan: RunPlan,
    *,
    kernel_name: str,
    timeout_minutes: float | None,
    progress: str,
    log_output: bool,
    stream: TextIO,
) -> None:
    """Execute one notebook with papermill; fill in ``result``'s status, time and error.

    KeyboardInterrupt propagates (after the time is recorded); papermill has saved the
    partly executed notebook by then.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    output_path = run_dir / f"{notebook.key}.ipynb"
    values: dict[str, Any] = dict(result.parameters)
    declared = {name.upper(): name for name in notebook.parameters}
    if "PROFILE" in declared:
        values[declared["PROFILE"]] = plan.profile
    if "OUTPUT_DIR" in declared:
        values[declared["OUTPUT_DIR"]] = str(run_dir)
    tracker = CellTracker(count_code_cells(notebook.path), stream if progress == "lines" else None)
    deadline = None if timeout_minutes is None else time.monotonic() + 60 * timeout_minutes
    result.files["notebook"] = output_path.name
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook.path),
            str(output_path),
            parameters=values,
            kernel_name=kernel_name,
            cwd=str(notebook.path.parent),
            progress_bar=progress == "bar",
            stdout_file=stream if log_output else None,
            stderr_file=sys.stderr if log_output else None,
            on_cell_start=tracker,
            timeout_func=deadline_timeout(deadline),
            config=kernel_config(),
            # Stop the kernel at once when done: after a timeout or Ctrl-C it may still be busy,
            # and a graceful shutdown would wait for it (and print its complaints).
            shutdown_kernel="immediate",
        )
        result.status = OK
    except PapermillExecutionError as error:
        result.status = FAILED
        result.error = {
            "cell_index": tracker.source_index(error.cell_index),
            "execution_count": error.exec_count,
            "source": first_line(error.source),
            "ename": error.ename,
            "evalue": error.evalue,
        }
    except CellTimeoutError:
        result.status = TIMEOUT
        result.error = {
            "cell_index": tracker.cell_index,
            "source": tracker.source_first_line,
            "ename": "Timeout",
            "evalue": f"the notebook ran longer than --timeout {timeout_minutes:g} min",
        }
    except DeadKernelError as error:
        result.status = FAILED
        result.error = {
            "cell_index": tracker.cell_index,
            "source": tracker.source_first_line,
            "ename": "DeadKernelError",
            "evalue": f"{error} (out of memory? killed?)",
        }
    except Exception as error:  # e.g. a notebook that cannot be read, or a kernel that will not start
        result.status = FAILED
        result.error = {
            "cell_index": tracker.cell_index,
            "source": tracker.source_first_line,
            "ename": type(error).__name__,
            "evalue": str(error),
        }
    finally:
        result.seconds = time.perf_counter() - start
        if result.error is None and result.status == PENDING:  # KeyboardInterrupt: the caller marks it
            result.error = {
                "cell_index": tracker.cell_index,
                "source": tracker.source_first_line,
                "ename": "KeyboardInterrupt",
                "evalue": "stopped by Ctrl-C",
            }


def _finish_notebook(result: NotebookResult, run_dir: Path, stream: TextIO) -> None:
    """Collect the notebook's metrics, export its HTML, and say how it ended."""
    result.metrics = read_metrics(run_dir, result.notebook)
    executed = run_dir / f"{result.notebook}.ipynb"
    if executed.is_file():
        try:
            result.files["html"] = export_html(executed).name
        except Exception as error:  # the notebook stays readable in Jupyter; say why there is no HTML
            print(f"    (no HTML export: {type(error).__name__}: {error})", file=stream)
    else:
        result.files.pop("notebook", None)
    minutes = f"{result.seconds / 60:.2f} min" if result.seconds is not None else ""
    if result.status == OK:
        missing = "" if result.metrics is not None else f" (it wrote no {result.notebook}/{METRICS_FILE})"
        print(f"    ok in {minutes}{missing}", file=stream, flush=True)
        return
    error = result.error or {}
    print(
        f"    {result.status.upper()} after {minutes}: {result.notebook}, "
        + (
            f"cell index {error['cell_index']}"
            + (f" (In [{error['execution_count']}])" if error.get("execution_count") else "")
            + f": `{shorten(error.get('source', ''), 80)}`"
            if error.get("cell_index") is not None
            else "before the first cell"
        ),
        file=stream,
    )
    message = shorten(str(error.get("evalue", "")).strip(), _EVALUE_LIMIT)
    lines = message.splitlines() or [""]
    if len(lines) > 8:
        lines = [*lines[:8], "..."]
    print(f"    {error.get('ename')}: " + "\n      ".join(lines), file=stream)
    if executed.is_file():
        print(
            f"    The partly executed notebook{' (full traceback)' if result.status == FAILED else ''}: "
            f"{display_path(executed)}",
            file=stream,
        )
    stream.flush()


# --------------------------------------------------------------------------------------
# Regenerating the stored outputs in place (nbconvert)
# --------------------------------------------------------------------------------------


@dataclass
class OutputsResult:
    """One notebook of ``make outputs``: its key, ``ok``/``failed``/…, and the time it took."""

    notebook: str
    status: str
    seconds: float
    message: str = ""


def regenerate_outputs(
    notebooks_dir: Path | None = None,
    output_dir: Path | None = None,
    profile: str = "quick",
    only: Iterable[str] = (),
    timeout_minutes: float | None = 120.0,
    keep_going: bool = False,
    stream: TextIO | None = None,
) -> list[OutputsResult]:
    """Re-execute notebooks top to bottom *in place*, so that their stored outputs match the code.

    Each notebook runs in a fresh kernel of this Python with nbconvert's ExecutePreprocessor
    (no papermill: no injected cell, no papermill metadata), in ``notebooks_dir`` as the
    working folder, with ``COURSE_PROFILE=profile`` (the parameters cell stays as committed,
    ``PROFILE = "auto"``), text progress bars, a headless Matplotlib, and
    ``COURSE_OUTPUT_DIR=output_dir`` (so 04 finds the checkpoint 03 wrote). The notebook is
    then written back with its cell ids and metadata, execution counts 1, 2, 3, ….

    A notebook that fails is left unchanged; the failed execution goes to
    ``output_dir/failed-<name>.ipynb`` and the remaining notebooks are skipped unless
    ``keep_going``.

    Args:
        timeout_minutes: the most one notebook may take (None: no limit).

    Returns:
        One :class:`OutputsResult` per selected notebook, in course order.

    Raises:
        UsageError: an unknown profile or notebook.
        KeyboardInterrupt: after Ctrl-C (the notebook being executed is left unchanged).
    """
    stream = stream or sys.stdout
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else default_notebooks_dir()
    output_dir = Path(output_dir) if output_dir is not None else project_root() / "outputs"
    if profile not in CONCRETE_PROFILES:
        raise UsageError(f"unknown profile {profile!r}; use one of {', '.join(CONCRETE_PROFILES)}")
    if timeout_minutes is not None and not timeout_minutes > 0:
        raise UsageError(f"--timeout must be a positive number of minutes, got {timeout_minutes}")
    if not notebooks_dir.is_dir():
        raise UsageError(f"no notebooks folder {notebooks_dir}")
    notebooks = select_notebooks(find_notebooks(notebooks_dir), only)
    if not notebooks:
        raise UsageError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}")
    output_dir = output_dir.absolute()
    output_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"Regenerating stored outputs with profile {profile} on {describe_machine()}", file=stream, flush=True
    )
    results: list[OutputsResult] = []
    with (
        this_python_kernel() as kernel_name,
        environment(**kernel_environment(output_dir, profile)),
    ):
        for position, notebook in enumerate(notebooks, start=1):
            if results and results[-1].status != OK and not keep_going:
                results.append(OutputsResult(notebook.key, NOT_RUN, 0.0))
                continue
            print(f"[{position}/{len(notebooks)}] {notebook.key} ({profile}) ...", file=stream, flush=True)
            outcome = _execute_in_place(notebook, output_dir, kernel_name, timeout_minutes)
            results.append(outcome)
            if outcome.status == OK:
                print(
                    f"    ok in {outcome.seconds:.1f} s ({outcome.seconds / 60:.2f} min){outcome.message}",
                    file=stream,
                    flush=True,
                )
            else:
                print(
                    f"    {outcome.status.upper()} after {outcome.seconds:.1f} s: {outcome.message}",
                    file=stream,
                )
                print(
                    f"    {display_path(notebook.path)} is unchanged; the failed execution is in "
                    f"{display_path(output_dir / f'failed-{notebook.key}.ipynb')}",
                    file=stream,
                    flush=True,
                )
    print("", file=stream)
    width = max(len(result.notebook) for result in results)
    for result in results:
        seconds = f"{result.seconds:8.1f} s" if result.status != NOT_RUN else ""
        print(f"{result.notebook:<{width}}  {result.status:<8} {seconds}", file=stream)
    stream.flush()
    return results


def describe_machine() -> str:
    """The hardware a timing was taken on: OS, CPU count and GPU, in one line."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, {gpu}, torch {torch.__version__}"
    )


def _execute_in_place(
    notebook: CourseNotebook, output_dir: Path, kernel_name: str, timeout_minutes: float | None
) -> OutputsResult:
    """Execute one notebook with nbconvert and write it back; on failure keep the original."""
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from nbconvert.preprocessors import ExecutePreprocessor

    original = nbformat.read(str(notebook.path), as_version=4)
    executed = copy.deepcopy(original)
    for cell in executed.cells:  # a failed run must not show the old outputs below the failure
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    tracker = CellTracker()
    deadline = None if timeout_minutes is None else time.monotonic() + 60 * timeout_minutes
    executor = ExecutePreprocessor(
        kernel_name=kernel_name,
        timeout=None,
        timeout_func=deadline_timeout(deadline),
        record_timing=False,  # no timestamps in the committed cells' metadata
        on_cell_start=tracker,
        config=kernel_config(),
    )
    failed = output_dir / f"failed-{notebook.key}.ipynb"
    start = time.perf_counter()
    status, message = OK, ""
    try:
        executor.preprocess(executed, {"metadata": {"path": str(notebook.path.parent)}})
    except CellExecutionError as error:
        status = FAILED
        message = f"{tracker.describe()}: {error.ename}: {shorten(str(error.evalue), _EVALUE_LIMIT)}"
    except CellTimeoutError:
        status = TIMEOUT
        message = f"{tracker.describe()}: longer than {timeout_minutes:g} min"
    except DeadKernelError as error:
        status = FAILED
        message = f"{tracker.describe()}: the kernel died ({error})"
    except KeyboardInterrupt:
        nbformat.write(executed, str(failed))
        raise
    seconds = time.perf_counter() - start
    if status != OK:
        nbformat.write(executed, str(failed))
        return OutputsResult(notebook.key, status, seconds, message)
    counts = [cell.execution_count for cell in executed.cells if cell.cell_type == "code"]
    if counts != list(range(1, len(counts) + 1)):
        message = f" (warning: execution counts {counts} are not 1..{len(counts)}: an empty code cell?)"
    # Write next to the original, then rename: an interrupted write never leaves half a notebook.
    temporary = notebook.path.with_name(f".{notebook.path.name}.tmp")
    nbformat.write(executed, str(temporary))
    os.replace(temporary, notebook.path)
    failed.unlink(missing_ok=True)
    return OutputsResult(notebook.key, status, seconds, message)
