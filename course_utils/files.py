"""Files: writing them safely and naming them readably.

Two small jobs that every other module needs, each done once, here:

* :func:`atomic_write` writes a file so that a killed run never leaves a broken one: the
  bytes go to a temporary file in the same folder, are forced to disk (``fsync``), and
  ``os.replace`` renames it over the old file in one step. The new file gets the ordinary
  permissions the user's umask gives (``mkstemp`` alone would make it private, mode 0600,
  which locks students out of a cache their teacher built).
* :func:`display_path` names a path for printing: relative to the repository when inside
  it, so stored notebook outputs never show one machine's folders.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMPORARY_SUFFIX = ".tmp"


def project_root() -> Path:
    """The repository root when ``course_utils`` runs from a checkout, else the current folder."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else Path.cwd()


def _current_umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, content: bytes | str | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` to ``path`` atomically: all of it, or (if killed) the old file unchanged.

    Args:
        path: the file to write; its folder is created when missing.
        content: ``bytes``, a ``str`` (written as UTF-8), or a function that writes into the
            open binary file it is given (``lambda f: torch.save(state, f)``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OSError: the folder cannot be created or written (the temporary file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            if callable(content):
                content(file)
            else:
                file.write(content.encode("utf-8") if isinstance(content, str) else content)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the rename makes them visible
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    except BaseException:
        # Ctrl-C included: the half-written temporary file must not stay behind.
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def display_path(path: str | Path, *, outside: str = "short") -> str:
    """``path`` for printing: relative to the repository (or the current folder) when inside it.

    Args:
        path: any path.
        outside: what to show for a path outside both: ``"short"`` (its last two parts after
            ``…/``: for notebook outputs, which must not show one machine's folders) or
            ``"absolute"`` (for messages in a terminal, where the whole path helps).

    Returns:
        e.g. ``"outputs/02_lenet5_mnist/metrics.json"``.
    """
    if outside not in ("short", "absolute"):
        raise ValueError(f"outside must be 'short' or 'absolute', got {outside!r}")
    resolved = Path(path).expanduser().resolve()
    for base in (project_root().resolve(), Path.cwd().resolve()):
        try:
            return resolved.relative_to(base).as_posix() or "."
        except ValueError:
            continue
    if outside == "absolute":
        return str(resolved)
    return "…/" + "/".join(resolved.parts[-2:])
