"""The project's own set-up files agree with each other."""

import re
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = {}
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            for requirement in entry["pip"]:
                if not requirement.startswith("-e"):
                    listed[_name(requirement)] = requirement
        elif _name(entry) not in ("python", "pip"):
            listed[_name(entry)] = entry
    assert set(listed) == set(wanted)
    for name, requirement in wanted.items():
        # Same version range, written the same way (conda and pip share this syntax here).
        assert re.sub(r"\s", "", listed[name]).lower() == re.sub(r"\s", "", requirement).lower(), name


def test_environment_yml_installs_this_repository():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict))
    assert "-e ." in pip_section


def test_python_versions_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10,<3.14"
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python>=3.10,<3.14" in environment["dependencies"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci and "install.sh" in ci and "COURSE_DATA_DIR" in ci
    assert "make test" in readme and "make course" in readme
