"""Files: writing them safely and naming them readably.

Two small jobs that every other module needs, each done once, here:

* :func:`atomic_write` writes a file so that a killed run never leaves a broken one: the
  bytes go to a temporary file in the same folder, are forced to disk (``fsync``), and
  ``os.replace`` renames it over the old file in one step. The new file gets the ordinary
  permissions the user's umask gives (``mkstemp`` alone would make it private, mode 0600,
  which locks students out of a cache their teacher built).
  A save that is killed outright (``kill -9``, a restarted kernel) cannot remove its
  temporary file; the next successful save of the same file does
  (:func:`remove_stale_temporary_files`), so killed saves do not pile up.
* :func:`display_path` names a path for printing: relative to the repository when inside
  it, so stored notebook outputs never show one machine's folders.
* :func:`permission_problem` explains a file the user may not read (whose it is, what is
  missing, whom to ask), for the messages of modules that read files.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMPORARY_SUFFIX = ".tmp"

#: A temporary file whose writer cannot be shown to be dead (a process on another machine
#: sharing the folder, or a name written by an older version) counts as left behind only
#: after this many seconds without a change: a live writer changes its file all the time.
STALE_AFTER_SECONDS = 3600.0

# What follows ".<target name>." in a temporary file's name: "<host>-<pid>-" + mkstemp's 8
# random characters, so that a later save can tell whose file it is; older versions wrote
# only the 8 random characters.
_WRITER_NAME = re.compile(r"(?P<host>[A-Za-z0-9-]+)-(?P<pid>[0-9]+)-[a-z0-9_]{8}")
_UNNAMED_WRITER = re.compile(r"[a-z0-9_]{8}")


def project_root() -> Path:
    """The repository root when ``course_utils`` runs from a checkout, else the current folder."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else Path.cwd()


def _current_umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _host_name() -> str:
    """This machine's name, reduced to letters, digits and ``-`` (it becomes part of file names)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _process_is_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine; True when that cannot be told (not POSIX)."""
    if os.name != "posix":
        return True  # on Windows, os.kill(pid, 0) would send Ctrl-C instead of asking
    try:
        os.kill(pid, 0)  # signal 0: only "may I signal it?", nothing is sent
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, and belongs to another user
    return True


def _is_left_behind(file: Path, writer_part: str, now: float) -> bool:
    """Whether ``file``, a temporary file of an atomic write, belongs to no write in progress.

    ``writer_part`` is what its name holds between the target's name and ``.tmp``.
    """
    try:
        unchanged_for = now - file.stat().st_mtime
    except OSError:
        return False  # gone already (its writer finished), or not ours to look at
    writer = _WRITER_NAME.fullmatch(writer_part)
    if writer is not None and writer["host"] == _host_name():
        pid = int(writer["pid"])
        if pid == os.getpid():
            return False  # another thread of this process is writing the same file right now
        # A dead writer's file is garbage at once. A live pid may be a reused one, hence the age.
        return not _process_is_alive(pid) or unchanged_for > STALE_AFTER_SECONDS
    return unchanged_for > STALE_AFTER_SECONDS


