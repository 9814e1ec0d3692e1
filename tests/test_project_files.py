"""The project's own set-up files agree with each other."""

import os
import re
import sys
from importlib.metadata import version
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
    extras = project["optional-dependencies"]
    # dev names the other extras it installs (course-utils[batch], ...): their packages count too.
    included = [extras[r.split("[")[1].rstrip("]")] for r in extras["dev"] if _name(r) == project["name"]]
    listed_in_pyproject = project["dependencies"] + extras["dev"] + sum(included, [])
    wanted = {_name(r): r for r in listed_in_pyproject if _name(r) != project["name"]}
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


JUPYTER_PACKAGES = (
    "jupyterlab",
    "notebook",
    "ipykernel",
    "jupyter",
    "nbconvert",
    "nbclient",
    "papermill",
    "nbval",
)


def test_runtime_dependencies_are_only_what_the_notebooks_import():
    """Colab pins its Jupyter packages: installing the course there must not replace them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    assert runtime == {"torch", "torchvision", "numpy", "matplotlib", "tqdm", "ipywidgets"}
    extras = project["optional-dependencies"]
    assert "course-utils[batch]" in extras["dev"], "make test must also install the batch tools"
    assert {"pytest", "ruff", "nbval"} <= {_name(r) for r in extras["dev"]}
    assert not {_name(r) for r in extras["batch"]} & {"pytest", "ruff", "nbval", "jupyterlab"}


def test_binder_installs_the_cpu_build_of_pytorch_and_no_dev_tools():
    requirements = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    lines = [line.strip() for line in requirements if line.strip() and not line.startswith("#")]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "-e ." in lines  # the runtime dependencies only: no [dev] or [batch] extra
    names = {_name(line) for line in lines if not line.startswith("-")}
    assert names == {"torch", "torchvision"}
    # Pinned to a "+cpu" build, which exists only on PyTorch's CPU index: pip cannot pick a CUDA wheel.
    pins = [line for line in lines if line.startswith(("torch==", "torchvision=="))]
    assert len(pins) == 2 and all(line.endswith("+cpu") for line in pins), pins
    installed = {"torch": version("torch"), "torchvision": version("torchvision")}
    for line in pins:  # the versions the course is tested with (the local build label aside)
        name, pinned = line.split("==")
        assert pinned.split("+")[0] == installed[name].split("+")[0], (line, installed[name])


def test_binder_fetches_the_datasets_when_it_builds_the_image():
    post_build = ROOT / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "repo2docker runs binder/postBuild only when it is executable"
    text = post_build.read_text()
    assert "load_dataset('mnist')" in text and "load_dataset('cifar10')" in text


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


def test_missing_data_stops_the_test_session_with_one_message(tmp_path):
    """A machine without the datasets (and without internet) gets one message, not dozens of failures."""
    import os
    import subprocess

    empty = tmp_path / "no-data-here"
    env = dict(os.environ, COURSE_DATA_DIR=str(empty))
    # A closed local port as proxy: torchvision's download fails at once, as it would offline.
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9", no_proxy="")
    env.update(HTTP_PROXY=env["http_proxy"], HTTPS_PROXY=env["https_proxy"])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "notebooks/01_concepts.ipynb"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "could not get them" in output and str(empty) in output
    assert "mnist.npz" in output and "cifar10.npz" in output and "install.sh" in output
    assert "passed" not in output and "failed" not in output.replace("download failed", "")


def test_make_lab_starts_as_root_too():
    """JupyterLab refuses root unless told --allow-root; containers often run as root."""
    import os
    import subprocess

    printed = subprocess.run(
        ["make", "-n", "lab", "LAB_ARGS=--no-browser"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    lab_line = next(line for line in printed.splitlines() if "jupyter lab" in line)
    assert "--no-browser" in lab_line
    assert ("--allow-root" in lab_line) == (os.geteuid() == 0)
