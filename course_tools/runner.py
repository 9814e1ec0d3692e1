"""Run the course's notebooks with papermill, into a new run folder (``make course``) or in place
(``make outputs``). The arguments, ``-p`` values, the folder written into and the datasets are checked
before the first notebook starts; each then runs in a fresh kernel of this Python, in its own folder."""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import papermill
import zmq
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient.exceptions import CellTimeoutError
from nbconvert import HTMLExporter
from nbformat.v4 import new_markdown_cell
from traitlets import default
from traitlets.config import Config

from course_tools import editions
from course_utils import settings
from course_utils.data import DatasetError, default_data_dir, load_dataset
from course_utils.environment import atomic_write, describe_environment, display_path, project_root
from course_utils.tables import format_table

OK, FAILED, TIMEOUT, INTERRUPTED = "ok", "failed", "timeout", "interrupted"
NOT_RUN, NOT_SAVED, NOT_SYNCED = "not run", "not saved", "not synced"
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C; `timeout`, kill; the terminal closed
#: What the runner injects itself, and the option to use instead of a ``-p`` for it.
RUNNER_PARAMETERS = {"PROFILE": "--profile", "OUTPUT_DIR": "--runs-dir (notebooks write into the run folder)"}


class UsageError(Exception):
    """A run that cannot start (exit status 2); the message says why and what to do."""


def signal_name(stop: KeyboardInterrupt) -> str:
    """The signal that raised ``stop`` (see :func:`stop_on_signals`), or ``SIGINT`` for a plain Ctrl-C."""
    return str(stop.args[0]) if stop.args else "SIGINT"


