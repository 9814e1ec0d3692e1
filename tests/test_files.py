"""course_utils.files: atomic writes (content, permissions, interruptions, leftovers) and display paths."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from course_utils import files
from course_utils.files import (
    STALE_AFTER_SECONDS,
    atomic_write,
    display_path,
    project_root,
    remove_stale_temporary_files,
)


def temporary_files(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".tmp"))


def leftover(folder: Path, target: str, writer: str, age_seconds: float = 0.0, size: int = 10) -> Path:
    """A temporary file as a write of ``folder/target`` by ``writer`` leaves it, last changed ``age`` ago."""
    path = folder / f".{target}.{writer}.tmp"
    path.write_bytes(b"x" * size)
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- what atomic_write writes ----------------------------------------------------------------------


def test_bytes_text_and_a_writer_function_are_written_exactly(tmp_path):
    assert atomic_write(tmp_path / "a.bin", b"\x00\xff").read_bytes() == b"\x00\xff"
    assert atomic_write(tmp_path / "b.txt", "café\n").read_bytes() == "café\n".encode()
    written = atomic_write(tmp_path / "deeper" / "c.bin", lambda file: file.write(b"from a function"))
    assert written == tmp_path / "deeper" / "c.bin" and written.read_bytes() == b"from a function"
    atomic_write(str(tmp_path / "a.bin"), b"replaced")  # a str path, over an existing file
    assert (tmp_path / "a.bin").read_bytes() == b"replaced"
    assert temporary_files(tmp_path) == [] and temporary_files(tmp_path / "deeper") == []


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_the_new_file_gets_the_permissions_of_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "cache.npz", b"data")
        replaced = atomic_write(path, b"new data")  # the mode of a replaced file follows the umask too
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode and replaced.stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("interruption", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_file(tmp_path, interruption):
    path = atomic_write(tmp_path / "last.pt", b"the old checkpoint")

    def write_half_then_stop(file):
        file.write(b"half of the new")
        raise interruption

    with pytest.raises(type(interruption)):
        atomic_write(path, write_half_then_stop)
    assert path.read_bytes() == b"the old checkpoint"
    assert [entry.name for entry in tmp_path.iterdir()] == ["last.pt"]


def test_a_killed_write_leaves_the_old_file_and_the_next_save_removes_its_temporary_file(tmp_path):
    path = atomic_write(tmp_path / "last.pt", b"the old checkpoint")
    # A process killed by SIGKILL in the middle of a save (as by a kernel restart) runs no cleanup.
    killed_save = textwrap.dedent(
        f"""
        import os, signal
        from course_utils.files import atomic_write

        def write_then_die(file):
            file.write(b"x" * 100_000)
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        atomic_write({str(path)!r}, write_then_die)
        """
    )
    for _ in range(3):
        finished = subprocess.run([sys.executable, "-c", killed_save], cwd=project_root(), check=False)
        assert finished.returncode == -signal.SIGKILL
    assert path.read_bytes() == b"the old checkpoint"
    assert len(temporary_files(tmp_path)) == 3  # what the killed saves left (330 MB for six real ones)

    atomic_write(path, b"the new checkpoint")
    assert path.read_bytes() == b"the new checkpoint"
    assert temporary_files(tmp_path) == []


# --- which leftovers a successful save removes -----------------------------------------------------


def test_only_temporary_files_of_finished_writers_of_the_same_file_are_removed(tmp_path):
    host = files._host_name()
    dead = leftover(tmp_path, "last.pt", f"{host}-{dead_pid()}-abcd_123")
    live = leftover(tmp_path, "last.pt", f"{host}-{os.getppid()}-abcd_124")  # the writer still runs
    mine = leftover(tmp_path, "last.pt", f"{host}-{os.getpid()}-abcd_125")  # another thread of this process
    other_machine = leftover(tmp_path, "last.pt", f"another-machine-{dead_pid()}-abcd_126")
    old_style = leftover(tmp_path, "last.pt", "abcd_127")  # mkstemp's name, no writer in it
    other_file = leftover(tmp_path, "best.pt", f"{host}-{dead_pid()}-abcd_128")
    longer_name = leftover(tmp_path, "last.pt.backup", f"{host}-{dead_pid()}-abcd_129")
    # .last.pt.notes.tmp, however old, is not an atomic write's: someone else's file.
    not_temporary = leftover(tmp_path, "last.pt", "notes", age_seconds=STALE_AFTER_SECONDS + 60)

    assert remove_stale_temporary_files(tmp_path / "last.pt") == [dead]
    for kept in (live, mine, other_machine, old_style, other_file, longer_name, not_temporary):
        assert kept.exists(), kept.name


def test_a_temporary_file_unchanged_for_an_hour_is_removed_whoever_wrote_it(tmp_path):
    host = files._host_name()
    hour = STALE_AFTER_SECONDS + 60
    stale = [
        leftover(tmp_path, "metrics.json", f"{host}-{os.getppid()}-abcd_123", age_seconds=hour),  # pid reused
        leftover(tmp_path, "metrics.json", "another-machine-4242-abcd_124", age_seconds=hour),
        leftover(tmp_path, "metrics.json", "abcd_125", age_seconds=hour),
    ]
    recent = leftover(tmp_path, "metrics.json", "another-machine-4242-abcd_126", age_seconds=60)
    atomic_write(tmp_path / "metrics.json", "{}")
    assert not any(path.exists() for path in stale) and recent.exists()
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [recent.name, "metrics.json"]


def test_a_leftover_that_cannot_be_removed_does_not_fail_the_save(tmp_path, monkeypatch):
    stuck = leftover(tmp_path, "last.pt", f"{files._host_name()}-{dead_pid()}-abcd_123")
    real_unlink = Path.unlink

    def refuse(self, missing_ok=False):
        if self == stuck:
            raise PermissionError(13, "Permission denied", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    assert atomic_write(tmp_path / "last.pt", b"saved").read_bytes() == b"saved"
    assert stuck.exists()


# --- display_path ----------------------------------------------------------------------------------


def test_display_path_is_relative_inside_the_repository_and_the_current_folder(tmp_path, monkeypatch):
    assert display_path(project_root() / "outputs" / "x" / "metrics.json") == "outputs/x/metrics.json"
    assert display_path(project_root()) == "."
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "mine" / "data.npz") == "mine/data.npz"
    assert display_path("relative/file.txt") == "relative/file.txt"  # resolved against the current folder


def test_display_path_outside_shows_the_last_two_parts_or_everything(tmp_path, monkeypatch):
    monkeypatch.chdir(project_root())
    elsewhere = tmp_path / "runs" / "20250101-quick" / "summary.json"
    assert display_path(elsewhere) == "…/20250101-quick/summary.json"
    assert display_path(elsewhere, outside="absolute") == str(elsewhere.resolve())
    home = Path("~/x").expanduser().resolve()
    assert display_path("~/x", outside="absolute") == str(home)  # ~ is expanded first
    with pytest.raises(ValueError, match="outside must be 'short' or 'absolute', got 'full'"):
        display_path(elsewhere, outside="full")
