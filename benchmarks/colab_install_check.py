"""Does the notebooks' first cell leave a Colab-like Jupyter installation alone?

Colab pins its own Jupyter packages (an older ``ipykernel``, the classic ``notebook``,
``ipywidgets`` 7). The first cell of every notebook installs this repository's package when
it is missing. This script builds a fresh virtual environment holding those older packages,
then asks pip what installing this repository would do (``pip install --dry-run --report``,
the same resolution the first cell's ``%pip install`` makes, without installing) and lists
every package that would be installed or replaced. It passes when none of the pre-installed
Jupyter packages would change.

Usage: ``python benchmarks/colab_install_check.py [--out benchmarks/results]`` (needs access to
the package index for the old versions; about a minute).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Versions as a Colab runtime shipped them (2024-2025); any older Jupyter stack does.
COLAB_LIKE = {"ipykernel": "6.17.1", "notebook": "6.5.5", "ipywidgets": "7.7.1", "jupyter-client": "6.1.12"}


def _normalised(name: str) -> str:
    return name.lower().replace("_", "-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for colab_install_check.json")
    parser.add_argument(
        "--project", type=Path, default=ROOT, help="the checkout to install (default: this one)"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="colab-like-") as folder:
        venv = Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
        pins = [f"{name}=={version}" for name, version in COLAB_LIKE.items()]
        subprocess.run([*pip, "install", "--quiet", *pins], check=True)
        report_path = Path(folder) / "report.json"
        subprocess.run(
            [*pip, "install", "--quiet", "--dry-run", "--report", str(report_path), str(args.project)],
            check=True,
        )
        report = json.loads(report_path.read_text())
    would_install = {
        _normalised(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]
    }
    changed = {name: would_install[name] for name in map(_normalised, COLAB_LIKE) if name in would_install}
    jupyter_like = sorted(
        name for name in would_install if name.startswith(("jupyter", "nb", "ipy", "notebook", "papermill"))
    )
    result = {
        "preinstalled": COLAB_LIKE,
        "would_install": would_install,
        "preinstalled_that_would_change": changed,
        "jupyter_packages_that_would_be_installed": jupyter_like,
        "seconds": round(time.perf_counter() - started, 1),
        "passed": not changed,
    }
    print(f"pre-installed (Colab-like): {COLAB_LIKE}")
    print(f"installing the course would add or replace {len(would_install)} packages:")
    for name, version in sorted(would_install.items()):
        print(f"  {name} {version}")
    print(f"pre-installed packages it would change: {changed or 'none'}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "colab_install_check.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
