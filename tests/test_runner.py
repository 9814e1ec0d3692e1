"""The batch runner, ``python -m course_utils run`` and ``… outputs`` (course_tools.runner and .cli).

Most tests execute tiny notebooks written here into a temporary folder, in real kernels, through the
real command line (in this process, or in a subprocess where signals are sent); notebooks named like a
course notebook get a tiny recipe in ``settings.RECIPES``. One test runs the real notebook 01 end to end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_tools import editions, runner
from course_tools.cli import main
from course_utils import settings
from course_utils.data import default_data_dir

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No setting of the person running the tests leaks in; what the runner adds to it is undone."""
    for name in ("COURSE_PROFILE", "COURSE_OUTPUT_DIR", "COURSE_OVERRIDDEN", "COURSE_PROGRESS", "MPLBACKEND"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def recipes(monkeypatch):
    """Tiny recipes for throwaway notebooks: ``recipes("01_a", datasets=[...], epochs=1, lr=0.1)``."""

    def add(key: str, datasets: tuple[str, ...] = (), **values) -> None:
        recipe = {"datasets": list(datasets), "settings": {"base": values}, "checks": {}}
        monkeypatch.setitem(settings.RECIPES, key, recipe)

    return add


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A notebook with a title, a parameters cell (tagged as papermill wants it), then ``cells``."""
    notebook = new_notebook(
        cells=[
            new_markdown_cell(f"# {path.stem}"),
            new_code_cell(parameters, metadata={"tags": ["parameters"]}),
            *(new_code_cell(source) for source in cells),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    editions.write_notebook(path, notebook)
    return path


def course_notebook(folder: Path, key: str, *cells: str, parameters: str = "") -> Path:
    """A notebook that writes ``metrics.json`` as the course's do, with what its kernel saw (no torch)."""
    facts = (
        "{'model': 'row LSTM', 'test_accuracy': 0.9858, 'parameters': 61706, 'device': 'cpu',"
        " 'profile': PROFILE, 'executable': sys.executable, 'cwd': os.getcwd(),"
        " 'injected': {k: globals().get(k) for k in ('PROFILE', 'OUTPUT_DIR', 'DATA_DIR', 'EPOCHS')},"
        " 'environment': {k: os.environ.get(k) for k in"
        " ('COURSE_PROGRESS', 'MPLBACKEND', 'COURSE_PROFILE', 'COURSE_OUTPUT_DIR', 'COURSE_OVERRIDDEN')}}"
    )
    return write_notebook(
        folder / f"{key}.ipynb",
        'PROFILE = "auto"\nOUTPUT_DIR = None\n' + parameters,
        "import json\nimport os\nimport sys\nfrom pathlib import Path",
        *cells,
        f"folder = Path(OUTPUT_DIR or 'out', {key!r})\nfolder.mkdir(parents=True, exist_ok=True)\n"
        f"(folder / 'metrics.json').write_text(json.dumps({facts}))",
    )


def summary_of(runs: Path) -> tuple[Path, dict]:
    """The only run folder in ``runs``, and its summary.json."""
    [folder] = [path for path in runs.iterdir() if path.is_dir()]
    return folder, json.loads((folder / "summary.json").read_text())


def statuses(summary: dict) -> list[tuple[str, str]]:
    return [(result["notebook"], result["status"]) for result in summary["results"]]


# --------------------------------------------------------------------------------------
# Before anything runs (no kernel)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", 3), ("0.5", 0.5), ("[1, 2]", [1, 2]), ("'text'", "text"), ("TRUE", True), ("false", False),
     ("None", None), ("none", None), ("adamw", "adamw"), ("1e-3", 0.001), ("(1, 2", "(1, 2")],
)  # fmt: skip
def test_parameter_values_are_read_as_python_in_any_case(text, expected):
    assert runner.parse_value(text) == expected