def remove_stale_temporary_files(path: str | Path) -> list[Path]:
    """Remove the temporary files that killed saves of ``path`` left in its folder.

    A save killed outright (``kill -9``, a restarted kernel, a dropped machine) leaves its
    ``.<name>.<host>-<pid>-<random>.tmp`` behind; six killed checkpoint saves once left 330 MB.
    :func:`atomic_write` calls this after each successful save. A file is removed when it
    belongs to ``path`` (other files' temporary files are never touched) and no write can
    still be using it: its writer was a process of this machine that has ended, or it has not
    changed for :data:`STALE_AFTER_SECONDS` (a writer on another machine sharing the folder,
    or a name from an older version). A file that cannot be removed (another user's, in a
    folder you may not change) is left alone.

    Args:
        path: the file whose leftovers to remove (it need not exist).

    Returns:
        The files removed.
    """
    path = Path(path)
    prefix = f".{path.name}."
    now = time.time()
    removed = []
    try:
        with os.scandir(path.parent) as entries:
            names = [entry.name for entry in entries]
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(TEMPORARY_SUFFIX)):
            continue
        writer_part = name[len(prefix) : -len(TEMPORARY_SUFFIX)]
        # Exactly one writer part: ".a.pt.backup.<host>-<pid>-<random>.tmp" belongs to "a.pt.backup".
        if not (_WRITER_NAME.fullmatch(writer_part) or _UNNAMED_WRITER.fullmatch(writer_part)):
            continue
        candidate = path.parent / name
        if _is_left_behind(candidate, writer_part, now):
            try:
                candidate.unlink()
            except OSError:
                continue
            removed.append(candidate)
    return removed


def atomic_write(path: str | Path, content: bytes | str | Callable[[BinaryIO], None]) -> Path:
    """Write ``content`` to ``path`` atomically: all of it, or (if killed) the old file unchanged.

    The bytes go to ``.<name>.<host>-<pid>-<random>.tmp`` beside ``path``, are forced to disk,
    and the file is renamed over ``path``. It gets mode ``0o666`` minus the umask, as a file
    made by ``open(path, "w")`` would. An exception (Ctrl-C included) removes the temporary
    file; after a successful write, those left by killed writes of ``path`` are removed too
    (:func:`remove_stale_temporary_files`).

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
    writer = f"{_host_name()}-{os.getpid()}-"  # whose file it is, for remove_stale_temporary_files
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.{writer}", suffix=TEMPORARY_SUFFIX, dir=path.parent
    )
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
    remove_stale_temporary_files(path)
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


def current_user() -> str:
    """The login name of the user running this process, or ``uid<N>`` when it has none.

    ``getpass.getuser()`` reads ``$LOGNAME``, ``$USER``, ... and then the password database;
    a container may run under a user id that has no name at all.
    """
    try:
        name = getpass.getuser()
    except (OSError, KeyError, ImportError):
        name = ""
    if name:
        return name
    return f"uid{os.getuid()}" if hasattr(os, "getuid") else "user"


def _owner_name(uid: int) -> str:
    try:
        import pwd  # POSIX only

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"the user with id {uid}"


def permission_problem(path: str | Path) -> str:
    """Why the user may not read ``path``, in words: whose it is, what is missing, whom to ask.

    For the message of an error raised where opening ``path`` failed with ``PermissionError``
    (a file made by another user with a private mode, as older versions wrote every cache).

    Args:
        path: the file that could not be read.

    Returns:
        A sentence or two, e.g. "it belongs to teacher and its permissions are -rw-------:
        you (student) may not read it. Ask teacher ... `chmod a+r /srv/data/mnist.npz` ...".
    """
    path = Path(path).absolute()
    you = current_user()
    # A folder on the way that may not be entered hides the file whatever the file's own mode.
    for folder in reversed(path.parents):
        try:
            info = folder.stat()
        except OSError:
            break
        if not os.access(folder, os.X_OK):
            owner = _owner_name(info.st_uid)
            return (
                f"the folder {folder} belongs to {owner} and its permissions are "
                f"{stat.filemode(info.st_mode)}: you ({you}) may not open it. Ask {owner} (or whoever "
                f"runs this machine) to let others in: `chmod a+x {folder}`."
            )
    try:
        info = path.stat()
    except OSError:
        return (
            f"you ({you}) may not read it or a folder on its way. Ask whoever runs this machine "
            f"to make it readable for you."
        )
    owner = _owner_name(info.st_uid)
    return (
        f"it belongs to {owner} and its permissions are {stat.filemode(info.st_mode)}: you ({you}) "
        f"have no read permission on it. It is not damaged. Ask {owner} (the teacher, or whoever "
        f"made it) to make it readable for everyone: `chmod a+r {path}`."
    )
