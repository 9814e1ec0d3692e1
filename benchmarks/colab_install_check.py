"""What would the notebooks' first cell change on Colab?

On Colab the first cell runs ``%pip install git+https://github.com/open-courses/cnn-rnn-pytorch``
into an environment that already holds torch, torchvision, numpy, matplotlib and Colab's Jupyter
packages. ``benchmarks/results/colab_packages.txt`` records the versions Colab ships (copied from
Colab's own list, with its commit and date). This script asks pip's resolver what installing this
checkout into that environment would do, without installing anything: it builds a wheel of the
checkout, then runs ``pip install --dry-run --ignore-installed --report`` for Colab's Python and
platform with Colab's versions as constraints (a conflict makes pip fail). From the report it lists,
package by package, Colab's version and what the install would do. It passes when every package
Colab ships keeps its version and nothing but the course itself would be installed.

Two things the dry run cannot copy from Colab. Colab's torch and torchvision are PyTorch's CUDA 12.8
builds (``+cu128``), which are not on PyPI: the resolution takes PyPI's build of the same versions,
whose CUDA libraries (``nvidia-*``, ``cuda-*``) differ from Colab's; they are listed, not compared
(on Colab pip keeps the installed torch, which satisfies the course's range, and the libraries it
came with). And pip evaluates environment markers with the Python that runs it, so that Python
must be Colab's minor version (3.13): ``--python`` names it.

Usage: ``python benchmarks/colab_install_check.py --python python3.13 [--out benchmarks/results]``
(needs PyPI; reads wheels' metadata by HTTP range requests, so no CUDA wheel is downloaded; about
25 seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLAB_PACKAGES = ROOT / "benchmarks" / "results" / "colab_packages.txt"
# pip 26.3 resolves a --dry-run from metadata alone; fast-deps reads a wheel's metadata by HTTP range
# requests where the index serves no separate metadata file (PEP 658), as for torch's 530 MB wheel.
PIP = "pip==26.3"
# The CUDA libraries of PyPI's torch build, not Colab's (see the docstring).
CUDA_PREFIXES = ("nvidia-", "cuda-")


def normalised(name: str) -> str:
    """A package name as pip compares names (PEP 503): ``Jinja2`` and ``jinja2`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_colab_packages(path: Path = COLAB_PACKAGES) -> tuple[dict[str, str], dict[str, str]]:
    """The versions Colab ships and where the list comes from.

    Returns:
        ``(versions, record)``: Colab's version of each package by normalised name (as Colab's
        list spells it, ``2.11.0+cu128`` included), and the file's ``# key: value`` header lines
        (repository, file, commit, date, python, glibc, ...).
    """
    text = path.read_text()
    record = dict(re.findall(r"^# ([a-z]+): (.*)$", text, flags=re.MULTILINE))
    versions = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            versions[normalised(name)] = version
    return versions, record


def compare(colab: dict[str, str], resolved: dict[str, str], course: str) -> dict[str, dict[str, str | None]]:
    """What installing the course would do to each package, from pip's resolution.

    Args:
        colab: Colab's version of each package (:func:`read_colab_packages`).
        resolved: the version pip's resolution chose for each package it reached.
        course: the course's own package name, normalised.

    Returns:
        For every package in either: Colab's version, the resolved one, and ``would``: ``keep``,
        ``replace``, ``install`` (not on Colab), ``install the course``, ``not compared`` (a CUDA
        library of PyPI's torch) or ``untouched`` (on Colab, not reached).
    """
    rows: dict[str, dict[str, str | None]] = {}
    for name in sorted(colab.keys() | resolved.keys()):
        ours, theirs = resolved.get(name), colab.get(name)
        if name == course:
            would = "install the course"
        elif ours is None:
            would = "untouched"
        elif theirs is not None:
            # Colab's +cu128 is a local label: pip takes 2.11.0+cu128 as satisfying ==2.11.0.
            would = "keep" if theirs.split("+")[0] == ours else "replace"
        elif name.startswith(CUDA_PREFIXES):
            would = "not compared"
        else:
            would = "install"
        rows[name] = {"colab": theirs, "resolved": ours, "would": would}
    return rows


def _received_bytes() -> int | None:
    """Bytes this machine has received on its network interfaces (Linux), to show no wheel was fetched."""
    try:
        lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    except OSError:
        return None
    return sum(int(line.split(":")[1].split()[0]) for line in lines if line.split(":")[0].strip() != "lo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--python", default="python3.13", help="a Python of Colab's minor version, to run pip"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for colab_install_check.json")
    parser.add_argument(
        "--project", type=Path, default=ROOT, help="the checkout to install (default: this one)"
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    colab, record = read_colab_packages()
    # Wheels for Colab's glibc (Ubuntu 22.04: 2.35) or older: pip takes each platform tag literally.
    glibc_minor = int(record["glibc"].split(".")[1])
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(glibc_minor, 4, -1)]
    platforms.append("manylinux2014_x86_64")
    # pip as Colab runs it: PyPI and no configuration of this machine (its caps, local wheel folders).
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_CACHE_DIR": "1"}
    with tempfile.TemporaryDirectory(prefix="colab-install-") as folder:
        tmp = Path(folder)
        subprocess.run([args.python, "-m", "venv", str(tmp / "venv")], check=True)
        python = str(tmp / "venv" / "bin" / "python")
        version = [python, "-c", "import platform; print(platform.python_version())"]
        resolver_python = subprocess.run(version, check=True, capture_output=True, text=True).stdout.strip()
        if resolver_python.split(".")[:2] != record["python"].split(".")[:2]:
            sys.exit(f"--python runs Python {resolver_python}; Colab runs {record['python']}")
        pip = [python, "-m", "pip"]
        subprocess.run([*pip, "install", "--quiet", PIP], check=True, env=env)
        build = [*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp / "wheel"), str(args.project)]
        subprocess.run(build, check=True, env=env)
        (wheel,) = (tmp / "wheel").glob("*.whl")
        constraints = tmp / "colab-constraints.txt"
        constraints.write_text("".join(f"{name}=={colab[name].split('+')[0]}\n" for name in colab))
        options = ["--dry-run", "--ignore-installed", "--report", str(tmp / "report.json")]
        options += ["--python-version", record["python"], *(f"--platform={tag}" for tag in platforms)]
        options += ["--only-binary=:all:", "--use-feature=fast-deps", "-c", str(constraints)]
        command = [*pip, "install", *options, str(wheel)]
        shown = " ".join(["pip", *command[3:]]).replace(str(tmp), "<tmp>")
        received, started = _received_bytes(), time.perf_counter()
        # pip prints its progress, and on a conflict with Colab's versions which packages conflict.
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(
                f"{done.stdout[-2000:]}\npip cannot install the course and keep Colab's versions (above)"
            )
        seconds = time.perf_counter() - started
        received = None if received is None else _received_bytes() - received
        report = json.loads((tmp / "report.json").read_text())
    resolved = {
        normalised(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]
    }
    course = normalised(wheel.name.split("-")[0])
    rows = compare(colab, resolved, course)
    # Who requires what (extras aside): the course's own dependencies, and why anything else would come.
    required_by: dict[str, list[str]] = {}
    for item in report["install"]:
        for requirement in item["metadata"].get("requires_dist", []):
            if "extra ==" not in requirement:
                name = normalised(re.match(r"[\w.-]+", requirement)[0])
                required_by.setdefault(name, []).append(normalised(item["metadata"]["name"]))
    direct = sorted(name for name, requirers in required_by.items() if course in requirers)
    # The question is whether the install changes what Colab ships: replacing one of its packages fails the
    # check; a package Colab lacks that some dependency requires is only added, and listed.
    changed = {
        name: {**row, "required_by": required_by.get(name, [])}
        for name, row in rows.items()
        if row["would"] in ("replace", "install")
    }
    replaced = [name for name, row in changed.items() if row["would"] == "replace"]
    result = {
        "command": shown,
        "date": date.today().isoformat(),
        "colab_record": {"list": str(COLAB_PACKAGES.relative_to(ROOT)), **record},
        "resolved_with": {"pip": PIP.split("==")[1], "python": resolver_python},
        "seconds_resolving": round(seconds, 1),
        "seconds_in_all": round(time.perf_counter() - began, 1),
        "megabytes_received": None if received is None else round(received / 1e6, 1),
        "course_requires": direct,
        "packages": rows,
        "would_change_on_colab": changed,
        "passed": not replaced,
    }

    counts = Counter(row["would"] for row in rows.values())
    print(f"Colab's list: {record['repository']} {record['file']} {record['commit'][:7]} ({record['date']})")
    print(
        f"resolved in {seconds:.1f} s, {result['megabytes_received']} MB received; {len(resolved)} packages"
    )
    print(f"{'package':<22}{'Colab':<16}{'resolved':<16}would")
    for name, row in rows.items():
        if name in direct or name == course or row["would"] in ("replace", "install"):
            print(f"{name:<22}{row['colab'] or '-':<16}{row['resolved'] or '-':<16}{row['would']}")
    print(", ".join(f"{count} {would}" for would, count in sorted(counts.items())))
    for name, row in changed.items():
        requirers = ", ".join(row["required_by"])
        print(f"on Colab it would {row['would']} {name} {row['resolved']} (required by {requirers})")
    print("passed" if result["passed"] else "failed")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "colab_install_check.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
