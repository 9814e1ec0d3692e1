"""Where the course runs: the device, seeds, precision, CPU threads, and the files it writes.

Every notebook starts by printing :func:`describe_environment`, so that a reader can see which
library versions and which hardware produced the outputs below it.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def get_device(preference: str | torch.device = "auto") -> torch.device:
    """The device to compute on: ``"auto"`` picks CUDA, then Apple's MPS, then the CPU.

    Args:
        preference: ``"auto"``, ``"cuda"`` (or ``"cuda:1"``), ``"mps"``, ``"cpu"``, or a ``torch.device``.

    Raises:
        ValueError: not a device name, or a device this machine does not have (the message says
            which ones it has).
    """
    name = str(preference).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind not in DEVICES:
        raise ValueError(f"unknown device {preference!r}; use one of {', '.join(DEVICES)} (or 'cuda:N')")
    present = {"cuda": torch.cuda.is_available() and int(index or 0) < torch.cuda.device_count(),
               "mps": torch.backends.mps.is_available(), "cpu": True}  # fmt: skip
    if not present[kind]:
        raise ValueError(f"device {preference!r} is not available on this machine; use 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and PyTorch (CPU and every GPU).

    Args:
        seed: a non-negative integer.
        deterministic: also ask PyTorch for deterministic algorithms (repeatable to the last bit on
            the same machine, somewhat slower; an operation without a deterministic version raises).
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # the CPU and all CUDA devices
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic


def cpu_name() -> str:
    """The processor's model name (from ``/proc/cpuinfo`` on Linux), e.g. ``"AMD EPYC 9B14"``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def describe_environment(device: str | torch.device = "auto") -> dict[str, str]:
    """The versions and hardware a notebook runs on, as ``{what: value}`` strings."""
    import torchvision

    chosen = get_device(device)
    names = {"cuda": lambda: torch.cuda.get_device_name(chosen), "mps": lambda: "Apple GPU (MPS)"}
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else "not available",
        "device": str(chosen),
        "device name": names.get(chosen.type, cpu_name)(),
        "cpu threads": str(torch.get_num_threads()),
        "precision (auto)": choose_precision("auto", chosen).name,
    }


# --- Precision ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """How a run computes.

    Attributes:
        dtype: what ``torch.autocast`` computes matrix products and convolutions in
            (``torch.bfloat16`` or ``torch.float16``), or None for plain float32.
        use_grad_scaler: float16 needs its loss scaled so that small gradients do not underflow to 0.
    """

    dtype: torch.dtype | None
    use_grad_scaler: bool = False

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX-512 BF16 or AMX); most laptops have only AVX2."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_precision(choice: str, device: torch.device) -> Precision:
    """The precision ``choice`` means on ``device``.

    ``"auto"``: bfloat16 where the hardware computes it natively (a CPU with AVX-512 BF16 or AMX, a GPU
    of compute capability 8.0 or later); float16 with loss scaling on older CUDA GPUs; else float32
    (an AVX2-only CPU, Apple's MPS). ``"bf16"``, ``"fp16"`` and ``"fp32"`` ask for one explicitly.

    Raises:
        ValueError: an unknown choice, or float16 on a CPU.
    """
    if choice not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    if choice == "auto" and device.type == "cuda":
        # GPUs before compute capability 8.0 (Ampere), such as Colab's T4 (7.5), only *emulate* bfloat16,
        # slowly (``torch.cuda.is_bf16_supported()`` says yes all the same): float16 is their fast choice.
        choice = "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"
    elif choice == "auto":
        choice = "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"
    if choice == "fp16" and device.type == "cpu":
        raise ValueError("float16 training on the CPU is not supported; use 'bf16', 'auto' or 'fp32'")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[choice]
    return Precision(dtype, use_grad_scaler=choice == "fp16" and device.type == "cuda")


# --- CPU threads on a machine that others share -------------------------------------------------
# PyTorch starts one thread per core, and a thread that waits for work spins (keeps its core busy)
# for a while. Alone, that is fastest. Two runs doing it on the same cores take the cores from each
# other's working threads: two trainings on 2 cores took 5.4 to 5.8 times as long as one alone
# (benchmarks/concurrent_runs.py). So a run uses only the cores that other processes leave free,
# and looks again before each epoch: a classmate who starts later must also make the first run give
# a core back (measured: looking only once, at the start, left two runs 8.8 times slower than one
# alone when they started together, 4.7 times when one started later; looking again: 1.9 and 2.5).

_TORCH_THREADS = torch.get_num_threads()  # torch's own choice, before any change
_last_look: tuple[float, int, int, float] | None = None  # (time, busy ticks, all ticks, own CPU seconds)
_threads_set: int | None = None
_MEASURE_SECONDS = 0.1  # how long a first look watches the CPUs


def usable_cpu_count() -> int:
    """The CPUs this process may use: those it may run on, capped by a container's CPU limit."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):  # cgroup v2 "max 100000", "200000 100000": quota, period
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    return max(1, cpus)


def _look_at_cpus() -> tuple[float, int, int, float] | None:
    """The CPUs' busy and total clock ticks since boot (``/proc/stat``), with this process's own use."""
    try:
        cpus = os.sched_getaffinity(0)
        with open("/proc/stat", encoding="ascii") as stat:
            lines = stat.readlines()
    except (AttributeError, OSError):
        return None
    busy = total = 0
    for line in lines:
        name, *ticks = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, ticks[:8])
            total += user + nice + system + idle + iowait + irq + softirq + steal
            busy += user + system + irq + softirq + steal  # nice: a process that gives way does not count
    return (time.monotonic(), busy, total, time.process_time())


