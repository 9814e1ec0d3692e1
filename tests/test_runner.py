"""The batch runner (``python -m course_utils run``) and ``make outputs`` (``… outputs``).

Most tests execute small notebooks that they write themselves into a temporary folder, in
real kernels, through the real command line; one test runs the real course end to end
under the smoke profile (it needs the data and the four notebooks).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_utils import editions
from course_utils.__main__ import main
from course_utils.editions import build_translated, check_edition, notebook_text, read_notebook
from course_utils.runner import (
    NotebookResult,
    RunReport,
    UsageError,
    check_datasets,
    find_notebooks,
    notebooks_folder,
    parse_parameter_value,
    plan_run,
    run_notebooks,
    select_notebooks,
)

ROOT = Path(__file__).resolve().parent.parent
COURSE_NOTEBOOKS = ("01_concepts", "02_lenet5_mnist", "03_resnet20_cifar10", "04_cnn_vs_rnn")


# --------------------------------------------------------------------------------------
# Small notebooks for the tests
# --------------------------------------------------------------------------------------


def write_notebook(path: Path, parameters: str, *cells: str) -> Path:
    """A notebook with a title, a parameters cell (tagged), then the given code cells."""
    notebook = new_notebook(
        cells=[
            new_markdown_cell(f"# {path.stem}"),
            new_code_cell(parameters, metadata={"tags": ["parameters"]}),
            *(new_code_cell(source) for source in cells),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return path


def recipe_notebook(folder: Path, key: str) -> Path:
    """A notebook that follows the course's contract without training anything.

    It resolves its parameters with ``configure`` (the recipe ``key``), records what the
    kernel sees (executable, environment, working folder, the parameters it got) and
    writes ``metrics.json`` with ``write_metrics``, as the course's notebooks do.
    """
    epochs = "EPOCHS = None  # None: the profile's value\n" if key == "02_lenet5_mnist" else ""
    knobs = "epochs=EPOCHS" if epochs else ""
    return write_notebook(
        folder / f"{key}.ipynb",
        f'PROFILE = "auto"  # the profile\n{epochs}SEED = 0\nOUTPUT_DIR = None',
        "import os\nimport sys\n\nfrom course_utils.profiles import configure",
        f'run = configure("{key}", PROFILE, seed=SEED, output_dir=OUTPUT_DIR, {knobs})\nprint(run.profile)',
        "run.write_metrics(\n"
        '    {"test_accuracy": 0.875, "parameters": 61706, "requested_profile": PROFILE,\n'
        '     "epochs": run.values.get("epochs"), "executable": sys.executable, "cwd": os.getcwd(),\n'
        '     "progress": os.environ.get("COURSE_PROGRESS"), "backend": os.environ.get("MPLBACKEND"),\n'
        '     "output_dir_env": os.environ.get("COURSE_OUTPUT_DIR"), "output_dir": OUTPUT_DIR,\n'
        '     "overridden_env": os.environ.get("COURSE_OVERRIDDEN"), "overridden": list(run.overridden)}\n'
        ")",
    )


def plain_notebook(folder: Path, key: str, *cells: str, parameters: str = "") -> Path:
    """A notebook without a recipe (no torch import: quick) that writes its metrics.json itself."""
    return write_notebook(
        folder / f"{key}.ipynb",
        'PROFILE = "auto"\nOUTPUT_DIR = None\n' + parameters,
        "import json\nimport os\nfrom pathlib import Path",
        *cells,
        f'folder = Path(OUTPUT_DIR or os.environ["COURSE_OUTPUT_DIR"]) / "{key}"\n'
        "folder.mkdir(parents=True, exist_ok=True)\n"
        '(folder / "metrics.json").write_text(json.dumps({"profile": PROFILE, "cwd": os.getcwd(),\n'
        '    "course_profile_env": os.environ.get("COURSE_PROFILE")}))',
    )


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    """``python -m course_utils ARGS`` in a subprocess of this Python, from ``cwd`` (the repository root)."""
    return subprocess.run(
        [sys.executable, "-m", "course_utils", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_run_folder(runs_dir: Path) -> Path:
    folders = [path for path in runs_dir.iterdir() if path.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# --------------------------------------------------------------------------------------
# Arguments (no kernel needed)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("-2", -2),
        ("0.5", 0.5),
        ("1e-3", 1e-3),
        ("True", True),
        ("true", True),
        ("FALSE", False),
        ("None", None),
        ("none", None),
        ("cpu", "cpu"),
        ("'quoted'", "quoted"),
        ("[1, 2]", [1, 2]),
        ("data/mnist", "data/mnist"),
        ("", ""),
    ],
)
def test_parameter_values_are_read_as_python_in_any_case(text, expected):
    # papermill's own -p would keep "true", "none", "'quoted'" and "[1, 2]" as strings.
    value = parse_parameter_value(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text", ["1e999", "-1e999", "inf", "-Infinity", "nan", "NaN"])
def test_numbers_that_are_not_finite_are_refused(text):
    # No setting means infinity or "not a number": LR 1e999 would train to NaN, not stop at the top.
    with pytest.raises(UsageError, match=rf"-p LR {text}: reads as -?(inf|nan), not a finite number"):
        parse_parameter_value(text, "LR")


def test_notebooks_are_found_in_number_order_with_their_parameters(tmp_path):
    plain_notebook(tmp_path, "10_last", parameters="EXTRA = 1")
    plain_notebook(tmp_path, "2_second")
    plain_notebook(tmp_path, "01_first")
    plain_notebook(tmp_path, "notes")  # not numbered: not part of the course
    notebooks = find_notebooks(tmp_path)
    assert [notebook.key for notebook in notebooks] == ["01_first", "2_second", "10_last"]
    assert [notebook.number for notebook in notebooks] == [1, 2, 10]
    assert list(notebooks[2].parameters) == ["PROFILE", "OUTPUT_DIR", "EXTRA"]
    assert notebooks[2].parameters["EXTRA"] == "1"


def test_only_selects_by_number_or_name_and_keeps_course_order(tmp_path):
    for key in ("01_a", "02_b", "03_c"):
        plain_notebook(tmp_path, key)
    notebooks = find_notebooks(tmp_path)
    keys = lambda chosen: [notebook.key for notebook in chosen]  # noqa: E731
    assert keys(select_notebooks(notebooks, [])) == ["01_a", "02_b", "03_c"]
    assert keys(select_notebooks(notebooks, ["03", "1"])) == ["01_a", "03_c"]
    assert keys(select_notebooks(notebooks, ["03_c.ipynb,02_b"])) == ["02_b", "03_c"]
    with pytest.raises(UsageError, match=r"no notebook '07'.*01 \(01_a\), 02 \(02_b\), 03 \(03_c\)"):
        select_notebooks(notebooks, ["02", "07"])


def test_parameters_go_to_the_notebooks_that_declare_them(tmp_path):
    plain_notebook(tmp_path, "01_a", parameters="EPOCHS = None\nSEED = 0")
    plain_notebook(tmp_path, "02_b", parameters="SEED = 0")
    notebooks = find_notebooks(tmp_path)
    assert [notebook.key for notebook in notebooks] == ["01_a", "02_b"]
    plan = plan_run(tmp_path, "smoke", [("epochs", 3), ("SEED", 7)])  # names match regardless of case
    assert plan.parameters == {"01_a": {"EPOCHS": 3, "SEED": 7}, "02_b": {"SEED": 7}}
    with pytest.raises(UsageError, match=r"no notebook declares the parameter 'LR'(.|\n)*01_a: EPOCHS, SEED"):
        plan_run(tmp_path, "smoke", [("LR", 0.1)])
    with pytest.raises(UsageError, match="--profile"):
        plan_run(tmp_path, "smoke", [("PROFILE", "full")])
    with pytest.raises(UsageError, match="run folder"):
        plan_run(tmp_path, "smoke", [("OUTPUT_DIR", "/somewhere")])


def test_auto_profile_is_resolved_once_by_the_runner(tmp_path, monkeypatch):
    plain_notebook(tmp_path, "01_a")
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    assert plan_run(tmp_path, "auto").profile == "quick"
    assert plan_run(tmp_path, "smoke").profile == "smoke"
    monkeypatch.setenv("COURSE_PROFILE", "warp")
    with pytest.raises(UsageError, match="COURSE_PROFILE"):
        plan_run(tmp_path, "auto")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--only", "07"], "no notebook '07'; the notebooks are: 01 (01_concepts), 02 (02_lenet5_mnist)"),
        (["-p", "BATCH", "64"], "no notebook declares the parameter 'BATCH'"),
        (["-p", "EPOCHS", "many"], "02_lenet5_mnist: EPOCHS must be a positive whole number"),
        (["-p", "EPOCHS", "0"], "02_lenet5_mnist: EPOCHS must be a positive whole number"),
        (["-p", "SEED", "-1"], "SEED must be a non-negative whole number"),
        (["-p", "EPOCHS", "1e999"], "-p EPOCHS 1e999: reads as inf, not a finite number"),
        (["-p", "SEED", "nan"], "-p SEED nan: reads as nan, not a finite number"),
        (["-p", "PROFILE", "full"], "use --profile"),
        (["--timeout", "0"], "positive number of minutes"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(tmp_path, capsys, arguments, message):
    notebooks = tmp_path / "notebooks"
    recipe_notebook(notebooks, "01_concepts")
    recipe_notebook(notebooks, "02_lenet5_mnist")
    runs = tmp_path / "runs"
    command = ["run", "--notebooks-dir", str(notebooks), "--runs-dir", str(runs), *arguments]
    try:
        status = main(command)
    except SystemExit as exit_:  # argparse's own checks (choices, types) exit directly
        status = exit_.code
    assert status == 2
    assert message in capsys.readouterr().err
    assert not runs.exists(), "nothing may run (or be created) when the arguments are bad"


def test_missing_batch_tools_are_named_with_the_command_that_installs_them(tmp_path, capsys, monkeypatch):
    plain_notebook(tmp_path / "notebooks", "01_a")
    monkeypatch.setitem(sys.modules, "nbformat", None)  # as if `pip install .` without the [batch] extra
    status = main(
        ["run", "--notebooks-dir", str(tmp_path / "notebooks"), "--runs-dir", str(tmp_path / "runs")]
    )
    assert status == 2 and "pip install -e '.[batch]'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_an_unknown_profile_is_refused_with_the_valid_ones(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--profile", "fast", "--runs-dir", str(tmp_path / "runs")])
    assert exit_.value.code == 2
    assert "invalid choice: 'fast' (choose from" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.fixture
def offline_torchvision(monkeypatch):
    """Make torchvision's MNIST and CIFAR10 fail as they do without a network (as in test_data.py)."""
    import torchvision.datasets

    class Offline:
        def __init__(self, root, train=True, download=False):
            raise RuntimeError(
                "Error downloading: <urlopen error [Errno -3] Temporary failure in name resolution>"
            )

    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)


