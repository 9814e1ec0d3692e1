"""Build the course's website from the notebooks' stored outputs: `make book`, or

    python book/build.py [OUT]          OUT defaults to build/book

The English edition becomes OUT/ (home page OUT/index.html), the Chinese one OUT/zh/: two Sphinx builds
of the same configuration (book/conf.py), each in its own language. Each build starts from nothing, in a
temporary folder, so that no page keeps a stale link to a notebook that was added or removed since.
Warnings are errors: a missing image or a link to no page stops the build.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EDITIONS = {"en": [], "zh": ["-t", "zh"]}  # Sphinx tags that book/conf.py reads


def build_site(out: Path) -> None:
    """Build both editions into `out` (replaced); raises CalledProcessError if Sphinx fails or warns."""
    with tempfile.TemporaryDirectory(prefix="book-") as work:
        for edition, tags in EDITIONS.items():
            # myst-nb and Sphinx write their caches beside the HTML folder (jupyter_execute/, doctrees).
            site = Path(work, edition, "html")
            command = [sys.executable, "-m", "sphinx", "-q", "-b", "html", "-W", "--keep-going", "-c", "book"]
            command += ["-d", str(Path(work, edition, "doctrees")), *tags, ".", str(site)]
            subprocess.run(command, cwd=ROOT, check=True)
        shutil.rmtree(out, ignore_errors=True)
        # Without the theme's source maps (*.map): they serve to debug its own scripts, and are 7 of 25 MB.
        maps = shutil.ignore_patterns("*.map")
        shutil.copytree(Path(work, "en", "html"), out, ignore=maps)
        shutil.copytree(Path(work, "zh", "html"), out / "zh", ignore=maps)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build" / "book").resolve()
    started = time.perf_counter()
    build_site(out)
    size = sum(file.stat().st_size for file in out.rglob("*") if file.is_file())
    print(f"Built {out} in {time.perf_counter() - started:.1f} s: {size / 2**20:.1f} MiB.")
    print(f"Serve it with: python -m http.server --directory {os.path.relpath(out)}")


if __name__ == "__main__":
    main()
