"""Static checks of the committed notebooks: fast, nothing is executed but the install cell.

Every notebook follows the same shape (see the course's conventions), and its stored
outputs are what a reader sees on the repository page, so they must come from one clean
top-to-bottom run: no errors, no paths of the machine they ran on.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from course_utils.settings import RECIPES, recipe

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
EXPECTED = (
    "01_concepts", "02_lenet5_mnist", "03_resnet20_cifar10", "04_cnn_vs_rnn", "05_sequences_attention"
)  # fmt: skip
REPOSITORY = "open-courses/cnn-rnn-pytorch"
# The install cell installs the release the notebook belongs to: the tag v<version> of pyproject.toml
# (the README's release process bumps both together), so a notebook opened from a tag gets its package.
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
INSTALL_URL = f"git+https://github.com/{REPOSITORY}@v{VERSION}"
# Parameters that configure() takes as arguments rather than as recipe settings.
COMMON_PARAMETERS = {"PROFILE", "SEED", "DEVICE", "DATA_DIR", "OUTPUT_DIR"}

# Absolute paths of a machine: Unix home and work folders, macOS, Windows drives.
MACHINE_PATH = re.compile(
    r"(?<![\w.~-])/(?:work|home|tmp|Users|root|private|var/folders|mnt|scratch|opt|srv)/"
    r"|(?<![A-Za-z])[A-Za-z]:\\{1,2}[\w.$ -]"
)
# Output types whose payload is text a reader sees (images are base64: '/' occurs by chance).
TEXT_MIME_TYPES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")


def load(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def output_texts(output: dict[str, Any]) -> list[str]:
    """The text a stored output shows: a stream, an error, or the text forms of a result."""
    if output["output_type"] == "stream":
        return [output.get("text", "")]
    if output["output_type"] == "error":
        return [output.get("ename", ""), output.get("evalue", ""), *output.get("traceback", [])]
    data = output.get("data", {})
    texts = []
    for mime in TEXT_MIME_TYPES:
        if mime in data:
            value = data[mime]
            texts.append(json.dumps(value) if mime == "application/json" else "".join(value))
    return texts


def parameters_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]


def notebook_id(path: Path) -> str:
    return path.name


def test_the_five_notebooks_of_the_course_exist():
    present = {path.stem for path in NOTEBOOKS}
    missing = [name for name in EXPECTED if name not in present]
    assert not missing, f"missing notebooks: {', '.join(missing)}"


each_notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)


@each_notebook
def test_outputs_come_from_one_top_to_bottom_run(path):
    counts = [cell.execution_count for cell in code_cells(load(path))]
    assert counts == list(range(1, len(counts) + 1)), (
        f"execution counts {counts}: re-run the notebook top to bottom (make outputs)"
    )


@each_notebook
def test_no_stored_output_is_an_error(path):
    for index, cell in enumerate(load(path).cells):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"cell {index} stores an error: {output.get('ename')}"
            text = "\n".join(output_texts(output))
            assert "Traceback (most recent call last)" not in text, f"cell {index} stores a traceback"


@each_notebook
def test_no_stored_output_holds_a_path_of_this_machine(path):
    own = [str(ROOT), str(Path.home())]
    for index, cell in enumerate(load(path).cells):
        for output in cell.get("outputs", []):
            for text in output_texts(output):
                match = MACHINE_PATH.search(text)
                context = "" if match is None else text[max(0, match.start() - 40) : match.end() + 40]
                assert match is None, f"cell {index} shows a machine path: {context!r}"
                for folder in own:  # not inside a relative path: outputs/root/ is a login name, not /root
                    shown = re.search(rf"(?<![\w.-]){re.escape(folder)}(?![\w-])", text)
                    assert shown is None, f"cell {index} shows the path {folder}"


@pytest.mark.parametrize(
    ("text", "has_path"),
    [
        ("saved to /work/main/outputs/x.pt", True),
        ("data dir    : /home/ada/data", True),
        ("C:\\Users\\ada\\data", True),
        ("'C:\\\\Users\\\\ada'", True),
        ("/tmp/course-test-outputs-x/metrics.json", True),
        ("saved to outputs/02_lenet5_mnist/metrics.json", False),
        ("https://github.com/home/work/ and https://example.org/tmp/", False),
        ("ratio 3/4, accuracy 99.1 %, time 0:01:02", False),
        ("<Figure size 640x480 with 2 Axes>", False),
    ],
)
def test_the_machine_path_check_itself(text, has_path):
    assert (MACHINE_PATH.search(text) is not None) == has_path


@each_notebook
def test_the_first_cell_has_the_title_and_badges_for_this_notebook(path):
    first = load(path).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith("# "), "the first cell starts with the title"
    colab = (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{path.name})"
    )
    binder = (
        "[![Binder](https://mybinder.org/badge_logo.svg)]"
        f"(https://mybinder.org/v2/gh/{REPOSITORY}/main?labpath=notebooks%2F{path.name})"
    )
    assert colab in first.source
    assert binder in first.source


@each_notebook
def test_the_second_cell_is_the_install_cell_shared_by_every_notebook(path):
    second = load(path).cells[1]
    assert second.cell_type == "code"
    assert 'find_spec("course_utils") is None' in second.source and INSTALL_URL in second.source
    reference = load(NOTEBOOKS[0]).cells[1].source
    assert second.source == reference, f"the install cell differs from {NOTEBOOKS[0].name}'s"


@each_notebook
def test_one_parameters_cell_of_simple_assignments_that_configure_accepts(path):
    cells = parameters_cells(load(path))
    assert len(cells) == 1, f"{len(cells)} cells are tagged 'parameters'; papermill needs exactly one"
    cell = cells[0]
    assert cell.cell_type == "code"
    names = []
    for statement in ast.parse(cell.source).body:
        assert isinstance(statement, ast.Assign) and len(statement.targets) == 1, (
            f"line {statement.lineno}: only NAME = value assignments belong in the parameters cell"
        )
        target = statement.targets[0]
        assert isinstance(target, ast.Name), f"line {statement.lineno}: assign to a plain name"
        ast.literal_eval(statement.value)  # a literal: papermill can override it, a reader can read it
        names.append(target.id)
    assert len(names) == len(set(names)), f"a parameter is assigned twice: {names}"
    assert re.search(r'^PROFILE = "auto"', cell.source, flags=re.MULTILINE), 'the cell sets PROFILE = "auto"'
    key = path.stem
    assert key in RECIPES, f"no recipe {key!r} in course_utils.settings.RECIPES"
    settings = set(recipe(key, "smoke")[0])
    unknown = [name for name in names if name not in COMMON_PARAMETERS and name.lower() not in settings]
    assert not unknown, f"configure({key!r}) does not accept {unknown}; its settings: {sorted(settings)}"


# The install cell, executed in a subprocess of this Python as IPython would run it (its
# `%pip` line becomes a get_ipython().run_line_magic call, recorded here instead of run) and,
# for the second case, with course_utils made to look missing.
INSTALL_PROBE = """
import importlib.util
import json
import sys