def data_notebook(folder: Path, key: str, *datasets: str) -> Path:
    """A notebook that loads ``datasets`` from its ``DATA_DIR``, as the course's notebooks do."""
    loads = "".join(f'\n{name} = load_dataset("{name}", DATA_DIR)' for name in datasets)
    return plain_notebook(
        folder, key, "from course_utils.data import load_dataset" + loads, parameters="DATA_DIR = None"
    )


def test_missing_datasets_are_refused_before_anything_runs(
    tmp_path, capsys, monkeypatch, offline_torchvision
):
    notebooks, runs, empty = tmp_path / "notebooks", tmp_path / "runs", tmp_path / "empty"
    data_notebook(notebooks, "01_digits", "mnist")
    data_notebook(notebooks, "02_both", "mnist", "cifar10")
    data_notebook(notebooks, "03_none")
    monkeypatch.setenv("COURSE_DATA_DIR", str(empty))
    status = main(["run", "--notebooks-dir", str(notebooks), "--runs-dir", str(runs)])
    error = capsys.readouterr().err
    assert status == 2 and not runs.exists(), "nothing may run (or be created) without the data"
    # One message: which files, for which notebooks, where it looked, why, how to fix it; whole.
    assert error.startswith(
        "python -m course_utils run: error: the notebooks need datasets that are not there"
    )
    assert (
        "--- mnist.npz, for 01_digits, 02_both ---" in error and "--- cifar10.npz, for 02_both ---" in error
    )
    assert f"Looked in {empty} for mnist.npz" in error and f"Looked in {empty} for cifar10.npz" in error
    assert "Temporary failure in name resolution" in error and "To fix: copy mnist.npz" in error
    assert f"else $COURSE_DATA_DIR (now {empty})" in error
    assert len(error) > 1200 and error.rstrip().endswith('see "Running offline" in README.md.')
    # A notebook that loads nothing needs nothing; -p DATA_DIR wins over COURSE_DATA_DIR.
    check_datasets(plan_run(notebooks, "smoke", only=["03"]))
    given = tmp_path / "given"
    given.mkdir()
    for name in ("mnist", "cifar10"):
        (given / f"{name}.npz").write_bytes(b"")  # there: what it holds is the notebook's to check
    check_datasets(plan_run(notebooks, "smoke", [("DATA_DIR", str(given))]))


