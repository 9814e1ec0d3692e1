"""Run the course's notebooks in batch: into a run folder (``make course``) or in place (``make outputs``).

One execution path (:func:`execute_notebook`) and one error mapping (:func:`stop_status`) serve both
commands of ``python -m course_utils``. Parameters are injected as papermill does. Either command runs
one edition of the course (:mod:`course_utils.editions`: ``--edition zh`` for ``notebooks/zh``) and
its summary says which. ``outputs`` runs only the English notebooks, and copies each one it rewrote
into the translations (:func:`~course_utils.editions.sync_edition`), whose outputs are never executed.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import re
import signal
import stat
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from course_utils import profiles
from course_utils.data import DATASET_NAMES, DatasetError, default_data_dir, load_dataset
from course_utils.editions import (
    EDITIONS,
    ENGLISH,
    LANGUAGES,
    EditionError,
    counterpart,
    edition_dir,
    edition_of,
    sync_edition,
    translated_editions,
)
from course_utils.environment import describe_environment
from course_utils.files import atomic_write, display_path, project_root
from course_utils.tables import format_table

# A run stopped by a signal exits with 128 + its number, as shells report it (130 Ctrl-C, 143 SIGTERM).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGNAL = 0, 1, 2, 128
OK, FAILED, TIMEOUT, INTERRUPTED, NOT_RUN = "ok", "failed", "timeout", "interrupted", "not run"

#: Parameters the runner sets itself: a ``-p`` for them is refused.
RUNNER_PARAMETERS = {
    "PROFILE": "use --profile to choose the profile",
    "OUTPUT_DIR": "a batch run writes into its run folder: move it with --runs-dir (or COURSE_OUTPUT_DIR)",
}
DATA_ENV = "COURSE_DATA_DIR"
#: What stops a run as Ctrl-C does, and why it usually comes.
STOP_SIGNALS = {signal.SIGTERM: "timeout, a scheduler or kill", signal.SIGHUP: "the terminal closed"}
MESSAGE_LIMIT = 2000  # characters of an exception's message kept in the summary and shown


class UsageError(ValueError):
    """A run that cannot start: unknown profile, notebook or parameter, invalid value, missing data,
    or an output folder that cannot be written."""


class StopSignal(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``signum``), raised where the runner is, so that it stops the run as Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"{signal.Signals(signum).name} ({STOP_SIGNALS[signum]})")
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP raise :class:`StopSignal`, unless they are ignored (as under ``nohup``)."""

    def stop(signum: int, frame: Any) -> None:
        # After SIGHUP the terminal (or the pipe to it) may be gone and a print would fail (EIO, EPIPE):
        # what is left to print goes nowhere, so that the run is still saved. A log file keeps it.
        for fd in (1, 2) if signum == signal.SIGHUP else ():
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
        raise StopSignal(signum)

    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    for number in (number for number, handler in previous.items() if handler == signal.SIG_DFL):
        signal.signal(number, stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@dataclass(frozen=True)
class CourseNotebook:
    """A notebook: its file, number (``2`` for ``02_…``), ``parameters`` cell (``{name: default as source
    text}``), ``configure`` call and the datasets it loads (``load_dataset("mnist", ...)``)."""

    path: Path
    number: int
    parameters: dict[str, str] = field(default_factory=dict)
    configure_call: ast.Call | None = None
    datasets: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The notebook's name without ``.ipynb``; also its recipe and output folder name."""
        return self.path.stem


def read_notebook(path: Path) -> CourseNotebook:
    """A numbered notebook, with its parameters, ``configure`` call and datasets read from its code cells."""
    import nbformat

    parameters: dict[str, str] = {}
    call, datasets = None, {}
    for cell in nbformat.read(str(path), as_version=4).cells:
        try:  # a cell with IPython syntax (%magic, !command) holds neither: skip it
            tree = ast.parse(cell.source if cell.cell_type == "code" else "")
        except SyntaxError:
            continue
        if "parameters" in cell.metadata.get("tags", []):
            for statement in tree.body:  # NAME = value, as papermill reads them
                if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
                    parameters[statement.targets[0].id] = ast.get_source_segment(cell.source, statement.value)
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
        call = call or next((c for c in calls if getattr(c.func, "id", None) == "configure"), None)
        loads = [c.args[0] for c in calls if getattr(c.func, "id", None) == "load_dataset" and c.args]
        datasets.update((a.value, None) for a in loads if isinstance(getattr(a, "value", None), str))
    return CourseNotebook(path, int(path.name.split("_")[0]), parameters, call, tuple(datasets))


def find_notebooks(folder: Path) -> list[CourseNotebook]:
    """The numbered notebooks (``NN_name.ipynb``) of ``folder``, by number (``10_`` after ``9_``)."""
    paths = [path for path in folder.glob("*.ipynb") if re.match(r"\d+_", path.name)]
    return sorted(map(read_notebook, paths), key=lambda notebook: (notebook.number, notebook.path.name))


def select_notebooks(notebooks: Sequence[CourseNotebook], only: Iterable[str]) -> list[CourseNotebook]:
    """The notebooks that ``only`` names, in course order (all of them when ``only`` is empty).

    ``only`` holds numbers (``"02"`` or ``"2"``) or names (``"02_lenet5_mnist"``, ``.ipynb`` or not), or
    comma-separated lists of them. Raises UsageError for a name that matches no notebook, with the valid ones.
    """
    wanted = [token.strip().removesuffix(".ipynb") for entry in only for token in entry.split(",")]
    wanted = [token for token in wanted if token]

    def named(notebook: CourseNotebook, token: str) -> bool:
        return notebook.key == token or (token.isdigit() and int(token) == notebook.number)

    unknown = [token for token in wanted if not any(named(notebook, token) for notebook in notebooks)]
    if unknown:
        valid = ", ".join(f"{notebook.path.name.split('_')[0]} ({notebook.key})" for notebook in notebooks)
        raise UsageError(f"no notebook {', '.join(map(repr, unknown))}; the notebooks are: {valid or 'none'}")
    return [notebook for notebook in notebooks if not wanted or any(named(notebook, t) for t in wanted)]


def parse_parameter_value(text: str, name: str = "NAME") -> Any:
    """A ``-p NAME VALUE`` value as Python: ``3``, ``0.5``, ``[1, 2]``, ``'text'``, and ``True``,
    ``False``, ``None`` in any case; anything else stays a string. (papermill's own ``-p`` keeps
    ``true`` or ``[1, 2]`` as strings: here a flag typed ``true`` means True.) Raises UsageError for a
    number that is not finite (``1e999``, ``inf``, ``nan``): no setting means that."""
    keywords = {"true": True, "false": False, "none": None}
    if text.strip().lower() in keywords:
        return keywords[text.strip().lower()]
    try:
        number = float(text)  # also reads "inf", "nan" and "1e999", which literal_eval does not refuse
    except ValueError:
        number = 0.0
    if not math.isfinite(number):
        raise UsageError(f"-p {name} {text}: reads as {number}, not a finite number; give one like 0.01")
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def check_parameters(notebook: CourseNotebook, profile: str, values: dict[str, Any]) -> None:
    """Refuse, before anything runs, values that the notebook's ``configure`` call would refuse.

    The call is replayed with what its arguments will hold in the notebook: ``profile`` for ``PROFILE``,
    the ``-p`` values, else the defaults (a call that also uses other names is left to the notebook).
    Raises UsageError saying why the notebook would stop at its ``configure`` cell.
    """
    if notebook.configure_call is None:
        return
    known: dict[str, Any] = {}
    for name, default in notebook.parameters.items():
        with contextlib.suppress(ValueError, SyntaxError):
            known[name] = profile if name.upper() == "PROFILE" else ast.literal_eval(default)
    known.update(values)

    def value(node: ast.expr) -> Any:
        return known[node.id] if isinstance(node, ast.Name) and node.id in known else ast.literal_eval(node)

    try:
        args = [value(node) for node in notebook.configure_call.args]
        keywords = {keyword.arg: value(keyword.value) for keyword in notebook.configure_call.keywords}
        profiles.configure(*args, **keywords)
    except profiles.ProfileError as error:
        raise UsageError(f"{notebook.key}: {error}") from None
    except (ValueError, SyntaxError):  # an argument that is not a parameter nor a literal
        return


@dataclass
class RunPlan:
    """Checked arguments: the notebooks, the concrete profile, and the ``-p`` values by notebook."""

    notebooks: list[CourseNotebook]
    profile: str
    parameters: dict[str, dict[str, Any]]  # {notebook key: {name as the notebook declares it: value}}


def plan_run(
    notebooks_dir: Path,
    profile: str = "auto",
    parameters: Sequence[tuple[str, Any]] = (),
    only: Iterable[str] = (),
    timeout_minutes: float | None = None,
) -> RunPlan:
    """Check every argument and resolve the profile (``auto`` once, here), before anything runs.

    A ``-p NAME`` goes to every selected notebook that declares ``NAME``, in any case (``-p epochs 3``
    sets ``EPOCHS``); a relative ``-p DATA_DIR`` is made absolute, as the kernels run in ``notebooks/``.
    Raises UsageError for any argument that is wrong, saying why (for an unknown name: what each declares).
    """
    try:
        concrete = profiles.resolve_profile(profile)
    except profiles.ProfileError as error:
        raise UsageError(str(error)) from None
    if timeout_minutes is not None and not timeout_minutes > 0:
        raise UsageError(f"--timeout must be a positive number of minutes, got {timeout_minutes}")
    notebooks = select_notebooks(find_notebooks(Path(notebooks_dir)), only)
    if not notebooks:
        raise UsageError(f"no numbered notebooks (NN_name.ipynb) in {notebooks_dir}")
    chosen: dict[str, dict[str, Any]] = {notebook.key: {} for notebook in notebooks}
    for name, value in parameters:
        if name.upper() in RUNNER_PARAMETERS:
            raise UsageError(f"-p {name}: {RUNNER_PARAMETERS[name.upper()]}")
        if name.upper() == "DATA_DIR" and value is not None:
            if not isinstance(value, str):
                raise UsageError(f"-p {name}: the path of a folder, got {value!r}")
            value = str(default_data_dir(value))  # absolute, from the folder the command runs in
        takers = [(n.key, p) for n in notebooks for p in n.parameters if p.upper() == name.upper()]
        if not takers:
            listed = "".join(
                f"\n  {n.key}: {', '.join(p for p in n.parameters if p.upper() not in RUNNER_PARAMETERS)}"
                for n in notebooks
            )
            raise UsageError(f"no notebook declares the parameter {name!r}; they declare:{listed}")
        for key, declared_name in takers:
            chosen[key][declared_name] = value
    for notebook in notebooks:
        check_parameters(notebook, concrete, chosen[notebook.key])
    return RunPlan(notebooks, concrete, chosen)


def check_datasets(plan: RunPlan) -> None:
    """Refuse, before anything runs, notebooks that need a dataset their data folder lacks.

    A missing ``<name>.npz`` is first made as the notebook would (:func:`load_dataset`). Raises
    UsageError, whole: each dataset missing, for which notebooks, where it looked, why, and the fix.
    """
    needed: dict[tuple[str, Path], list[str]] = {}
    for notebook in plan.notebooks:
        given = next((v for n, v in plan.parameters[notebook.key].items() if n.upper() == "DATA_DIR"), None)
        for name in notebook.datasets:
            needed.setdefault((name, default_data_dir(given)), []).append(notebook.key)
    problems = []
    for (name, folder), users in needed.items():
        if name in DATASET_NAMES and not (folder / f"{name}.npz").is_file():
            try:
                load_dataset(name, folder)
            except DatasetError as error:
                problems.append(f"--- {name}.npz, for {', '.join(users)} ---\n{error}")
    if problems:
        raise UsageError(
            "the notebooks need datasets that are not there; nothing was run.\n\n"
            + "\n\n".join(problems)
            + f"\n\nThe data folder is -p DATA_DIR if given, else ${DATA_ENV} (now "
            f"{os.environ.get(DATA_ENV) or 'not set'}), else data/ in the repository; "
            'see "Running offline" in README.md.'
        )


@dataclass
class NotebookResult:
    """How one notebook ended. ``error`` (None if it did not stop) holds ``cell_index`` (in the notebook
    as written; None before the first cell), ``execution_count``, ``source`` (the cell's first line),
    ``ename`` and ``evalue``; ``files`` are relative to the run folder."""

    notebook: str
    status: str = NOT_RUN  # also in the summary written before each notebook, for those not reached yet
    seconds: float | None = None
    error: dict[str, Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)

    def stopped_at(self, limit: int) -> str:
        """Where it stopped: ``cell index 4 (In [5]): `its first line``` (cut to ``limit``)."""
        error = self.error
        if error is None or error["cell_index"] is None:
            return "before the first cell"
        count = f" (In [{error['execution_count']}])" if error["execution_count"] else ""
        return f"cell index {error['cell_index']}{count}: `{shorten(error['source'], limit)}`"


def stop_status(stop: BaseException, timeout_minutes: float | None) -> tuple[str, str, str]:
    """The status, name and message for what stopped a notebook: the runner's one error mapping."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if isinstance(stop, StopSignal):
        return INTERRUPTED, signal.Signals(stop.signum).name, f"stopped by {stop}"
    if isinstance(stop, KeyboardInterrupt):
        return INTERRUPTED, "KeyboardInterrupt", "stopped by Ctrl-C"
    if isinstance(stop, CellTimeoutError):
        return TIMEOUT, "Timeout", f"the notebook ran longer than --timeout {timeout_minutes:g} min"
    if isinstance(stop, CellExecutionError):  # an exception in the notebook's own code
        return FAILED, stop.ename, stop.evalue
    if isinstance(stop, DeadKernelError):
        return FAILED, "DeadKernelError", f"{stop} (out of memory? killed?)"
    return FAILED, type(stop).__name__, str(stop)  # e.g. a kernel that does not start


def execute_notebook(
    path: Path,
    *,
    parameters: dict[str, Any] | None = None,
    environment: dict[str, str] | None = None,
    timeout_minutes: float | None = None,
    progress: str = "lines",
    log_output: bool = False,
) -> tuple[Any, NotebookResult]:
    """Execute the notebook ``path`` top to bottom in a fresh kernel of this Python; write nothing.

    The kernel runs in the notebook's folder and is shut down also after a failure, past the deadline
    (``timeout_minutes`` for the whole notebook) or a stop signal (caught: ``interrupted``).
    ``parameters`` go in a cell tagged ``injected-parameters`` after the ``parameters`` one, as papermill
    does (None: as written); ``environment`` is added to this process's. Returns the executed notebook
    (nbformat) and how it ended.
    """
    import nbformat
    import zmq
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from tqdm import tqdm

    notebook = nbformat.read(str(path), as_version=4)
    for cell in notebook.cells:  # a failed run must not show old outputs below the failure
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    injected = len(notebook.cells) + 1  # the injected cell's index; past the end when there is none
    if parameters is not None:
        tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
        injected = next((i + 1 for i, cell_tags in enumerate(tags) if "parameters" in cell_tags), 0)
        # Strings in double quotes, as papermill writes them; everything else as Python writes it.
        values = {name: json.dumps(v) if isinstance(v, str) else repr(v) for name, v in parameters.items()}
        source = "# Parameters" + "".join(f"\n{name} = {value}" for name, value in values.items())
        tagged = {"tags": ["injected-parameters"]}
        notebook.cells.insert(injected, nbformat.v4.new_code_cell(source, metadata=tagged))
    to_run = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" and cell.source.strip()]
    own = [i for i in to_run if i != injected]  # the notebook's own cells, reported by their index as written

    class Client(NotebookClient):
        def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int) -> Any:
            if log_output and msg["msg_type"] == "stream":
                echo = sys.stderr if msg["content"]["name"] == "stderr" else sys.stdout
                print(msg["content"]["text"], end="", file=echo, flush=True)
            return super().output(outs, msg, display_id, cell_index)

    # No kernelspec folders to search: jupyter_client starts ipykernel's own spec, which runs
    # sys.executable, not a "python3" spec that another environment installed. Encrypted
    # (CurveZMQ) when possible: nobody else on the machine can read or inject code.
    kernel = AsyncKernelManager(
        kernel_name="python3",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[]),
        transport_encryption="auto" if zmq.has("curve") else "disabled",
    )
    deadline = time.monotonic() + 60 * (timeout_minutes or 0)
    client = Client(
        notebook,
        km=kernel,
        # Each cell gets what is left of the notebook's time (nbclient reads 0 as "no limit").
        timeout_func=(lambda cell: max(deadline - time.monotonic(), 0.01)) if timeout_minutes else None,
        record_timing=False,  # no timestamps in the cells' metadata
        shutdown_kernel="immediate",  # after a timeout or Ctrl-C the kernel may still be busy
    )
    result, index = NotebookResult(path.stem, OK), None
    bar = tqdm(total=len(to_run), desc=path.stem, unit="cell", disable=progress != "bar", file=sys.stderr)
    start = time.perf_counter()
    try:
        kernel_env = {**os.environ, **(environment or {})}
        with bar, client.setup_kernel(cwd=str(path.parent), env=kernel_env, cleanup_kc=True):
            info = client.wait_for_reply(client.kc.kernel_info())
            notebook.metadata.language_info = info["content"]["language_info"]
            for count, index in enumerate(to_run, start=1):
                if progress == "lines" and index in own:
                    cell = f"cell {own.index(index) + 1}/{len(own)} (index {index - (index > injected)})"
                    print(f"    {cell}: {shorten(first_line(notebook.cells[index].source), 70)}", flush=True)
                client.execute_cell(notebook.cells[index], index, execution_count=count)
                bar.update()
    except (Exception, KeyboardInterrupt) as stop:
        result.status, ename, evalue = stop_status(stop, timeout_minutes)
        cell = notebook.cells[index] if index is not None else {}
        result.error = {
            "cell_index": None if index is None else index - (index > injected),
            "execution_count": cell.get("execution_count"),
            "source": first_line(cell.get("source", "")),
            "ename": ename,
            "evalue": shorten(str(evalue).strip(), MESSAGE_LIMIT),  # the notebook keeps the traceback
        }
    result.seconds = round(time.perf_counter() - start, 2)
    return notebook, result


def first_line(source: str) -> str:
    """The first non-blank line of a cell's source."""
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class RunReport:
    """A batch execution of the course: where it went, with what, and how each notebook ended."""

    run_dir: Path
    profile: str
    requested_profile: str
    parameters: dict[str, Any]
    results: list[NotebookResult]
    started: datetime
    finished: datetime | None = None
    interrupted: str | None = None  # what stopped the run between two notebooks: KeyboardInterrupt, SIGTERM
    edition: str | None = None  # the edition that ran ("en", "zh"); None: notebooks of another folder
    notebooks_dir: Path | None = None
    out_of_step: list[str] = field(default_factory=list)  # translations `outputs` could not sync

    HEADER = ("notebook", "status", "minutes", "test accuracy", "parameters", "device", "profile")
    ALIGN = "llrrrll"

    @property
    def exit_code(self) -> int:
        """0 when every notebook succeeded (and, for ``outputs``, every translation was synced); 128 + the
        signal's number when one stopped the run (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP); else 1."""
        stops = [r.error and r.error["ename"] for r in self.results if r.status == INTERRUPTED]
        if stop := self.interrupted or next(iter(stops), None):
            return EXIT_SIGNAL + getattr(signal.Signals, stop, signal.SIGINT)  # KeyboardInterrupt: SIGINT
        ok = all(result.status == OK for result in self.results) and not self.out_of_step
        return EXIT_OK if ok else EXIT_FAILED

    def edition_label(self) -> str:
        """Which notebooks ran: ``zh (Chinese, notebooks/zh)``, or ``none (notebooks of DIR)``."""
        folder = display_path(self.notebooks_dir, outside="absolute") if self.notebooks_dir else "?"
        if self.edition is None:
            return f"none (notebooks of {folder})"
        return f"{self.edition} ({LANGUAGES[self.edition]}, {folder})"

    def to_dict(self) -> dict[str, Any]:
        notebooks = [asdict(r) | {"minutes": r.seconds and round(r.seconds / 60, 2)} for r in self.results]
        return {
            "run": self.run_dir.name,
            "edition": self.edition,
            "notebooks_dir": self.notebooks_dir and display_path(self.notebooks_dir, outside="absolute"),
            "profile": self.profile,
            "requested_profile": self.requested_profile,
            "parameters": self.parameters,
            "started": self.started.isoformat(timespec="seconds"),
            "finished": self.finished and self.finished.isoformat(timespec="seconds"),
            "exit_code": self.exit_code,
            "environment": describe_environment(),  # what the timings were taken on
            "notebooks": notebooks,
            "out_of_step": self.out_of_step,
        }

    def rows(self) -> list[list[str]]:
        """The summary table: a row of text per notebook, blank where a value is missing."""
        rows = []
        for result in self.results:
            metrics = result.metrics or {}
            # The headline result, named by its model when the notebook compares several ("row LSTM").
            headline = metrics.get("headline") if isinstance(metrics.get("headline"), dict) else {}
            accuracy = headline.get("accuracy", metrics.get("test_accuracy"))  # a fraction
            model, count = headline.get("model", metrics.get("headline_model")), metrics.get("parameters")
            minutes = "" if result.seconds is None else f"{result.seconds / 60:.2f}"
            accuracy = f"{100 * accuracy:.2f} %" if isinstance(accuracy, (int, float)) else ""
            accuracy = f"{model} {accuracy}" if model and accuracy else accuracy
            count = f"{count:,}" if isinstance(count, int) else ""
            device, profile = str(metrics.get("device", "")), str(metrics.get("profile", ""))
            rows.append([result.notebook, result.status, minutes, accuracy, count, device, profile])
        return rows

    def overrides(self) -> list[str]:
        """A line per notebook that ran with ``-p`` values: ``02_lenet5_mnist ran with -p EPOCHS=2``."""
        return [
            f"{r.notebook} ran with -p "
            + ", ".join(f"{name}={value!r}" for name, value in r.parameters.items())
            for r in self.results
            if r.parameters and r.status != NOT_RUN
        ]

    def to_text(self) -> str:
        """The summary table as aligned plain text, for the terminal, then the ``-p`` values used."""
        return "\n".join([format_table(self.rows(), self.HEADER, align=self.ALIGN), *self.overrides()])

    def to_markdown(self) -> str:
        """The summary as Markdown: the table, then each notebook's error and other metrics."""
        from_auto = f" (from `{self.requested_profile}`)" if self.requested_profile != self.profile else ""
        given = f", parameters `{self.parameters}`" if self.parameters else ""
        edition = f"Edition {self.edition_label()}; profile"
        lines = [
            f"# Course run {self.run_dir.name}\n",
            f"{edition} **{self.profile}**{from_auto}{given}; started {self.started:%Y-%m-%d %H:%M:%S}.\n",
            "| " + " | ".join(self.HEADER) + " |",
            "| " + " | ".join("---:" if side == "r" else "---" for side in self.ALIGN) + " |",
        ]
        for row, result in zip(self.rows(), self.results):
            row[0] = f"[{row[0]}]({result.files['html']})" if "html" in result.files else row[0]
            lines.append("| " + " | ".join(cell or " " for cell in row) + " |")
        lines += [f"\n{line}" for line in self.overrides()]
        for result in self.results:
            if error := result.error:
                message = f"```\n{error['ename']}: {error['evalue']}\n```"
                lines.append(f"\n**{result.notebook}** stopped at {result.stopped_at(100)}\n\n{message}")
            listed = [
                f"{name} = {value:.4g}" if isinstance(value, float) else f"{name} = {value}"
                for name, value in (result.metrics or {}).items()
                if isinstance(value, (int, float, str)) and name not in ("notebook", "written")
            ]
            if listed:
                lines.append(f"\n{result.notebook} metrics: {', '.join(listed)}")
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        """Write ``summary.json`` and ``summary.md`` into the run folder."""
        atomic_write(self.run_dir / "summary.json", json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        atomic_write(self.run_dir / "summary.md", self.to_markdown())


def new_run_dir(runs_dir: Path, profile: str, now: datetime) -> Path:
    """Create ``runs_dir/<YYYYmmdd-HHMMSS>-<profile>`` (``-2``, ``-3``, … if it exists)."""
    name, attempt = f"{now:%Y%m%d-%H%M%S}-{profile}", 1
    while True:
        folder = runs_dir / (name if attempt == 1 else f"{name}-{attempt}")
        with contextlib.suppress(FileExistsError):
            folder.mkdir(parents=True)
            return folder
        attempt += 1


def output_folder(target_dir: Path | None, in_place: bool) -> tuple[Path, str]:
    """Where a run writes (absolute, from the folder the command runs in), and which setting chose it.

    ``run``: ``--runs-dir``, else ``$COURSE_OUTPUT_DIR/runs``, else ``runs/`` in the repository;
    ``outputs``: ``--output-dir``, else ``$COURSE_OUTPUT_DIR``, else ``outputs/`` in the repository.
    Raises UsageError when the folder cannot be created or written in (a file in the way, no permission).
    """
    option, env = "--output-dir" if in_place else "--runs-dir", profiles.OUTPUT_ENV
    if target_dir is not None:
        folder, source = Path(target_dir), f"from {option}"
    elif os.environ.get(env):
        folder, source = Path(os.environ[env], "" if in_place else "runs"), f"from {env}={os.environ[env]}"
    else:
        folder, source = project_root() / ("outputs" if in_place else "runs"), "the default"
    folder = folder.expanduser().absolute()
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problem = "is not a folder" if not existing.is_dir() else "is not writable (permissions)"
        fix = f"choose another with {option} or {env}"
        raise UsageError(f"cannot write into {folder} ({source}): {existing} {problem}; {fix}")
    return folder, source


def notebooks_folder(
    edition: str | None, notebooks_dir: Path | None, in_place: bool
) -> tuple[Path, str | None]:
    """The folder whose notebooks run, and the edition it holds (None: a folder of no edition).

    ``edition`` names an edition's folder (:data:`~course_utils.editions.EDITIONS`), ``notebooks_dir``
    any folder; with neither, the English edition. Raises UsageError when both are given, for an
    unknown edition, and for ``outputs`` (``in_place``) of a translated edition: its stored outputs are
    copies of the English ones, never executed.
    """
    if edition is not None and notebooks_dir is not None:
        raise UsageError(
            f"--edition {edition} and --notebooks-dir {notebooks_dir} both choose the notebooks: give one"
        )
    try:
        folder = Path(notebooks_dir) if notebooks_dir is not None else edition_dir(edition or ENGLISH)
    except EditionError as error:
        raise UsageError(str(error)) from None
    edition = edition or edition_of(folder)
    if in_place and edition not in (None, ENGLISH):
        english = EDITIONS[ENGLISH]
        raise UsageError(
            f"the {LANGUAGES[edition]} notebooks ({EDITIONS[edition]}/) are not executed: their code cells "
            f"and outputs are copied from the English run. Run `python -m course_utils outputs` ({english}/; "
            f"it brings {EDITIONS[edition]}/ in step too), or `python -m course_utils editions sync` after "
            "changing English code by hand"
        )
    return folder, edition


def sync_translations(english_path: Path) -> list[str]:
    """After ``outputs`` rewrote ``english_path``: copy its code cells and outputs into each translation
    of it that exists (:func:`~course_utils.editions.sync_edition`), saying what was done.

    Returns:
        A sentence for each translation that could not be synced (its cells differ from the English
        ones: a person must resolve that); empty when all are in step now.
    """
    problems = []
    for edition in translated_editions():
        translated = counterpart(english_path, edition)
        if not translated.is_file():
            continue
        shown = display_path(translated, outside="absolute")
        try:
            changed = sync_edition(english_path, translated)
        except EditionError as error:
            print(f"    NOT SYNCED: {error}".replace("\n", "\n      "), flush=True)
            problems.append(f"{shown} is out of step with {display_path(english_path, outside='absolute')}")
            continue
        done = "code cells and outputs copied into it" if changed else "in step already"
        print(f"    {LANGUAGES[edition]} edition: {shown}, {done}", flush=True)
    return problems


def run_notebooks(
    notebooks_dir: Path | None = None,
    target_dir: Path | None = None,
    *,
    edition: str | None = None,
    in_place: bool = False,
    profile: str = "auto",
    parameters: Sequence[tuple[str, Any]] = (),
    only: Iterable[str] = (),
    timeout_minutes: float | None = None,
    keep_going: bool = False,
    progress: str = "auto",
    log_output: bool = False,
) -> RunReport:
    """Check everything (UsageError), then execute the notebooks in order and summarise.

    The notebooks are those of ``notebooks_dir`` or of ``edition`` (not both; neither: English, see
    :func:`notebooks_folder`). ``run``: each notebook gets ``PROFILE``, ``OUTPUT_DIR`` and its ``-p``
    values injected and is kept, with its HTML, in a new folder ``<YYYYmmdd-HHMMSS>-<profile>/`` of
    ``target_dir``, beside the metrics it writes (04 finds there the checkpoint 03 wrote) and the
    summary (written before each notebook and at the end). ``in_place`` (``outputs``): the notebooks
    run as written and one that ran to the end is written back (see :func:`keep`), then copied into
    its translations (:func:`sync_translations`). Every kernel gets ``COURSE_PROFILE``, resolved once.
    """
    notebooks_dir, edition = notebooks_folder(edition, notebooks_dir, in_place)
    if in_place and parameters:
        raise UsageError("the stored outputs come from the notebooks as written: no -p parameters")
    plan = plan_run(notebooks_dir, profile, parameters, only, timeout_minutes)
    target_dir, source = output_folder(target_dir, in_place)
    check_datasets(plan)
    started = datetime.now()
    output_dir = target_dir if in_place else new_run_dir(target_dir, plan.profile, started)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = [NotebookResult(n.key, parameters=plan.parameters[n.key]) for n in plan.notebooks]
    given = {name.upper(): value for name, value in parameters}
    report = RunReport(
        output_dir,
        plan.profile,
        profile,
        given,
        results,
        started,
        edition=edition,
        notebooks_dir=notebooks_dir,
    )
    # Text progress bars (a widget does not render in a saved notebook) and a headless Matplotlib.
    environment = {"COURSE_PROGRESS": "text", "MPLBACKEND": "Agg", profiles.PROFILE_ENV: plan.profile}
    environment[profiles.OUTPUT_ENV] = str(output_dir)
    if os.environ.get(DATA_ENV, "").strip():  # the kernels run in the notebooks' folder, not here
        environment[DATA_ENV] = str(default_data_dir())
    runner = {"PROFILE": plan.profile, "OUTPUT_DIR": str(output_dir)}
    from_auto = f" (from {profile})" if profile != plan.profile else ""
    into = f"{'in place, ' * in_place}into {display_path(output_dir, outside='absolute')} ({source})"
    edition_text = f"of edition {report.edition_label()}"
    print(f"Running {len(results)} notebook(s) {edition_text} with profile {plan.profile}{from_auto} {into}")
    print("on " + ", ".join(f"{name} {value}" for name, value in describe_environment().items()), flush=True)
    progress = ("bar" if sys.stderr.isatty() else "lines") if progress == "auto" else progress
    running = None
    try:
        for position, (notebook, result) in enumerate(zip(plan.notebooks, results), start=1):
            if not in_place:
                report.write()
            print(f"[{position}/{len(results)}] {notebook.key} ({plan.profile}) ...", flush=True)
            # The runner's own parameters, for a notebook that declares them, then the -p values.
            declared = {name: runner[name.upper()] for name in notebook.parameters if name.upper() in runner}
            # configure() counts those that are training settings of the notebook as changed.
            overridden = ",".join(name for name, value in result.parameters.items() if value is not None)
            running = result
            executed, outcome = execute_notebook(
                notebook.path,
                parameters=None if in_place else declared | result.parameters,
                environment=environment | {profiles.OVERRIDDEN_ENV: overridden},
                timeout_minutes=timeout_minutes,
                progress=progress,
                log_output=log_output,
            )
            result.status, result.seconds, result.error = outcome.status, outcome.seconds, outcome.error
            keep(notebook, result, executed, output_dir, in_place)
            if in_place and result.status == OK:
                report.out_of_step += sync_translations(notebook.path)
            if result.status == INTERRUPTED or (result.status != OK and not keep_going):
                break
    except KeyboardInterrupt as stop:  # between two notebooks, or while one was being started or kept
        report.interrupted = stop_status(stop, timeout_minutes)[1]
        if running is not None and running.status == NOT_RUN:  # it had started: never "not run"
            running.status = INTERRUPTED
    report.finished = datetime.now()
    print(f"\nEdition {report.edition_label()}, profile {plan.profile}:\n{report.to_text()}")
    for problem in report.out_of_step:
        print(f"NOT IN STEP: {problem}; make their cells match, then `python -m course_utils editions sync`")
    if not in_place:
        report.write()
        print(f"\nSummary: {display_path(output_dir / 'summary.md', outside='absolute')}")
    sys.stdout.flush()
    return report


def keep(
    notebook: CourseNotebook, result: NotebookResult, executed: Any, output_dir: Path, in_place: bool
) -> None:
    """Print how a notebook ended, write it where :func:`run_notebooks` says, and read its metrics.

    In place, one that ran to the end is written back; one that stopped is left unchanged (so are its
    old metrics) and its execution kept as ``failed-<name>.ipynb`` in ``output_dir``.
    """
    import nbformat
    from nbconvert import HTMLExporter

    took = f"{result.seconds:.1f} s ({result.seconds / 60:.2f} min)"
    if result.status == OK:
        print(f"    ok in {took}", flush=True)
    else:
        print(f"    {result.status.upper()} after {took}: {result.notebook}, {result.stopped_at(80)}")
        message = result.error["evalue"].replace("\n", "\n      ")
        print(f"    {result.error['ename']}: {message}", flush=True)
    text = nbformat.writes(executed) + "\n"
    failed = output_dir / f"failed-{notebook.key}.ipynb"
    if in_place and result.status != OK:
        atomic_write(failed, text)
        unchanged, kept = (display_path(path, outside="absolute") for path in (notebook.path, failed))
        print(f"    {unchanged} is unchanged; the failed execution is in {kept}")
        return
    if in_place:
        atomic_write(notebook.path, text)
        failed.unlink(missing_ok=True)
    else:
        saved = atomic_write(output_dir / f"{notebook.key}.ipynb", text)
        result.files["notebook"] = saved.name
        try:
            html, _ = HTMLExporter().from_notebook_node(executed)
            result.files["html"] = atomic_write(saved.with_suffix(".html"), html).name
        except Exception as error:  # the notebook stays readable in Jupyter; say why there is no HTML
            print(f"    (no HTML export: {type(error).__name__}: {error})")
        if result.status != OK:
            traceback = " (full traceback)" if result.status == FAILED else ""
            print(f"    The partly executed notebook{traceback}: {display_path(saved, outside='absolute')}")
    with contextlib.suppress(OSError, ValueError):
        result.metrics = json.loads((output_dir / notebook.key / profiles.METRICS_FILE).read_text())
    if result.status == OK and result.metrics is None:
        print(f"    (it wrote no {notebook.key}/{profiles.METRICS_FILE})")