@pytest.fixture
def tiny_course(tmp_path, recipes) -> Path:
    """Two notebooks with recipes: 01_a declares EPOCHS and LR, 02_b declares SEED."""
    recipes("01_a", epochs=1, lr=0.1)
    recipes("02_b")
    course_notebook(tmp_path / "nb", "01_a", parameters="EPOCHS = None\nLR = None")
    course_notebook(tmp_path / "nb", "02_b", parameters="SEED = 0")
    return tmp_path / "nb"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--only", "03"], "no notebook 03 in .*; it has: 01_a, 02_b"),
        (["-p", "PROFILE", "quick"], "-p PROFILE: the runner sets it; use --profile"),
        (["-p", "output_dir", "x"], "-p output_dir: the runner sets it; use --runs-dir"),
        (["-p", "BATCH", "8"], "-p BATCH: no notebook declares it; they declare:\n  01_a: PROFILE, "
                               "OUTPUT_DIR, EPOCHS, LR\n  02_b: PROFILE, OUTPUT_DIR, SEED"),
        (["-p", "EPOCHS", "0"], "01_a: EPOCHS must be "),
        (["-p", "LR", "fast"], "01_a: LR must be .*'fast'"),
        # every value is checked by settings.check_parameters, as configure checks it in the notebook
        (["-p", "LR", "1e999"], r"01_a: LR must be a finite number > 0, got inf \(1e999 reads as inf\)"),
        (["-p", "LR", "-1e999"], r"01_a: LR must be a finite number > 0, got -inf"),  # may start with "-"
        (["-p", "LR", "nan"], r"01_a: LR must be a finite number > 0, got 'nan'"),
        (["-p", "EPOCHS", "inf"], r"01_a: EPOCHS must be a whole number >= 1 .*got 'inf'"),
        (["-p", "LR", "-.5"], r"01_a: LR must be a finite number > 0, got -0\.5"),
        (["-p", "SEED", "-1"], "02_b: SEED must be "),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_before_anything_runs(tiny_course, capsys, arguments, message):
    runs = tiny_course.parent / "runs"
    assert main(["run", "--notebooks-dir", str(tiny_course), "--runs-dir", str(runs), *arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith("python -m course_utils run: error: ")
    assert re.search(message, error), error
    assert not runs.exists(), "nothing ran"


MALFORMED = [
    ["--profile", "fast"],
    ["--timeout", "0"],
    ["--timeout", "nan"],
    ["--edition", "zh", "--notebooks-dir", "x"],
]


@pytest.mark.parametrize("arguments", [*MALFORMED, ["-p", "EPOCHS"]])
def test_malformed_command_lines_exit_2_with_the_usage(arguments, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", *arguments])
    assert exit_.value.code == 2 and "usage: python -m course_utils" in capsys.readouterr().err


def test_the_edition_chooses_the_notebooks(capsys):
    assert main(["run", "--edition", "zh", "--only", "99"]) == 2
    assert "no notebook 99 in notebooks/zh; it has: 01_concepts, 02_lenet5_mnist" in capsys.readouterr().err


def test_the_auto_profile_is_resolved_once_by_the_runner(tiny_course, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    concrete, declared, given = runner.prepare([tiny_course / "01_a.ipynb"], "auto", [("epochs", 2)])
    assert concrete == "smoke" and given == {tiny_course / "01_a.ipynb": {"EPOCHS": 2}}


def test_missing_and_damaged_datasets_are_refused_before_anything_runs(
    tmp_path, recipes, monkeypatch, capsys
):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    recipes("01_a", datasets=["mnist"])
    recipes("02_b", datasets=["mnist", "cifar10"])
    for key in ("01_a", "02_b"):
        course_notebook(tmp_path / "nb", key)
    data, runs = tmp_path / "data", tmp_path / "runs"
    data.mkdir()
    (data / "mnist.npz").write_bytes(b"not a zip file")
    monkeypatch.setenv("COURSE_DATA_DIR", str(data))
    assert main(["run", "--notebooks-dir", str(tmp_path / "nb"), "--runs-dir", str(runs)]) == 2
    error = capsys.readouterr().err
    assert "datasets that cannot be loaded; nothing ran" in error
    assert "- mnist.npz, for 01_a, 02_b: " in error and "- cifar10.npz, for 02_b: " in error
    assert "download failed (OSError: no network)" in error and f"The data folder, {data}," in error
    assert "Running offline" in error and not runs.exists()


def spoiled_mnist(path: Path, spoil: str) -> None:
    """A small mnist.npz at ``path``, then spoiled: ``truncated``, ``pickled`` (an object array), or ``not an
    npz`` (/etc/passwd's text)."""
    arrays = {"x_train": np.zeros((30, 28, 28), np.uint8), "y_train": np.zeros(30, np.uint8),
              "x_test": np.zeros((20, 28, 28), np.uint8), "y_test": np.zeros(20, np.uint8)}  # fmt: skip
    if spoil == "pickled":
        arrays["y_test"] = np.array([{"label": 0}] * 20, dtype=object)
    np.savez(path, **arrays)
    if spoil == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif spoil == "not an npz":
        path.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")


@pytest.mark.parametrize(
    ("spoil", "message"),
    [("truncated", "not a readable .npz of arrays"), ("pickled", "allow_pickle=False"),
     ("not an npz", "not a readable .npz of arrays (not a zip file)")],
)  # fmt: skip
def test_a_damaged_dataset_is_refused_by_the_check_load_dataset_makes_before_anything_runs(
    tmp_path, recipes, monkeypatch, capsys, spoil, message
):
    recipes("01_a", datasets=["mnist"])
    course_notebook(tmp_path / "nb", "01_a")
    (tmp_path / "data").mkdir()
    spoiled_mnist(tmp_path / "data" / "mnist.npz", spoil)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    assert main(["run", "--notebooks-dir", str(tmp_path / "nb"), "--runs-dir", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err
    assert "datasets that cannot be loaded; nothing ran" in error and message in error, error
    assert spoil == "pickled" or "pickle" not in error, "a file that is no .npz is not said to hold pickles"
    assert not (tmp_path / "runs").exists()


@contextlib.contextmanager
def tmpfs(folder: Path, options: str):
    """A tmpfs mounted on ``folder`` (``options``: ``size=200k``, ``ro``) for the block; skips where that
    cannot be done (root with CAP_SYS_ADMIN can: CI's case)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", folder], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", folder], check=True)


@pytest.mark.parametrize(
    ("problem", "reason"),
    [("a file in the way", "Not a directory"), ("no permission", "Permission denied"),
     ("read-only filesystem", "Read-only file system"),
     ("/proc", "No such file or directory|Permission denied"), ("outputs folder", "not a folder")],
)  # fmt: skip
def test_a_folder_that_cannot_be_written_is_refused_before_anything_runs(
    tiny_course, monkeypatch, capsys, problem, reason
):
    blocked = tiny_course.parent / "blocked"
    with contextlib.ExitStack() as stack:
        if problem == "no permission":
            if os.geteuid() == 0:
                pytest.skip("root may write anywhere (the read-only filesystem and /proc cases stop root)")
            blocked.mkdir(mode=0o500)
        elif problem == "read-only filesystem":
            stack.enter_context(tmpfs(blocked, "ro,size=64k"))
        elif problem == "/proc":  # root passes os.access there, but may make no folder
            blocked = Path("/proc")
        else:
            blocked.write_text("a file, not a folder")
        command = ["run", "--runs-dir", str(blocked / "runs")]
        if problem == "outputs folder":  # where `outputs` keeps failed executions: the notebooks' own folder
            monkeypatch.setenv("COURSE_OUTPUT_DIR", str(blocked / "outputs"))
            command = ["outputs"]
        assert main([*command, "--notebooks-dir", str(tiny_course)]) == 2
    error = capsys.readouterr().err
    assert f"cannot write into {blocked}" in error and re.search(reason, error), error


def test_signals_stop_the_run_unless_ignored_and_after_the_first_the_others_are_ignored():
    before = {signum: signal.getsignal(signum) for signum in runner.SIGNALS}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with runner.stop_on_signals():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN, "nohup's choice is kept"
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "no signal came: all as before"
        assert signal.getsignal(signal.SIGINT) == before[signal.SIGINT]
        with runner.stop_on_signals():
            with pytest.raises(KeyboardInterrupt) as stop:
                signal.raise_signal(signal.SIGTERM)
            assert runner.signal_name(stop.value) == "SIGTERM"
            signal.raise_signal(signal.SIGINT)  # a second one, while what ran is kept: ignored
            signal.raise_signal(signal.SIGTERM)
        assert {signal.getsignal(signum) for signum in runner.SIGNALS} == {signal.SIG_IGN}, "until the exit"
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_the_hand_over_needs_a_checkout(tmp_path):
    package = tmp_path / "site-packages" / "course_utils"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text((ROOT / "course_utils" / "__main__.py").read_text())
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    command = [sys.executable, "-m", "course_utils", "run"]
    result = subprocess.run(command, cwd=package.parent, env=environment, capture_output=True, text=True)
    assert result.returncode == 2 and "part of a checkout of the repository" in result.stderr


# --------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------


def test_a_run_executes_the_notebooks_and_writes_the_summary(tmp_path, recipes, monkeypatch, capsys):
    recipes("02_second", epochs=1)
    notebooks, runs = tmp_path / "nb", tmp_path / "runs"
    course_notebook(notebooks, "01_first", "print('first')", parameters="DATA_DIR = None")
    course_notebook(notebooks, "02_second", parameters="EPOCHS = None")
    now = datetime.now()  # the folders of the next seconds are taken: this run gets a "-2" one
    for second in range(30):
        (runs / f"{now + timedelta(seconds=second):%Y%m%d-%H%M%S}-smoke").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # -p DATA_DIR is read from where the command runs
    command = ["run", "--profile", "smoke", "--notebooks-dir", str(notebooks), "--runs-dir", "runs"]
    assert main([*command, "-p", "epochs", "2", "-p", "DATA_DIR", "data", "--log-output"]) == 0
    out = capsys.readouterr().out
    [folder] = [path for path in runs.iterdir() if path.name.endswith("-smoke-2")]
    summary = json.loads((folder / "summary.json").read_text())
    assert out.startswith(f"Running 2 notebook(s) of edition none ({notebooks}), profile smoke,\n")
    assert f"into runs/{folder.name} (from --runs-dir)" in out and "[2/2] 02_second ..." in out
    assert "\nfirst\n" in out, "--log-output prints what the notebooks print"
    assert re.search(r"\n01_first +ok +[.\d]+ +row LSTM 98\.58 % +61,706 +cpu +smoke\n", out), out
    assert "01_first ran with -p DATA_DIR='" in out and "02_second ran with -p EPOCHS=2" in out
    assert summary["profile"] == "smoke" and summary["exit_code"] == 0 and "python" in summary["environment"]
    assert statuses(summary) == [("01_first", "ok"), ("02_second", "ok")]
    first, second = (result["metrics"] for result in summary["results"])
    assert summary["results"][1]["parameters"] == {"EPOCHS": 2}
    data = str(tmp_path / "data")
    assert first["injected"] == {
        "PROFILE": "smoke",
        "OUTPUT_DIR": str(folder),
        "DATA_DIR": data,
        "EPOCHS": None,
    }
    assert second["injected"] == {
        "PROFILE": "smoke",
        "OUTPUT_DIR": str(folder),
        "DATA_DIR": None,
        "EPOCHS": 2,
    }
    assert first["executable"] == sys.executable and first["cwd"] == str(notebooks)
    assert first["environment"] == {"COURSE_PROGRESS": "text", "MPLBACKEND": "Agg", "COURSE_PROFILE": None,
                                    "COURSE_OUTPUT_DIR": None, "COURSE_OVERRIDDEN": None}  # fmt: skip
    for key in ("01_first", "02_second"):
        assert (folder / f"{key}.ipynb").is_file() and "<html" in (folder / f"{key}.html").read_text()[:500]
    markdown = (folder / "summary.md").read_text()
    assert markdown.startswith(f"# Course run {folder.name}") and "02_second ran with -p EPOCHS=2" in markdown
    assert f"On python {sys.version.split()[0]}, torch " in markdown


@pytest.mark.parametrize("keep_going", [False, True])
def test_a_failure_names_the_notebook_and_cell_and_stops_the_run_unless_keep_going(
    tmp_path, capsys, keep_going
):
    notebooks, runs = tmp_path / "nb", tmp_path / "runs"
    course_notebook(notebooks, "01_fine")
    course_notebook(notebooks, "02_broken", "raise RuntimeError('no data')")
    course_notebook(notebooks, "03_after")
    command = ["run", "--notebooks-dir", str(notebooks), "--runs-dir", str(runs), "--profile", "smoke"]
    assert main(command + ["--keep-going"] * keep_going) == 1
    out = capsys.readouterr().out
    assert "FAILED after" in out and "02_broken stopped at In [4] `raise RuntimeError('no data')`" in out
    assert "\n    RuntimeError: no data\n" in out
    folder, summary = summary_of(runs)
    after = "ok" if keep_going else "not run"
    assert statuses(summary) == [("01_fine", "ok"), ("02_broken", "failed"), ("03_after", after)]
    assert summary["results"][1]["error"]["evalue"] == "no data" and summary["exit_code"] == 1
    kept = nbformat.read(folder / "02_broken.ipynb", as_version=4)  # papermill's error cells included
    assert any("papermill-error-cell-tag" in cell.metadata.get("tags", []) for cell in kept.cells)
    assert any(
        output.get("ename") == "RuntimeError" for cell in kept.cells for output in cell.get("outputs", [])
    )
    assert (folder / "02_broken.html").is_file() and "RuntimeError: no data" in (
        folder / "summary.md"
    ).read_text()


def test_a_notebook_past_its_timeout_is_stopped_and_kept(tmp_path, capsys):
    notebooks, runs = tmp_path / "nb", tmp_path / "runs"
    course_notebook(notebooks, "01_slow", "import time\n\nfor _ in range(600):\n    time.sleep(0.1)")
    started = time.monotonic()
    # 15 s for the whole notebook: its kernel starts and its first cells run within them, even with the
    # other processes of make test on the same cores; the loop of 60 s does not.
    assert main(["run", "--notebooks-dir", str(notebooks), "--runs-dir", str(runs), "--timeout", "0.25"]) == 1
    assert time.monotonic() - started < 50, "--timeout limits the whole notebook"
    out = capsys.readouterr().out
    assert "TIMEOUT after" in out and "01_slow stopped at In [4] `import time`" in out
    folder, summary = summary_of(runs)
    assert statuses(summary) == [("01_slow", "timeout")]
    kept = nbformat.read(folder / "01_slow.ipynb", as_version=4)
    assert [cell.execution_count for cell in kept.cells if cell.cell_type == "code"][:2] == [1, 2]


def restore_default_signal_actions() -> None:
    """In the child: Ctrl-C, SIGTERM and SIGHUP do what they do in a terminal (a shell without job control
    or ``nohup`` would have the child inherit them ignored, and the runner rightly keeps them so)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def start_runner(*arguments, **popen) -> subprocess.Popen:
    """``python -m course_utils ARGUMENTS`` in a child process, its output in a pipe (stderr with stdout)."""
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} | popen
    command = [sys.executable, "-m", "course_utils", *map(str, arguments)]
    return subprocess.Popen(command, cwd=ROOT, text=True, preexec_fn=restore_default_signal_actions, **popen)


def long_course(folder: Path, marker: Path) -> Path:
    """01_fine, then 02_long, which writes its kernel's pid and command line into ``marker`` and sleeps."""
    course_notebook(folder, "01_fine")
    kernel = "json.dumps({'pid': os.getpid(), 'argv': sys.argv})"
    course_notebook(
        folder, "02_long", f"import time\nPath({str(marker)!r}).write_text({kernel})\ntime.sleep(600)"
    )
    course_notebook(folder, "03_never")
    return folder


def wait_for_kernel(marker: Path, process: subprocess.Popen) -> dict:
    """Once 02_long sleeps: its kernel's ``pid`` and ``connection`` file (what ``-f`` gave it)."""
    deadline = time.monotonic() + 300
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), process.communicate()[0][-3000:] if process.poll() is not None else "no start"
    time.sleep(0.5)
    kernel = json.loads(marker.read_text())
    return {"pid": kernel["pid"], "connection": Path(kernel["argv"][kernel["argv"].index("-f") + 1])}


def kernel_ended(pid: int) -> bool:
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return False


# SIGINT: Ctrl-C. SIGTERM: `timeout`, a scheduler, kill. SIGHUP: the terminal or SSH session closed. More
# signals within the next seconds (an impatient Ctrl-C, a `timeout -k`) must not break off the keeping.
@pytest.mark.parametrize(
    "signals",
    [
        [signal.SIGINT],
        [signal.SIGTERM],
        [signal.SIGHUP],
        [signal.SIGINT] + [signal.SIGTERM, signal.SIGINT] * 15,
    ],
    ids=["SIGINT", "SIGTERM", "SIGHUP", "SIGINT then more"],
)
def test_a_signal_stops_the_run_keeps_and_marks_what_ran_and_shuts_the_kernel_down(tmp_path, signals):
    runs, marker = tmp_path / "runs", tmp_path / "kernel.json"
    process = start_runner("run", "--notebooks-dir", long_course(tmp_path / "nb", marker), "--runs-dir", runs)
    signum = signals[0]
    try:
        kernel = wait_for_kernel(marker, process)
        if signum == signal.SIGHUP:
            process.stdout.close()  # the terminal is gone: nobody reads what the runner prints
        for each in signals:
            process.send_signal(each)
            time.sleep(0.1)
        out = "" if signum == signal.SIGHUP else process.communicate(timeout=120)[0]
        assert process.wait(timeout=120) == 128 + signum, out  # 130, 143, 129, as a shell reports them
    finally:
        if process.poll() is None:
            process.kill()
    name = signal.Signals(signum).name
    if out:
        assert "INTERRUPTED after" in out and "02_long stopped at In [" in out and "`import time`" in out
        assert f"{name}: stopped by {'Ctrl-C' if name == 'SIGINT' else name}" in out
        assert "Traceback" not in out
    folder, summary = summary_of(runs)
    assert statuses(summary) == [("01_fine", "ok"), ("02_long", "interrupted"), ("03_never", "not run")]
    assert summary["exit_code"] == 128 + signum and summary["results"][1]["error"]["ename"] == name
    assert summary["results"][0]["metrics"]["test_accuracy"] == 0.9858, "what finished is kept"
    kept = nbformat.read(folder / "02_long.ipynb", as_version=4)
    assert [cell.execution_count for cell in kept.cells if cell.cell_type == "code"][:3] == [1, 2, 3]
    assert kept.cells[0].cell_type == "markdown" and kept.cells[0].source.startswith(
        "**INTERRUPTED** at In ["
    )
    assert "INTERRUPTED</strong> at In [" in (folder / "02_long.html").read_text(), "its HTML says so too"
    assert kernel["connection"].parent == folder and not kernel["connection"].exists()
    assert kernel_ended(kernel["pid"]), f"the kernel {kernel['pid']} outlived the runner"


def test_a_killed_runner_leaves_no_kernel_connection_file_in_tmp(tmp_path):
    runs, marker = tmp_path / "runs", tmp_path / "kernel.json"
    process = start_runner("run", "--notebooks-dir", long_course(tmp_path / "nb", marker), "--runs-dir", runs)
    try:
        kernel = wait_for_kernel(marker, process)
        process.kill()  # kill -9: nothing of the runner's can clean up
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        kernel_ended(kernel["pid"])
    [folder] = runs.iterdir()
    assert kernel["connection"].parent == folder, "its keys stay with the run, not in /tmp"


def test_a_closed_pipe_loses_nothing(tmp_path):
    notebooks, runs = tmp_path / "nb", tmp_path / "runs"
    for key in ("01_first", "02_second"):
        course_notebook(notebooks, key, "print('a line the pipe no longer takes')")
    process = start_runner("run", "--notebooks-dir", notebooks, "--runs-dir", runs, "--log-output",
                           stderr=subprocess.PIPE)  # fmt: skip
    head = [process.stdout.readline() for _ in range(3)]  # `… | head -3`
    process.stdout.close()
    errors = process.stderr.read()
    assert process.wait(timeout=300) == 0, errors  # the notebooks' status
    assert head[2].startswith("[1/2] 01_first") and "Traceback" not in errors and "BrokenPipe" not in errors
    folder, summary = summary_of(runs)
    assert statuses(summary) == [("01_first", "ok"), ("02_second", "ok")]
    assert (folder / "02_second.ipynb").is_file() and (folder / "02_second.html").is_file()


@pytest.mark.parametrize("keep_going", [False, True])
def test_a_full_disk_says_what_ran_and_what_could_not_be_saved(tmp_path, capsys, keep_going):
    notebooks = tmp_path / "nb"
    course_notebook(notebooks, "01_first")
    course_notebook(notebooks, "02_second")
    # 200 KB: room for the notebooks and the summary, not for an HTML page (about 280 KB)
    with tmpfs(tmp_path / "disk", "size=200k") as disk:
        command = ["run", "--notebooks-dir", str(notebooks), "--runs-dir", str(disk)]
        assert main(command + ["--keep-going"] * keep_going) == 1
        out = capsys.readouterr().out
        folder, summary = summary_of(disk)
        kept = sorted(path.name for path in folder.iterdir())
    assert "Traceback" not in out and "NOT SAVED: " in out and "No space left on device" in out
    second = "not saved" if keep_going else "not run"
    assert statuses(summary) == [("01_first", "not saved"), ("02_second", second)]
    assert re.search(r"\n01_first +not saved +[.\d]+ +row LSTM 98\.58 %", out), "what ran, it says"
    error = summary["results"][0]["error"]
    assert error["ename"] == "OSError" and "No space left on device" in error["evalue"]
    assert "01_first.ipynb" in kept and "01_first.html" not in kept


# --------------------------------------------------------------------------------------
# make outputs: in place
# --------------------------------------------------------------------------------------


def test_outputs_writes_the_notebooks_back_and_into_their_translations(tmp_path, monkeypatch, capsys):
    notebooks, outputs = tmp_path / "nb", tmp_path / "outputs"
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(outputs))
    fine = write_notebook(notebooks / "01_fine.ipynb", 'PROFILE = "auto"', "print(PROFILE)", "6 * 7")
    # A teacher saves an edit of 02 while it runs (here: the notebook itself does), and 03 fails.
    edited = write_notebook(
        notebooks / "02_edited.ipynb",
        'PROFILE = "auto"',
        "from pathlib import Path\n"
        "Path('02_edited.ipynb').write_text(Path('02_edited.ipynb').read_text() + ' ')",
    )
    broken = write_notebook(
        notebooks / "03_broken.ipynb", 'PROFILE = "auto"', "raise RuntimeError('no data')"
    )
    before = editions.read_notebook(fine)
    chinese = editions.counterpart(fine, "zh")
    english_markdown = {cell.id: "# 中文标题" for cell in before.cells if cell.cell_type == "markdown"}
    editions.write_notebook(chinese, editions.build_translated(before, english_markdown))
    broken_bytes = broken.read_bytes()

    command = ["outputs", "--profile", "smoke", "--keep-going", "--notebooks-dir", str(notebooks)]
    assert main([*command, "--only", "01,02"]) == 1, "the edit saved while it ran alone makes it fail"
    out = capsys.readouterr().out
    assert "in place; failed executions in" in out and f"Chinese edition: {chinese}, outputs copied" in out
    assert "NOT SAVED: " in out and re.search(r"01_fine +ok", out) and re.search(r"02_edited +not saved", out)
    after = editions.read_notebook(fine)
    assert [(c.id, c.source, c.metadata) for c in after.cells] == [
        (c.id, c.source, c.metadata) for c in before.cells
    ]
    code = [cell for cell in after.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == [1, 2, 3], "renumbered without the injected cell"
    assert code[1].outputs[0].text == "smoke\n" and code[2].outputs[0]["data"]["text/plain"] == "42"
    assert code[2].outputs[0]["execution_count"] == 3 and "papermill" not in after.metadata
    assert after.metadata.language_info.name == "python"
    assert (
        editions.check_edition(fine, chinese) == []
        and editions.read_notebook(chinese).cells[0].source == "# 中文标题"
    )
    assert edited.read_text().endswith("}\n "), "the edit made while it ran is kept"
    assert (outputs / "02_edited.executed.ipynb").is_file() and not (
        outputs / "01_fine.executed.ipynb"
    ).exists()
    assert main([*command, "--only", "03"]) == 1
    assert broken.read_bytes() == broken_bytes
    failed = nbformat.read(outputs / "03_broken.executed.ipynb", as_version=4)  # kept, as it went
    assert any(
        output.get("ename") == "RuntimeError" for cell in failed.cells for output in cell.get("outputs", [])
    )


# --------------------------------------------------------------------------------------
# The real course
# --------------------------------------------------------------------------------------


def test_notebook_01_runs_end_to_end_under_the_smoke_profile(tmp_path):
    if not all((default_data_dir() / f"{name}.npz").is_file() for name in ("mnist", "cifar10")):
        pytest.skip(f"no mnist.npz and cifar10.npz in {default_data_dir()}: the real notebooks need them")
    command = ["run", "--profile", "smoke", "--only", "01", "--runs-dir", tmp_path]
    result = subprocess.run(
        [sys.executable, "-m", "course_utils", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    folder, summary = summary_of(tmp_path)
    assert statuses(summary) == [("01_concepts", "ok")] and summary["edition"] == "en"
    assert summary["results"][0]["metrics"]["profile"] == "smoke"
    assert (folder / "01_concepts.ipynb").is_file() and (folder / "01_concepts.html").is_file()