@pytest.mark.parametrize("command", ["run", "outputs"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_anything_runs(
    tmp_path, capsys, monkeypatch, command
):
    notebooks, blocker = tmp_path / "notebooks", tmp_path / "a-file"
    plain_notebook(notebooks, "01_a")
    blocker.write_text("in the way")  # tests run as root, whom no permission stops: a file does
    option = "--runs-dir" if command == "run" else "--output-dir"
    status = main([command, "--notebooks-dir", str(notebooks), option, str(blocker / "sub")])
    error = capsys.readouterr().err
    assert status == 2
    assert f"cannot write into {blocker / 'sub'} (from {option}): {blocker} is not a folder" in error
    assert f"choose another with {option} or COURSE_OUTPUT_DIR" in error
    # Without the option, COURSE_OUTPUT_DIR decides: run folders go to its runs/ folder.
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(blocker / "mine"))
    status = main([command, "--notebooks-dir", str(notebooks)])
    error = capsys.readouterr().err
    folder = blocker / "mine" / ("runs" if command == "run" else "")
    assert status == 2 and f"cannot write into {folder} (from COURSE_OUTPUT_DIR={blocker / 'mine'})" in error
    assert blocker.read_text() == "in the way"


def test_summary_table_formats_the_key_metrics(tmp_path):
    from datetime import datetime

    report = RunReport(
        run_dir=tmp_path / "20250101-120000-quick",
        profile="quick",
        requested_profile="auto",
        parameters={"EPOCHS": 2},
        results=[
            NotebookResult(
                "02_lenet5_mnist",
                "ok",
                seconds=90.0,
                parameters={"EPOCHS": 2, "LR": 0.01},
                metrics={"test_accuracy": 0.9912, "parameters": 61706, "device": "cpu", "profile": "quick"},
                files={"notebook": "02_lenet5_mnist.ipynb", "html": "02_lenet5_mnist.html"},
            ),
            NotebookResult("03_resnet20_cifar10", "not run", parameters={"EPOCHS": 2}),
            NotebookResult(  # several models: the headline names the one its accuracy is of
                "04_cnn_vs_rnn",
                "ok",
                seconds=60.0,
                metrics={"test_accuracy": 0.99, "headline": {"model": "row LSTM", "accuracy": 0.9858}},
            ),
            NotebookResult(
                "05_other", "ok", seconds=6.0, metrics={"test_accuracy": 0.5, "headline_model": "GRU"}
            ),
        ],
        started=datetime(2025, 1, 1, 12, 0, 0),
    )
    text = report.to_text()
    assert text.splitlines()[0].split() == [
        "notebook", "status", "minutes", "test", "accuracy", "parameters", "device", "profile"
    ]  # fmt: skip
    assert text.splitlines()[1].split() == [
        "02_lenet5_mnist",
        "ok",
        "1.50",
        "99.12",
        "%",
        "61,706",
        "cpu",
        "quick",
    ]
    assert text.splitlines()[2].split() == ["03_resnet20_cifar10", "not", "run"]
    assert text.splitlines()[3].split() == ["04_cnn_vs_rnn", "ok", "1.00", "row", "LSTM", "98.58", "%"]
    assert text.splitlines()[4].split() == ["05_other", "ok", "0.10", "GRU", "50.00", "%"]
    # The notebook that ran with -p values says so; the one that did not run does not.
    assert text.splitlines()[5:] == ["02_lenet5_mnist ran with -p EPOCHS=2, LR=0.01"]
    markdown = report.to_markdown()
    assert (
        "| [02_lenet5_mnist](02_lenet5_mnist.html) | ok | 1.50 | 99.12 % | 61,706 | cpu | quick |" in markdown
    )
    assert "| 03_resnet20_cifar10 | not run |" in markdown
    assert "| 04_cnn_vs_rnn | ok | 1.00 | row LSTM 98.58 % |" in markdown
    assert "\n02_lenet5_mnist ran with -p EPOCHS=2, LR=0.01\n" in markdown
    assert report.exit_code == 1


def test_the_summary_names_the_edition(tmp_path):
    from datetime import datetime

    report = RunReport(
        tmp_path / "20250101-120000-quick",
        "quick",
        "quick",
        {},
        [NotebookResult("01_concepts", "ok", seconds=6.0)],
        datetime(2025, 1, 1, 12, 0, 0),
        edition="zh",
        notebooks_dir=ROOT / "notebooks" / "zh",
    )
    assert report.to_dict()["edition"] == "zh" and report.to_dict()["notebooks_dir"] == "notebooks/zh"
    assert "Edition zh (Chinese, notebooks/zh); profile **quick**;" in report.to_markdown()
    assert report.exit_code == 0
    report.out_of_step.append(
        "notebooks/zh/01_concepts.ipynb is out of step with notebooks/01_concepts.ipynb"
    )
    assert report.exit_code == 1, "outputs that left a translation out of step did not finish its job"


# --------------------------------------------------------------------------------------
# Editions: which notebooks run
# --------------------------------------------------------------------------------------


def test_the_edition_chooses_the_notebooks_folder(tmp_path):
    assert notebooks_folder(None, None, in_place=False) == (ROOT / "notebooks", "en")
    assert notebooks_folder("zh", None, in_place=False) == (ROOT / "notebooks" / "zh", "zh")
    assert notebooks_folder(None, ROOT / "notebooks" / "zh", in_place=False)[1] == "zh"
    assert notebooks_folder(None, tmp_path, in_place=False) == (tmp_path, None)
    with pytest.raises(UsageError, match=r"--edition zh and --notebooks-dir .* both choose the notebooks"):
        notebooks_folder("zh", tmp_path, in_place=False)
    with pytest.raises(UsageError, match=r"both choose the notebooks"):
        run_notebooks(tmp_path, tmp_path / "runs", edition="zh")
    with pytest.raises(UsageError, match=r"no edition 'fr'; the editions are: en \(English, notebooks/\)"):
        notebooks_folder("fr", None, in_place=False)


def test_edition_and_notebooks_dir_together_are_refused(tmp_path, capsys):
    runs = tmp_path / "runs"
    for command in (["run", "--runs-dir", str(runs)], ["outputs", "--output-dir", str(runs)]):
        with pytest.raises(SystemExit) as exit_:
            main([*command, "--edition", "zh", "--notebooks-dir", str(tmp_path)])
        assert exit_.value.code == 2
        assert "argument --notebooks-dir: not allowed with argument --edition" in capsys.readouterr().err
    assert not runs.exists()


@pytest.mark.parametrize("choice", [["--edition", "zh"], ["--notebooks-dir", str(ROOT / "notebooks" / "zh")]])
def test_outputs_refuses_to_execute_a_translation(tmp_path, capsys, choice):
    status = main(["outputs", *choice, "--output-dir", str(tmp_path / "outputs")])
    assert status == 2
    error = capsys.readouterr().err
    assert "the Chinese notebooks (notebooks/zh/) are not executed" in error
    assert "copied from the English run" in error and "python -m course_utils editions sync" in error
    assert not (tmp_path / "outputs").exists()


def test_a_run_of_the_chinese_edition_runs_notebooks_zh_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(editions, "project_root", lambda: tmp_path)  # a course of two small notebooks
    plain_notebook(tmp_path / "notebooks", "01_first", "print('English')")
    plain_notebook(tmp_path / "notebooks" / "zh", "01_first", "print('中文')")
    runs = tmp_path / "runs"
    status = main(
        ["run", "--edition", "zh", "--profile", "smoke", "--runs-dir", str(runs), "--progress", "none"]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    zh = tmp_path / "notebooks" / "zh"
    assert f"Running 1 notebook(s) of edition zh (Chinese, {zh}) with profile smoke" in out
    assert f"Edition zh (Chinese, {zh}), profile smoke:" in out
    run_dir = only_run_folder(runs)
    summary = read_summary(run_dir)
    assert summary["edition"] == "zh" and summary["notebooks_dir"] == str(zh)
    assert summary["notebooks"][0]["metrics"]["cwd"] == str(zh), "the kernel ran the Chinese notebook"
    executed = nbformat.read(str(run_dir / "01_first.ipynb"), as_version=4)
    assert any(
        "中文" in output.get("text", "") for cell in executed.cells for output in cell.get("outputs", [])
    )
    assert f"Edition zh (Chinese, {zh}); profile **smoke**" in (run_dir / "summary.md").read_text()


# --------------------------------------------------------------------------------------
# Running notebooks (real kernels, through the command line)
# --------------------------------------------------------------------------------------


def test_a_run_executes_every_notebook_and_writes_the_summary(tmp_path):
    notebooks = tmp_path / "notebooks"
    recipe_notebook(notebooks, "01_concepts")
    recipe_notebook(notebooks, "02_lenet5_mnist")
    runs = tmp_path / "runs"
    # Another environment's "python3" kernelspec, first on the Jupyter path: the kernel must
    # still be this Python, with this environment's packages.
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    foreign = ["/elsewhere/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(
        json.dumps({"argv": foreign, "display_name": "other", "language": "python"})
    )
    started = time.perf_counter()
    result = run_cli(
        "run", "--notebooks-dir", str(notebooks), "--runs-dir", str(runs),
        "-p", "epochs", "2", "-p", "SEED", "0",
        env={"COURSE_PROFILE": "quick",  # --profile auto (the default) resolves to it
             "JUPYTER_PATH": str(tmp_path / "jupyter"),
             "COURSE_OVERRIDDEN": "LR"},  # left over in the shell: each notebook gets its own
    )  # fmt: skip
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_folder(runs)
    assert run_dir.name.endswith("-quick") and len(run_dir.name) == len("20250101-120000-quick")

    # Progress: a header per notebook, a line per cell (not a terminal), then the table.
    assert "[1/2] 01_concepts (quick) ..." in result.stdout
    assert "[2/2] 02_lenet5_mnist (quick) ..." in result.stdout
    assert "cell 3/4 (index 3): run = configure(" in result.stdout
    table = result.stdout[result.stdout.index("notebook ") :]
    first_row = table.splitlines()[1].split()
    assert first_row[:2] == ["01_concepts", "ok"] and first_row[3:] == [
        "87.50",
        "%",
        "61,706",
        "cpu",
        "quick",
    ]

    # The summary says which notebooks ran with -p values, and which.
    assert "\n01_concepts ran with -p SEED=0\n02_lenet5_mnist ran with -p EPOCHS=2, SEED=0\n" in result.stdout

    summary = read_summary(run_dir)
    # A folder that is no edition of the course: the summary names the folder instead.
    assert summary["edition"] is None and summary["notebooks_dir"] == str(notebooks)
    assert f"Running 2 notebook(s) of edition none (notebooks of {notebooks})" in result.stdout
    assert summary["profile"] == "quick" and summary["requested_profile"] == "auto"
    assert summary["exit_code"] == 0 and summary["parameters"] == {"EPOCHS": 2, "SEED": 0}
    assert summary["environment"]["python"] == sys.version.split()[0]  # what the timings were taken on
    assert [entry["notebook"] for entry in summary["notebooks"]] == ["01_concepts", "02_lenet5_mnist"]
    for entry in summary["notebooks"]:
        key, metrics = entry["notebook"], entry["metrics"]
        assert entry["status"] == "ok" and entry["error"] is None and 0 < entry["minutes"] < 5
        assert (run_dir / key / "metrics.json").is_file()
        assert metrics["profile"] == "quick" and metrics["requested_profile"] == "quick"  # PROFILE passed
        assert metrics["test_accuracy"] == 0.875 and metrics["parameters"] == 61706
        assert metrics["output_dir"] == str(run_dir) and metrics["output_dir_env"] == str(run_dir)
        # The kernel is this environment's Python, with text progress bars and headless Matplotlib,
        # working in the notebooks' folder (as in Jupyter).
        assert Path(metrics["executable"]).parent == Path(sys.executable).parent, metrics["executable"]
        assert metrics["progress"] == "text" and metrics["backend"] == "Agg"
        assert metrics["cwd"] == str(notebooks)
        assert entry["files"] == {"notebook": f"{key}.ipynb", "html": f"{key}.html"}
        assert "<html" in (run_dir / f"{key}.html").read_text()[:2000].lower()
    # EPOCHS went to the notebook that declares it, and nowhere else.
    assert summary["notebooks"][1]["parameters"] == {"EPOCHS": 2, "SEED": 0}
    assert summary["notebooks"][1]["metrics"]["epochs"] == 2
    assert summary["notebooks"][0]["parameters"] == {"SEED": 0}
    # COURSE_OVERRIDDEN names each notebook's own -p values (not the shell's); configure counts the
    # training settings among them as changed (SEED is not one).
    assert summary["notebooks"][1]["metrics"]["overridden_env"] == "EPOCHS,SEED"
    assert summary["notebooks"][0]["metrics"]["overridden_env"] == "SEED"
    assert summary["notebooks"][1]["metrics"]["overridden"] == ["epochs"]
    assert summary["notebooks"][0]["metrics"]["overridden"] == []
    markdown = (run_dir / "summary.md").read_text()
    assert "| [02_lenet5_mnist](02_lenet5_mnist.html) | ok |" in markdown and "87.50 %" in markdown
    # The executed notebook is saved, with the parameters injected as papermill does.
    executed = nbformat.read(str(run_dir / "02_lenet5_mnist.ipynb"), as_version=4)
    injected = [cell for cell in executed.cells if "injected-parameters" in cell.metadata.get("tags", [])]
    assert (
        len(injected) == 1
        and "EPOCHS = 2" in injected[0].source
        and 'PROFILE = "quick"' in injected[0].source
        and "SEED = 0" in injected[0].source
    )
    print(f"two recipe notebooks through the CLI: {seconds:.1f} s")


def failing_course(folder: Path) -> None:
    plain_notebook(folder, "01_fine")
    plain_notebook(
        folder,
        "02_broken",
        "print('preparing')",
        "# load the data\ndata = {}\nvalue = data['missing'] if False else None\n"
        "raise ValueError('boom: the data folder is empty\\n' + 'details ' * 400)",
    )
    plain_notebook(folder, "03_after")
    plain_notebook(folder, "04_killed", "import os\n\nos._exit(1)  # the kernel dies, as when out of memory")


def test_a_failure_names_the_notebook_and_cell_and_stops_the_run(tmp_path):
    notebooks, runs = tmp_path / "notebooks", tmp_path / "runs"
    failing_course(notebooks)
    result = run_cli("run", "--profile", "smoke", "--notebooks-dir", str(notebooks), "--runs-dir", str(runs))
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "FAILED" in out and "02_broken, cell index 4 (In [5]): `# load the data`" in out
    assert "ValueError: boom: the data folder is empty\n      details details" in out
    assert "Traceback" not in out + result.stderr  # the name and message, not the whole traceback
    assert len(out) < 5000  # the long message is shortened
    assert "The partly executed notebook (full traceback): " in out
    run_dir = only_run_folder(runs)
    summary = read_summary(run_dir)
    assert [(e["notebook"], e["status"]) for e in summary["notebooks"]] == [
        ("01_fine", "ok"),
        ("02_broken", "failed"),
        ("03_after", "not run"),
        ("04_killed", "not run"),
    ]
    error = summary["notebooks"][1]["error"]
    # Index 4 in the notebook as written; In [5] in the saved one (the injected parameters ran as In [2]).
    assert error["cell_index"] == 4 and error["execution_count"] == 5
    assert error["source"] == "# load the data" and error["ename"] == "ValueError"
    # The partly executed notebook is kept (with the traceback) and exported.
    executed = nbformat.read(str(run_dir / "02_broken.ipynb"), as_version=4)
    errors = [
        o
        for cell in executed.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if o.output_type == "error"
    ]
    assert errors and errors[0].ename == "ValueError"
    assert (run_dir / "02_broken.html").is_file()
    assert not (run_dir / "03_after.ipynb").exists()
    assert "02_broken** stopped at cell index 4" in (run_dir / "summary.md").read_text()


def test_keep_going_runs_the_rest_after_a_failure(tmp_path):
    notebooks, runs = tmp_path / "notebooks", tmp_path / "runs"
    failing_course(notebooks)
    result = run_cli(
        "run", "--profile", "smoke", "--keep-going", "--only", "2,03,04", "--log-output",
        "--notebooks-dir", str(notebooks), "--runs-dir", str(runs),
    )  # fmt: skip
    assert result.returncode == 1
    assert "preparing\n" in result.stdout  # --log-output: what the notebook prints, as it prints it
    summary = read_summary(only_run_folder(runs))
    assert [(e["notebook"], e["status"]) for e in summary["notebooks"]] == [
        ("02_broken", "failed"),
        ("03_after", "ok"),
        ("04_killed", "failed"),
    ]
    assert summary["notebooks"][2]["error"]["ename"] == "DeadKernelError"
    assert "04_killed, cell index 3" in result.stdout  # (In [4]) too when the kernel said it started the cell
    assert "DeadKernelError: Kernel died (out of memory? killed?)" in result.stdout


def test_a_notebook_past_its_timeout_is_stopped(tmp_path):
    notebooks, runs = tmp_path / "notebooks", tmp_path / "runs"
    plain_notebook(notebooks, "01_slow", "import time\n\ntime.sleep(600)")
    started = time.perf_counter()
    result = run_cli(
        "run", "--profile", "smoke", "--timeout", "0.1",
        "--notebooks-dir", str(notebooks), "--runs-dir", str(runs),
    )  # fmt: skip
    assert result.returncode == 1
    assert time.perf_counter() - started < 120
    assert "TIMEOUT" in result.stdout and "01_slow, cell index 3 (In [4]): `import time`" in result.stdout
    assert "Timeout: the notebook ran longer than --timeout 0.1 min" in result.stdout
    run_dir = only_run_folder(runs)
    entry = read_summary(run_dir)["notebooks"][0]
    assert entry["status"] == "timeout" and entry["error"]["ename"] == "Timeout"
    assert (run_dir / "01_slow.ipynb").is_file() and (run_dir / "01_slow.html").is_file()


def test_relative_folders_are_read_from_where_the_command_runs(tmp_path):
    # The kernels run in the notebooks' folder: relative paths must reach them made absolute.
    write_notebook(
        tmp_path / "course" / "01_paths.ipynb",
        'PROFILE = "auto"\nDATA_DIR = None\nOUTPUT_DIR = None',
        "import json\nimport os\nfrom pathlib import Path",
        'seen = {"data_dir": DATA_DIR, "data_env": os.environ["COURSE_DATA_DIR"], "output_dir": OUTPUT_DIR}\n'
        'Path(OUTPUT_DIR, "01_paths").mkdir()\n'
        'Path(OUTPUT_DIR, "01_paths", "metrics.json").write_text(json.dumps(seen))',
    )
    relative = {"COURSE_DATA_DIR": "shared-data", "COURSE_OUTPUT_DIR": "my-outputs"}
    result = run_cli(
        "run", "--profile", "smoke", "--notebooks-dir", "course", "-p", "DATA_DIR", "given-data",
        env=relative, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = only_run_folder(tmp_path / "my-outputs" / "runs")  # $COURSE_OUTPUT_DIR/runs, here
    assert "(from COURSE_OUTPUT_DIR=my-outputs)" in result.stdout  # which setting chose the folder
    seen = read_summary(run_dir)["notebooks"][0]["metrics"]
    assert seen == {
        "data_dir": str(tmp_path / "given-data"),
        "data_env": str(tmp_path / "shared-data"),
        "output_dir": str(run_dir),
    }
    # --runs-dir, relative too, wins over COURSE_OUTPUT_DIR.
    result = run_cli(
        "run",
        "--profile",
        "smoke",
        "--notebooks-dir",
        "course",
        "--runs-dir",
        "runs",
        env=relative,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and "(from --runs-dir)" in result.stdout, result.stdout + result.stderr
    assert read_summary(only_run_folder(tmp_path / "runs"))["notebooks"][0]["status"] == "ok"
    assert len(list((tmp_path / "my-outputs" / "runs").iterdir())) == 1


def test_the_summary_names_the_model_behind_the_headline_accuracy(tmp_path):
    notebooks, runs = tmp_path / "notebooks", tmp_path / "runs"
    # Of the several models a notebook compares, the headline names the one whose accuracy it quotes.
    metrics = {"test_accuracy": 0.9912, "headline": {"model": "row LSTM", "accuracy": 0.9858}}
    write_notebook(
        notebooks / "04_compare.ipynb",
        'PROFILE = "auto"\nOUTPUT_DIR = None',
        "import json\nfrom pathlib import Path",
        f'Path(OUTPUT_DIR, "04_compare").mkdir()\nmetrics = {metrics!r}\n'
        'Path(OUTPUT_DIR, "04_compare", "metrics.json").write_text(json.dumps(metrics))',
    )
    result = run_cli("run", "--profile", "smoke", "--notebooks-dir", str(notebooks), "--runs-dir", str(runs))
    assert result.returncode == 0, result.stdout + result.stderr
    row = result.stdout[result.stdout.index("notebook ") :].splitlines()[1].split()
    assert row[:2] == ["04_compare", "ok"] and row[3:] == ["row", "LSTM", "98.58", "%"]
    assert "| row LSTM 98.58 % |" in (only_run_folder(runs) / "summary.md").read_text()


def sleeping_cell(marker: Path) -> str:
    """A cell that writes the kernel's process id to ``marker``, then sleeps for ten minutes."""
    return f"import time\n\nPath({str(marker)!r}).write_text(str(os.getpid()))\ntime.sleep(600)"


def restore_default_signal_actions() -> None:
    """In the child, before it runs: Ctrl-C, SIGTERM and SIGHUP do what they do in a terminal."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def interrupt_when_started(
    command: list[str],
    marker: Path,
    delay: float,
    signum: int = signal.SIGINT,
    env: dict[str, str] | None = None,
    hang_up: bool = False,
    before_signal: Callable[[], None] = lambda: None,
) -> tuple[int, str]:
    """Start ``python -m course_utils`` + ``command``; send ``signum`` (Ctrl-C's SIGINT) ``delay`` s
    after ``marker`` appears, having called ``before_signal``.

    ``hang_up``: first close the pipe the runner prints into, as when the terminal or SSH session it
    printed to is gone (its output is then lost: the result has none). Returns the exit status and
    the output. Fails if the process does not stop within two minutes of the signal, or if the kernel
    that wrote ``marker`` outlives it.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "course_utils", *command],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A shell without job control starts background jobs with SIGINT ignored, `nohup` starts
        # them with SIGHUP ignored, and the child would inherit that (`bash .ci/run &` did); the
        # runner rightly leaves an ignored signal ignored. Give the three signals their default
        # action, as in a terminal.
        preexec_fn=restore_default_signal_actions,
    )
    out = ""
    try:
        deadline = time.monotonic() + 300
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not marker.exists():
            process.kill()
            pytest.fail(f"the sleeping notebook never started:\n{process.communicate()[0][-4000:]}")
        time.sleep(delay)
        before_signal()
        if hang_up:
            process.stdout.close()
        process.send_signal(signum)
        try:
            if hang_up:
                process.wait(timeout=120)
            else:
                out = process.communicate(timeout=120)[0]
        except subprocess.TimeoutExpired:
            pytest.fail(f"the runner did not stop within 2 minutes of {signal.Signals(signum).name}")
    finally:
        if process.poll() is None:
            process.kill()
    kernel_pid = int(marker.read_text())
    for _ in range(50):
        try:
            os.kill(kernel_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"kernel {kernel_pid} still running after the runner stopped")
    return process.returncode, out


# Ctrl-C at several moments of a busy cell (waiting for output, or between messages).
@pytest.mark.parametrize("delay", [0.0, 0.3, 1.0])
def test_ctrl_c_marks_the_notebook_interrupted_and_keeps_what_finished(tmp_path, delay):
    notebooks, runs = tmp_path / "notebooks", tmp_path / "runs"
    marker = tmp_path / "kernel.pid"
    plain_notebook(notebooks, "01_fine")
    plain_notebook(notebooks, "02_long", sleeping_cell(marker))
    plain_notebook(notebooks, "03_never")
    returncode, out = interrupt_when_started(
        ["run", "--profile", "smoke", "--notebooks-dir", str(notebooks), "--runs-dir", str(runs)],
        marker,
        delay,
    )
    assert returncode == 130, out
    assert "INTERRUPTED after " in out and ": 02_long, cell index 3" in out and ": `import time`" in out
    assert "KeyboardInterrupt: stopped by Ctrl-C" in out
    summary = read_summary(only_run_folder(runs))
    assert [(e["notebook"], e["status"]) for e in summary["notebooks"]] == [
        ("01_fine", "ok"),
        ("02_long", "interrupted"),
        ("03_never", "not run"),
    ]
    assert summary["notebooks"][0]["metrics"] is not None and summary["exit_code"] == 130
    # The partly executed notebook is kept, with the cells that finished.
    kept = nbformat.read(str(only_run_folder(runs) / "02_long.ipynb"), as_version=4)
    code = [cell for cell in kept.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code[:3]] == [1, 2, 3]


# SIGTERM: `timeout`, a scheduler, kill. SIGHUP: the terminal or SSH session closed (its pipe is gone).
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_the_run_as_ctrl_c_does(tmp_path, signum):
    notebooks, runs, temporary = tmp_path / "notebooks", tmp_path / "runs", tmp_path / "tmp"
    temporary.mkdir()
    marker = tmp_path / "kernel.pid"
    plain_notebook(notebooks, "01_fine")
    plain_notebook(notebooks, "02_long", sleeping_cell(marker))
    plain_notebook(notebooks, "03_never")

    def kernel_connection_files() -> list[Path]:
        return list(temporary.glob("*.json"))

    def connection_file_is_there() -> None:
        assert kernel_connection_files(), f"the kernel wrote no connection file into {temporary}"

    returncode, out = interrupt_when_started(
        ["run", "--profile", "smoke", "--notebooks-dir", str(notebooks), "--runs-dir", str(runs)],
        marker,
        0.3,
        signum=signum,
        env={"TMPDIR": str(temporary)},  # where jupyter_client writes the kernel's connection file
        hang_up=signum == signal.SIGHUP,
        before_signal=connection_file_is_there,
    )
    name = signal.Signals(signum).name
    assert returncode == 128 + signum, out  # 143 for SIGTERM, 129 for SIGHUP, as a shell reports them
    if signum == signal.SIGTERM:  # (after SIGHUP nobody is there to read)
        assert "INTERRUPTED after " in out and ": 02_long, cell index 3" in out
        assert "SIGTERM: stopped by SIGTERM (timeout, a scheduler or kill)" in out
    run_dir = only_run_folder(runs)
    summary = read_summary(run_dir)
    assert [(e["notebook"], e["status"]) for e in summary["notebooks"]] == [
        ("01_fine", "ok"),
        ("02_long", "interrupted"),
        ("03_never", "not run"),
    ]
    assert summary["exit_code"] == 128 + signum and summary["notebooks"][1]["error"]["ename"] == name
    assert "| [02_long](02_long.html) | interrupted |" in (run_dir / "summary.md").read_text()
    kept = nbformat.read(str(run_dir / "02_long.ipynb"), as_version=4)
    assert [cell.execution_count for cell in kept.cells if cell.cell_type == "code"][:3] == [1, 2, 3]
    assert "<html" in (run_dir / "02_long.html").read_text()[:2000].lower()
    assert not kernel_connection_files(), "the kernel was not shut down cleanly"


def test_ctrl_c_during_outputs_leaves_the_notebook_unchanged(tmp_path):
    notebooks, outputs = tmp_path / "notebooks", tmp_path / "outputs"
    marker = tmp_path / "kernel.pid"
    long = plain_notebook(notebooks, "01_long", sleeping_cell(marker))
    original = long.read_bytes()
    returncode, out = interrupt_when_started(
        ["outputs", "--profile", "smoke", "--notebooks-dir", str(notebooks), "--output-dir", str(outputs)],
        marker,
        0.3,
    )
    assert returncode == 130, out
    assert "01_long.ipynb is unchanged; the failed execution is in " in out
    assert long.read_bytes() == original
    assert (outputs / "failed-01_long.ipynb").is_file()


# --------------------------------------------------------------------------------------
# make outputs: in place
# --------------------------------------------------------------------------------------


def test_outputs_regenerates_notebooks_in_place_and_keeps_a_failing_one_unchanged(tmp_path):
    notebooks, outputs = tmp_path / "notebooks", tmp_path / "outputs"
    fine = plain_notebook(notebooks, "01_fine", "print('hello')", "6 * 7")
    broken = plain_notebook(notebooks, "02_broken", "raise RuntimeError('no data')")
    before = nbformat.read(str(fine), as_version=4)
    broken_bytes = broken.read_bytes()

    result = run_cli(
        "outputs", "--profile", "smoke", "--keep-going",
        "--notebooks-dir", str(notebooks), "--output-dir", str(outputs),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[1/2] 01_fine (smoke) ..." in result.stdout and "ok in " in result.stdout
    assert "FAILED" in result.stdout and "RuntimeError: no data" in result.stdout

    after = nbformat.read(str(fine), as_version=4)
    assert [cell.id for cell in after.cells] == [cell.id for cell in before.cells]
    assert [cell.metadata for cell in after.cells] == [cell.metadata for cell in before.cells]
    assert [cell.source for cell in after.cells] == [
        cell.source for cell in before.cells
    ]  # PROFILE stays "auto"
    code = [cell for cell in after.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert code[2].outputs[0].text == "hello\n" and code[3].outputs[0].data["text/plain"] == "42"
    assert "papermill" not in after.metadata
    metrics = json.loads((outputs / "01_fine" / "metrics.json").read_text())
    assert metrics["course_profile_env"] == "smoke" and metrics["profile"] == "auto"
    assert metrics["cwd"] == str(notebooks)

    assert broken.read_bytes() == broken_bytes  # unchanged
    failed = nbformat.read(str(outputs / "failed-02_broken.ipynb"), as_version=4)
    assert any(o.output_type == "error" for cell in failed.cells for o in cell.get("outputs", []))


def test_outputs_copies_the_new_outputs_into_the_translations(tmp_path):
    notebooks, outputs = tmp_path / "notebooks", tmp_path / "outputs"
    fine = plain_notebook(notebooks, "01_fine", "print('hello')")
    odd = plain_notebook(notebooks, "02_odd", "6 * 7")
    translations = {}
    for english in (fine, odd):
        notebook = read_notebook(english)
        text = {cell.id: f"# 中文 {english.stem}" for cell in notebook.cells if cell.cell_type == "markdown"}
        translations[english.stem] = text
        (notebooks / "zh").mkdir(exist_ok=True)
        (notebooks / "zh" / english.name).write_text(notebook_text(build_translated(notebook, text)))
    # 02's translation has a paragraph the English notebook lacks: its cells cannot be matched.
    odd_zh = nbformat.read(str(notebooks / "zh" / odd.name), as_version=4)
    odd_zh.cells.append(new_markdown_cell("多出来的一段。", id="extra"))
    nbformat.write(odd_zh, str(notebooks / "zh" / odd.name))
    odd_zh_bytes = (notebooks / "zh" / odd.name).read_bytes()

    result = run_cli(
        "outputs", "--profile", "smoke", "--notebooks-dir", str(notebooks), "--output-dir", str(outputs),
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 1, out + result.stderr  # both ran, one translation is out of step
    assert f"Chinese edition: {notebooks / 'zh' / fine.name}, code cells and outputs copied into it" in out
    assert check_edition(fine, notebooks / "zh" / fine.name) == []
    synced = read_notebook(notebooks / "zh" / fine.name)
    printed = [o.text for c in synced.cells if c.cell_type == "code" for o in c.outputs if "text" in o]
    assert printed == ["hello\n"], "the output of the English run"
    assert synced.cells[0].source == "# 中文 01_fine", "the translation keeps its own markdown"

    assert "NOT SYNCED:" in out and "'extra'" in out and "is only in the translation" in out
    assert (notebooks / "zh" / odd.name).read_bytes() == odd_zh_bytes
    [answer] = [cell for cell in read_notebook(odd).cells if cell.source == "6 * 7"]
    assert answer.outputs[0].data["text/plain"] == "42", "the English notebook was rewritten all the same"
    assert f"NOT IN STEP: {notebooks / 'zh' / odd.name} is out of step with {odd}" in out


# --------------------------------------------------------------------------------------
# The real course, end to end, under the smoke profile
# --------------------------------------------------------------------------------------


def test_the_whole_course_runs_under_the_smoke_profile(tmp_path):
    if not os.environ.get("COURSE_DATA_DIR"):
        pytest.skip("COURSE_DATA_DIR is not set: the real course needs MNIST and CIFAR-10")
    missing = [key for key in COURSE_NOTEBOOKS if not (ROOT / "notebooks" / f"{key}.ipynb").is_file()]
    if missing:
        pytest.skip(f"the notebooks folder does not hold {', '.join(missing)} yet")
    runs = tmp_path / "runs"
    started = time.perf_counter()
    result = run_cli("run", "--profile", "smoke", "--runs-dir", str(runs), timeout=1800)
    minutes = (time.perf_counter() - started) / 60
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    run_dir = only_run_folder(runs)
    summary = read_summary(run_dir)
    assert summary["profile"] == "smoke" and summary["exit_code"] == 0
    assert [entry["notebook"] for entry in summary["notebooks"]] == list(COURSE_NOTEBOOKS)
    for entry in summary["notebooks"]:
        key, metrics = entry["notebook"], entry["metrics"]
        assert entry["status"] == "ok", entry
        assert isinstance(metrics, dict), f"{key} wrote no metrics.json"
        assert metrics["notebook"] == key and metrics["profile"] == "smoke"
        if key != "01_concepts":  # 01 trains nothing
            assert 0 < metrics["test_accuracy"] <= 1, metrics
            assert isinstance(metrics["parameters"], int) and metrics["parameters"] > 0
        assert (run_dir / f"{key}.ipynb").is_file() and (run_dir / f"{key}.html").is_file()
    assert (run_dir / "summary.md").is_file()
    print(f"the whole course under the smoke profile: {minutes:.1f} min")
