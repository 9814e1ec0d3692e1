"""The Colab install check (benchmarks/colab_install_check.py), its record and Colab's versions.

Nothing is resolved here (that needs PyPI): these tests read ``benchmarks/results/colab_packages.txt``
(what Colab ships) and ``benchmarks/results/colab_install_check.json`` (what pip said installing the
course into it would do), and hold the record to the current ``pyproject.toml``.
"""

import json
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from benchmarks.colab_install_check import compare, read_colab_packages

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "benchmarks" / "results" / "colab_install_check.json"
RERUN = "rerun: python benchmarks/colab_install_check.py --python python3.13 --out benchmarks/results"


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def test_colab_ships_versions_the_course_accepts():
    colab, record = read_colab_packages()
    assert {"repository", "file", "commit", "date", "python", "glibc"} <= record.keys()
    for requirement in runtime_requirements():
        name = requirement.name.lower()
        assert name in colab, f"{name} is a runtime dependency but has no line in colab_packages.txt"
        assert Version(colab[name]) in requirement.specifier, (
            f"Colab ships {name} {colab[name]}, outside the course's {requirement}: the first cell would "
            "replace it on Colab"
        )


def test_record_was_made_from_this_list_and_these_dependencies():
    colab, colab_record = read_colab_packages()
    record = json.loads(RECORD.read_text())
    assert record["colab_record"]["commit"] == colab_record["commit"], RERUN
    assert {name: row["colab"] for name, row in record["packages"].items() if row["colab"]} == colab, RERUN
    assert sorted(record["course_requires"]) == sorted(r.name.lower() for r in runtime_requirements()), RERUN


def test_record_shows_no_colab_package_replaced():
    record = json.loads(RECORD.read_text())
    wanted = {r.name.lower() for r in runtime_requirements()}
    rows = record["packages"]
    assert all(rows[name]["would"] == "keep" for name in wanted), {name: rows[name] for name in wanted}
    assert not [name for name, row in rows.items() if row["would"] == "replace"]


def test_compare_names_what_the_install_would_do():
    colab = {"torch": "2.11.0+cu128", "numpy": "2.1.3", "notebook": "6.5.7"}
    resolved = {
        "torch": "2.11.0",
        "numpy": "2.4.0",
        "jedi": "0.20.1",
        "nvidia-cublas": "13.1.0.3",
        "course": "0.1",
    }
    would = {name: row["would"] for name, row in compare(colab, resolved, "course").items()}
    assert would == {
        "torch": "keep",  # +cu128 is a local label: 2.11.0+cu128 satisfies ==2.11.0
        "numpy": "replace",
        "notebook": "untouched",
        "jedi": "install",
        "nvidia-cublas": "not compared",
        "course": "install the course",
    }