@contextlib.contextmanager
def stop_on_signals():
    """Within: Ctrl-C, SIGTERM and SIGHUP raise ``KeyboardInterrupt("SIGTERM")`` (its name) unless ignored at
    the start (``nohup``); after the first, all three are ignored: what ran is kept whole, with its status."""

    def stop(signum: int, frame: Any) -> None:
        for each in SIGNALS:
            signal.signal(each, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum, handler in previous.items():
        if handler in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(signum, stop)
    try:
        yield
    finally:  # after a signal, all stay ignored: the process ends with its status
        for signum in (signum for signum in SIGNALS if signal.getsignal(signum) is stop):
            signal.signal(signum, previous[signum])


def parse_value(text: str) -> Any:
    """A ``-p`` value read as Python (``3``, ``0.5``, ``[1, 2]``, ``'text'``; ``true``, ``false``, ``none`` in
    any case), else the text itself. Whether the notebook can use it is for ``settings.check_parameters``."""
    text = text.strip()  # the command line pads "-1e-3" as "-1e-3 "
    text = text.capitalize() if text.lower() in ("true", "false", "none") else text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def prepare(paths: list[Path], profile: str, values: list[tuple[str, Any]]) -> tuple[str, dict, dict]:
    """Resolve the profile (``auto`` once, here) and check the ``-p`` values, each for the notebooks that
    declare it (in any case). Returns the profile, ``{path: names declared}``, ``{path: {name: value}}``."""
    concrete = settings.resolve_profile(profile)
    declared = {path: list(papermill.inspect_notebook(path)) for path in paths}
    given: dict[Path, dict[str, Any]] = {path: {} for path in paths}
    for name, value in values:
        if name.upper() in RUNNER_PARAMETERS:
            raise UsageError(f"-p {name}: the runner sets it; use {RUNNER_PARAMETERS[name.upper()]}")
        if name.upper() == "DATA_DIR" and isinstance(value, str):
            value = str(default_data_dir(value))  # absolute: the notebooks run in their own folder
        takers = [(path, n) for path, names in declared.items() for n in names if n.upper() == name.upper()]
        if not takers:
            listed = "".join(f"\n  {path.stem}: {', '.join(names)}" for path, names in declared.items())
            raise UsageError(f"-p {name}: no notebook declares it; they declare:{listed}")
        for path, declared_name in takers:
            given[path][declared_name] = value
    try:
        for path in (path for path in paths if given[path] and path.stem in settings.RECIPES):
            settings.check_parameters(path.stem, concrete, given[path])
    except settings.SettingsError as error:
        raise UsageError(f"{path.stem}: {error}") from None
    return concrete, declared, given


def check_datasets(paths: list[Path], data_dir: Path) -> None:
    """Load each dataset the notebooks need (``RECIPES[notebook]["datasets"]``), which downloads a missing
    file when it can and validates it. Raises UsageError listing every failure at once."""
    users: dict[str, list[str]] = {}
    for path in paths:
        for name in settings.RECIPES.get(path.stem, {}).get("datasets", []):
            users.setdefault(name, []).append(path.stem)
    problems = []
    for name, notebooks in users.items():
        try:
            load_dataset(name, data_dir)
        except DatasetError as error:
            problems.append(f"- {name}.npz, for {', '.join(notebooks)}: {error}")
    if problems:
        now = os.environ.get("COURSE_DATA_DIR") or "not set"
        raise UsageError(
            "the notebooks need datasets that cannot be loaded; nothing ran.\n" + "\n".join(problems) + "\n"
            f"The data folder, {data_dir}, is -p DATA_DIR if given, else $COURSE_DATA_DIR (now {now}), else "
            'data/ in the repository: see "Running offline" in README.md.'
        )


def output_folder(options: Any, name: str) -> tuple[Path, str]:
    """Make the folder a run writes into (``os.access`` would not do: root passes it in ``/proc``), and say
    which setting chose it: ``outputs``, the person's outputs folder; ``run``, a new folder ``name`` (-2, -3,
    … when taken) in ``--runs-dir``, ``$COURSE_OUTPUT_DIR/runs`` or ``runs/``. UsageError if it cannot."""
    env = os.environ.get("COURSE_OUTPUT_DIR", "").strip()
    parent = Path(options.runs_dir or Path(env or project_root()) / "runs").absolute()
    source = f"from {'--runs-dir' if options.runs_dir else f'COURSE_OUTPUT_DIR={env}' if env else 'default'}"
    if options.command == "outputs":  # made there, or given: made here if need be
        parent, source, name = settings.output_root(), "your outputs folder", ""
    for number in range(1, 1000):
        folder = parent / (f"{name}-{number}" if number > 1 else name)
        try:
            folder.mkdir(parents=True, exist_ok=not name)
            return folder, source
        except FileExistsError:  # a run folder of the same second
            continue
        except OSError as error:
            raise UsageError(f"cannot write into {parent} ({source}): {error}") from None
    raise UsageError(f"{parent}: {name} and the 998 run folders after it exist; use --runs-dir")


class ThisPython(AsyncKernelManager):
    """A kernel of the Python that runs the runner, never a "python3" kernelspec of another environment."""

    @default("kernel_spec_manager")
    def _own_spec_only(self) -> KernelSpecManager:
        return KernelSpecManager(kernel_dirs=[])  # "python3" is then ipykernel's spec of sys.executable


def execute(path: Path, output: Path, parameters: dict, options: Any) -> tuple[str, dict | None]:
    """Execute ``path`` into ``output`` (saved after each cell) with ``parameters`` injected, in a fresh
    kernel in the notebook's folder, shut down whatever happens; ``options.timeout`` (minutes) limits the
    whole notebook. Returns the status and, unless ok, the cell it stopped in and the error; one stopped by a
    signal or the timeout says so in a first cell (papermill marks an error in a cell its own way)."""
    deadline = time.monotonic() + 60 * (options.timeout or 0)
    try:
        papermill.execute_notebook(
            path, output, parameters=parameters, cwd=path.parent, kernel_name="python3",
            progress_bar=sys.stderr.isatty() and {"desc": path.stem},
            stdout_file=sys.stdout if options.log_output else None,
            stderr_file=sys.stderr if options.log_output else None,
            # nbclient's: the kernel; its keys, here (not in /tmp, where a killed runner leaves them), and
            # CurveZMQ (no other user of a shared machine reads or sends its messages); its time.
            kernel_manager_class=ThisPython,
            config=Config(KernelManager={"connection_file": str(output.with_suffix(".kernel.json")),
                                         "transport_encryption": "auto" if zmq.has("curve") else "disabled"}),
            timeout_func=(lambda cell: max(deadline - time.monotonic(), 0.01)) if options.timeout else None,
            shutdown_kernel="immediate",  # after a timeout or a signal the kernel may still be busy
        )  # fmt: skip
        return OK, None
    except papermill.PapermillExecutionError as error:  # the notebook's code raised; papermill marked it
        status, ename, evalue = FAILED, error.ename, error.evalue
    except CellTimeoutError:
        status, ename, evalue = TIMEOUT, "Timeout", f"it ran longer than --timeout {options.timeout:g} min"
    except KeyboardInterrupt as stop:
        status, ename = INTERRUPTED, signal_name(stop)
        evalue = f"stopped by {'Ctrl-C' if ename == 'SIGINT' else ename}"
    except Exception as error:  # a full disk (it saves after each cell); a kernel that died or never began
        status, ename, evalue = FAILED, type(error).__name__, str(error)
    where = "the start, before any cell"
    with contextlib.suppress(editions.EditionError, IndexError, OSError):  # the last cell papermill started
        notebook = editions.read_notebook(output)
        cell = [c for c in notebook.cells if c.metadata.get("papermill", {}).get("start_time")][-1]
        where = f"In [{cell.execution_count or ' '}] `{cell.source.strip().splitlines()[0][:80]}`"
        if status != FAILED:  # papermill marks an error in a cell: the rest is marked here, for the HTML too
            notebook.cells.insert(0, new_markdown_cell(f"**{status.upper()}** at {where}: {ename}: {evalue}"))
            editions.write_notebook(output, notebook)
    return status, {"cell": where, "ename": ename, "evalue": evalue}


@dataclass
class Result:
    """How one notebook ended. ``error``: the ``cell`` it stopped in, ``ename`` and ``evalue``."""

    notebook: str
    parameters: dict[str, Any]  # the -p values it got
    status: str = NOT_RUN
    seconds: float | None = None
    error: dict[str, str] | None = None
    metrics: dict[str, Any] | None = None


@dataclass
class Summary:
    """A batch run: with what, where (``folder``: the run folder; None in place), how each notebook ended."""

    results: list[Result]
    profile: str
    requested_profile: str
    edition: str | None
    folder: Path | None = None
    started: datetime = field(default_factory=datetime.now)
    stopped: str | None = None  # the signal that stopped the run outside a notebook
    environment: dict[str, str] = field(default_factory=describe_environment)  # where times were taken

    def exit_code(self) -> int:
        """0: every notebook ok; 128 + the signal's number when one stopped the run; else 1."""
        stop = self.stopped or next((r.error["ename"] for r in self.results if r.status == INTERRUPTED), None)
        return 128 + signal.Signals[stop] if stop else int(any(r.status != OK for r in self.results))

    def table(self) -> str:
        """A row per notebook (its accuracy named by its model: ``row LSTM 98.58 %``), then the -p values."""
        rows, notes = [], []
        for r in self.results:
            metrics, minutes = r.metrics or {}, "" if r.seconds is None else f"{r.seconds / 60:.2f}"
            accuracy, count = metrics.get("test_accuracy"), metrics.get("parameters")
            accuracy = f"{100 * accuracy:.2f} %" if isinstance(accuracy, (int, float)) else ""
            accuracy = f"{metrics['model']} {accuracy}" if accuracy and metrics.get("model") else accuracy
            count = f"{count:,}" if isinstance(count, int) else ""
            device, profile = metrics.get("device", ""), metrics.get("profile", "")
            rows.append([r.notebook, r.status, minutes, accuracy, count, device, profile])
            given = ", ".join(f"{name}={value!r}" for name, value in r.parameters.items())
            notes += [f"{r.notebook} ran with -p {given}"] if given and r.status != NOT_RUN else []
        header = ("notebook", "status", "minutes", "test accuracy", "parameters", "device", "profile")
        return "\n".join([format_table(rows, header, align="llrrrll"), *notes])

    def write(self) -> None:
        """Write ``summary.json`` and ``summary.md``: the table, why each notebook stopped (or why not)."""
        record = asdict(self) | {"folder": self.folder.name, "exit_code": self.exit_code()}
        asked = f" (from `{self.requested_profile}`)" if self.requested_profile != self.profile else ""
        text = f"# Course run {self.folder.name}\n\nEdition {self.edition}, profile **{self.profile}**{asked}"
        text += f": each notebook ran into `<notebook>.ipynb` and `.html` here.\n\n```\n{self.table()}\n```\n"
        text += "\nOn " + ", ".join(f"{name} {value}" for name, value in self.environment.items()) + ".\n"
        for r in self.results:
            if error := r.error:
                text += f"\n**{r.notebook}**, {r.status}, at {error['cell']}:\n\n```\n{error['ename']}: "
                text += f"{error['evalue']}\n```\n"
        try:
            atomic_write(self.folder / "summary.json", json.dumps(record, indent=2, default=str) + "\n")
            atomic_write(self.folder / "summary.md", text)
        except OSError as error:
            print(f"    The summary was not saved: {error}")


def run(paths: list[Path], options: Any) -> int:
    """Check everything, then execute ``paths`` in order, as ``options`` (the command line) say; returns the
    exit status. ``run``: each notebook, with its HTML, goes into a new run folder, where it writes its
    metrics (it gets ``OUTPUT_DIR``) beside the summary. ``outputs``: each is written back in place."""
    values = [(name, parse_value(text)) for name, text in options.parameter]
    concrete, declared, given = prepare(paths, options.profile, values)
    data_dir = default_data_dir(next((value for name, value in values if name.upper() == "DATA_DIR"), None))
    check_datasets(paths, data_dir)
    results, in_place = [Result(path.stem, given[path]) for path in paths], options.command == "outputs"
    summary = Summary(results, concrete, options.profile, options.edition)
    folder, source = output_folder(options, f"{summary.started:%Y%m%d-%H%M%S}-{concrete}")
    ours = {"PROFILE": concrete}  # in place, the notebooks run as written but for the profile
    if not in_place:
        summary.folder = folder
        ours |= {"OUTPUT_DIR": str(folder), "DATA_DIR": str(data_dir)}
    os.environ.update(COURSE_PROGRESS="text", MPLBACKEND="Agg")  # for the kernels: no widgets, no windows
    logging.getLogger("papermill").setLevel(logging.CRITICAL)  # the runner reports every outcome itself
    asked = f" (from {options.profile})" if options.profile != concrete else ""
    print(f"Running {len(paths)} notebook(s) of edition {options.edition}, profile {concrete}{asked},")
    print(f"{'in place; failed executions in' if in_place else 'into'} {display_path(folder)} ({source})")
    try:
        for number, (path, result) in enumerate(zip(paths, results), start=1):
            if summary.folder:
                summary.write()
            print(f"[{number}/{len(paths)}] {path.stem} ...", flush=True)
            original, started = path.read_bytes(), time.perf_counter()
            output = folder / (f"{path.stem}.executed.ipynb" if in_place else path.name)
            injected = {name: ours[name.upper()] for name in declared[path] if name.upper() in ours}
            result.status, result.error = execute(path, output, injected | result.parameters, options)
            result.seconds = round(time.perf_counter() - started, 1)
            print(f"    {result.status.upper()} after {result.seconds:.1f} s", flush=True)
            if error := result.error:
                print(f"    {path.stem} stopped at {error['cell']}\n    {error['ename']}: {error['evalue']}")
            with contextlib.suppress(OSError, ValueError):  # the metrics it wrote (OUTPUT_DIR/<notebook>)
                metrics = folder / path.stem / "metrics.json"
                fresh = metrics.stat().st_mtime > time.time() - result.seconds
                result.metrics = json.loads(metrics.read_text()) if fresh else None
            try:  # the HTML beside the executed notebook, or (outputs) the notebook written back
                if in_place and result.status == OK:  # else its execution stays in the outputs folder
                    write_back(path, original, output, result)
                elif not in_place and output.exists():
                    atomic_write(output.with_suffix(".html"), HTMLExporter().from_filename(str(output))[0])
            except (OSError, ValueError) as error:  # a full disk; a notebook cut short by one; an edit
                print(f"    NOT SAVED: {error}")
                if result.status == OK:
                    result.status = NOT_SAVED
                    result.error = {"cell": "its end", "ename": type(error).__name__, "evalue": str(error)}
            if result.status == INTERRUPTED or (result.status != OK and not options.keep_going):
                break
    except KeyboardInterrupt as stop:  # between two notebooks, or while one was kept
        summary.stopped = signal_name(stop)
    print(f"\nEdition {options.edition}, profile {concrete}:\n{summary.table()}")
    if summary.folder:
        summary.write()
        print(f"\nExecuted notebooks and summary: {display_path(folder)}")
    return summary.exit_code()


def write_back(path: Path, original: bytes, executed: Path, result: Result) -> None:
    """``outputs``: write the execution of ``path``, which ran to the end, back in place, then into its
    translations; not over an edit saved while it ran (OSError: its execution stays in the outputs folder)."""
    if path.read_bytes() != original:  # not saved: see run
        raise OSError(f"{display_path(path)} was edited while it ran; its run is in {display_path(executed)}")
    notebook, ran = editions.read_notebook(path), editions.read_notebook(executed)
    editions.write_notebook(path, editions.with_outputs(notebook, ran))
    executed.unlink()
    for edition in editions.TRANSLATED:
        if (translated := editions.counterpart(path, edition)).is_file():
            try:
                done = "outputs copied" if editions.sync_edition(path, translated) else "in step"
                print(f"    {editions.LANGUAGES[edition]} edition: {display_path(translated)}, {done}")
            except editions.EditionError as error:
                print(f"    NOT SYNCED: {error}".replace("\n", "\n      "))
                result.status = NOT_SYNCED