from IPython.core.inputtransformer2 import TransformerManager

calls = []


class RecordingShell:
    def run_line_magic(self, name, line):
        calls.append({"magic": name, "line": line})


if sys.argv[2] == "missing":
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "course_utils" else real_find_spec(name, *args, **kwargs)

    importlib.util.find_spec = find_spec
python = TransformerManager().transform_cell(open(sys.argv[1]).read())
exec(compile(python, "install cell", "exec"), {"get_ipython": RecordingShell})
print(json.dumps({"calls": calls}))
"""


def run_install_cell(tmp_path: Path, notebook: Path, case: str) -> dict[str, Any]:
    source = tmp_path / "install_cell.py"
    source.write_text(load(notebook).cells[1].source)
    result = subprocess.run(
        [sys.executable, "-c", INSTALL_PROBE, str(source), case],
        cwd=tmp_path,  # not the repository: course_utils must be found as installed
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@each_notebook
def test_the_install_cell_does_nothing_where_course_utils_is_installed(tmp_path, path):
    assert run_install_cell(tmp_path, path, "present")["calls"] == []


@each_notebook
def test_the_install_cell_installs_this_repository_where_course_utils_is_missing(tmp_path, path):
    probe = run_install_cell(tmp_path, path, "missing")
    # %pip installs with the kernel's own Python, so the package lands where the notebook imports from
    assert probe["calls"] == [{"magic": "pip", "line": f"install --quiet {INSTALL_URL}"}]


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem[:2] in ("03", "04")], ids=notebook_id)
def test_the_training_heavy_notebooks_ask_colab_for_a_gpu(path):
    """Without an accelerator in its metadata, Colab opens a notebook on a CPU runtime (auto = quick)."""
    metadata = load(path).metadata
    assert metadata.get("accelerator") == "GPU"
    assert metadata.get("colab", {}).get("gpuType")


@each_notebook
def test_code_cells_are_short_and_write_no_prose(path):
    """A reader takes a cell in at a glance; conclusions are markdown, not text that code assembles."""
    for index, cell in enumerate(code_cells(load(path))):
        lines = cell.source.splitlines()
        assert len(lines) <= 50, f"code cell {index} has {len(lines)} lines (at most 50): split it"
        assert "Markdown(" not in cell.source, f"code cell {index} writes markdown: make it a markdown cell"


@each_notebook
def test_metrics_are_written_by_one_call(path):
    sources = [cell.source for cell in code_cells(load(path))]
    calls = sum(source.count("run.write_metrics(") for source in sources)
    assert calls <= 1, f"{calls} calls of run.write_metrics: one call writes everything a batch run collects"


@pytest.mark.parametrize("edition", ["", "zh"])
def test_notebook_02_prose_quotes_the_regularisation_run_it_stores(edition):
    """§9's "What to notice" quotes the table its experiment stored: every decimal in the prose is in the
    table, or is the shifts' gain over no regularisation (a rerun changes the table; then this fails)."""
    cells = {cell.id: cell for cell in load(NOTEBOOKS_DIR / edition / "02_lenet5_mnist.ipynb").cells}
    table = "".join(text for output in cells["5e0a1c11"].outputs for text in output_texts(output))
    rows = {line.split("  ")[0]: line.split() for line in table.splitlines() if "%" in line}
    val_accuracy = {name: float(row[-6].rstrip("%")) for name, row in rows.items()}  # the 4th column
    gain = val_accuracy["shifts of up to 2 px"] - val_accuracy["none"]
    quoted = re.findall(r"\d+\.\d+", cells["5e0a1c13"].source)
    assert len(quoted) >= 12, quoted
    for number in quoted:
        assert number in table or number == f"{gain:.2f}", f"{number} is not in the stored table:\n{table}"