def share_cpu_threads() -> int:
    """Give torch as many threads as there are CPUs that other processes leave free (at least one).

    Alone, a run keeps torch's own number of threads. It compares the CPUs' use with what it saw at
    its previous call (the first call, or one after a minute, measures for ``_MEASURE_SECONDS``);
    a CPU counts as taken when other processes kept it more than half busy. Nothing changes when you
    chose the number yourself (``OMP_NUM_THREADS``, or ``torch.set_num_threads``) or asked for
    deterministic algorithms (sums split over another number of threads round differently). Returns
    the number of threads torch uses now.
    """
    global _last_look, _threads_set
    current = torch.get_num_threads()
    chosen_by_user = current not in (_TORCH_THREADS, _threads_set)
    if os.environ.get("OMP_NUM_THREADS") or chosen_by_user or torch.are_deterministic_algorithms_enabled():
        return current
    ceiling = min(_TORCH_THREADS, usable_cpu_count())
    now = _look_at_cpus()
    if now is None:
        threads = ceiling
    else:
        if _last_look is None or now[0] - _last_look[0] > 60:
            _last_look = now
            time.sleep(_MEASURE_SECONDS)
            now = _look_at_cpus() or now
        seconds, ticks = now[0] - _last_look[0], now[2] - _last_look[2]
        if seconds < _MEASURE_SECONDS / 2 or ticks <= 0:
            return current  # too soon to tell anything new
        cpus = len(os.sched_getaffinity(0))
        all_busy = cpus * (now[1] - _last_look[1]) / ticks  # CPUs kept busy, this process included
        others = max(0.0, all_busy - (now[3] - _last_look[3]) / seconds)
        threads = max(1, min(ceiling, cpus - math.floor(others + 0.5)))
        _last_look = now
    if threads != current:
        torch.set_num_threads(threads)
    _threads_set = threads
    return threads


# --- Files --------------------------------------------------------------------------------------


def project_root() -> Path:
    """The repository's root folder when ``course_utils`` runs from a checkout, else the current folder."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else Path.cwd()


def display_path(path: str | Path) -> str:
    """``path`` for printing: relative to the repository (or the current folder) when inside it.

    Stored notebook outputs then show no machine's own folders; a path elsewhere is shown as
    ``~/...`` when it is in the home folder, else whole.
    """
    resolved = Path(path).expanduser().resolve()
    for base in (project_root().resolve(), Path.cwd().resolve()):
        if resolved.is_relative_to(base):
            return resolved.relative_to(base).as_posix()
    home = Path.home().resolve()
    return f"~/{resolved.relative_to(home).as_posix()}" if resolved.is_relative_to(home) else str(resolved)


def atomic_write(path: str | Path, content: str | bytes | Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` completely or not at all: a killed run leaves the old file (or none), never half.

    ``content`` is text (written as UTF-8), bytes, or a function that writes into the open binary file
    (``lambda f: torch.save(state, f)``). It goes to a temporary file beside ``path`` (whose folder is
    created when missing), is forced to disk, and the file is renamed over ``path`` with the permissions
    ``open(path, "w")`` would give. Temporary files of earlier writes of ``path`` that were killed
    outright (``kill -9``) and are over an hour old are removed. An ``OSError`` (the folder cannot be
    created or written) leaves no temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            if callable(content):
                content(file)
            else:
                file.write(content.encode("utf-8") if isinstance(content, str) else content)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename makes it visible
        umask = os.umask(0)  # read the umask (it can only be read by setting it), then restore it
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:  # Ctrl-C too: leave no half-written file behind
        Path(temporary).unlink(missing_ok=True)
        raise
    for left_behind in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):  # gone already, or another user's
            if time.time() - left_behind.stat().st_mtime > 3600:
                left_behind.unlink()
    return path
