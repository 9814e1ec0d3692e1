"""Hardware and reproducibility: which device to train on, seeds, CPU threads, and a report of the set-up.

Every notebook starts by calling :func:`describe_environment`, so that a reader can see
which library versions and which device produced the outputs below it.

CPU threads on a shared machine: PyTorch starts one OpenMP thread per core, and OpenMP
threads that wait for work *spin* (keep a core busy) for a while instead of sleeping. Alone
on a machine that is the fastest thing to do; two runs doing it at once on the same cores
take the cores from each other's working threads, and each run becomes many times slower
(two notebook-03 smoke runs on 2 cores: 5.4 minutes each instead of 0.31). Two remedies,
both here:

* :func:`adapt_cpu_threads` (called by :func:`course_utils.profiles.configure`, and by
  training before each epoch) gives torch only the CPUs that other processes leave free, so
  that runs sharing a machine do not oversubscribe it, and all of them again when they are free;
* :data:`SHARED_MACHINE_ENVIRONMENT` (``OMP_WAIT_POLICY=PASSIVE``) makes waiting threads
  sleep. It only works in a process started with it (OpenMP reads it when torch is
  imported), so it belongs in the environment that starts the kernels: the batch runner,
  ``make lab``, or a JupyterHub's spawner settings.
"""

from __future__ import annotations

import math
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

DEVICE_PREFERENCES = ("auto", "cuda", "mps", "cpu")

#: Environment variables for the processes that run notebooks on a machine shared by several
#: runs: threads waiting for work sleep instead of spinning. They must be set before the
#: process starts (OpenMP reads them when torch is imported): in the kernels' environment.
SHARED_MACHINE_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}

#: Other processes must keep a core this busy (on average over the interval measured) before
#: it counts as taken: a browser or a Jupyter server using a little of one does not. Not
#: higher: one thread of another run, sharing 2 cores with 2 threads of this one, gets only
#: about 2/3 of a core, and must still count.
BUSY_CORE_THRESHOLD = 0.5

#: A measurement of the load older than this is not used: a new one is taken.
STALE_AFTER_SECONDS = 60.0


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(preference: str | torch.device = "auto") -> torch.device:
    """Choose the device to compute on.

    Args:
        preference: ``"auto"`` picks CUDA, then Apple MPS, then the CPU. ``"cuda"``,
            ``"cuda:1"``, ``"mps"`` or ``"cpu"`` ask for that device explicitly; a
            ``torch.device`` is accepted too.

    Returns:
        The ``torch.device`` to use.

    Raises:
        ValueError: ``preference`` is not a device name.
        RuntimeError: the requested device is not present on this machine (for example
            ``"cuda"`` on a laptop without an NVIDIA GPU).
    """
    if isinstance(preference, torch.device):
        preference = str(preference)
    if not isinstance(preference, str):
        raise ValueError(f"device must be a string such as 'auto', 'cuda' or 'cpu', got {preference!r}")
    name = preference.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICE_PREFERENCES:
        raise ValueError(
            f"unknown device {preference!r}; use one of {', '.join(DEVICE_PREFERENCES)} (or 'cuda:N')"
        )
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("cuda was requested but no CUDA GPU is visible; use 'auto' or 'cpu'")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f"{preference!r} was requested but only {torch.cuda.device_count()} CUDA GPU(s) are "
                f"visible; use 'cuda:0', 'auto' or 'cpu'"
            )
        return torch.device(name)
    if kind == "mps" and not _mps_available():
        raise RuntimeError(
            "mps was requested but Apple's Metal (MPS) backend is not available; use 'auto' or 'cpu'"
        )
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and PyTorch (CPU and every CUDA device).

    Args:
        seed: any non-negative integer.
        deterministic: also ask PyTorch for deterministic algorithms and turn off
            cuDNN's benchmark mode. Runs become repeatable on the same machine at some
            cost in speed; an operation with no deterministic version then raises an error.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds the CPU and all CUDA devices
    if deterministic:
        # cuBLAS needs this workspace setting to be deterministic (see torch docs on reproducibility).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


def cpu_name(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """The processor's model name, e.g. "AMD EPYC 9B14".

    Read from ``cpuinfo_path`` (Linux); where that file is missing or names no model (macOS,
    Windows), what :mod:`platform` knows, e.g. "arm" or "Intel64 Family 6 ...".
    """
    try:
        with open(cpuinfo_path, encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def usable_cpu_count() -> int:
    """How many CPUs this process may use: those it may run on, capped by a container's CPU limit.

    ``os.cpu_count()`` counts the whole machine; a process pinned to some CPUs (``taskset``)
    or in a container limited to, say, 2 CPUs of a 64-core server (Docker ``--cpus``,
    Kubernetes, most JupyterHubs) may use fewer, and more threads than that only take turns.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity; the whole machine
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


def _cgroup_cpu_limit(cgroups: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The container's CPU limit in CPUs (``2.5``), or None when there is none or it is not Linux."""
    candidates = [  # cgroup v2, then v1: quota and period in microseconds
        (cgroups / "cpu.max", None),
        (cgroups / "cpu" / "cpu.cfs_quota_us", cgroups / "cpu" / "cpu.cfs_period_us"),
        (cgroups / "cpu,cpuacct" / "cpu.cfs_quota_us", cgroups / "cpu,cpuacct" / "cpu.cfs_period_us"),
    ]
    for quota_file, period_file in candidates:
        try:
            if period_file is None:
                quota, period = quota_file.read_text().split()[:2]  # "max 100000" or "200000 100000"
            else:
                quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
        except (OSError, ValueError):
            continue
        if quota in ("max", "-1") or int(period) <= 0:
            return None
        return int(quota) / int(period)
    return None


class _CpuSample(NamedTuple):
    """A moment's CPU counters: what the CPUs and this process have done since boot."""

    wall: float  # time.monotonic(), seconds
    busy_ticks: int  # of the CPUs this process may run on, all processes: busy clock ticks
    total_ticks: int  # ... and all ticks, busy or idle
    own_seconds: float  # CPU seconds this process used, all its threads


def _cpu_sample() -> _CpuSample | None:
    """Read the CPU counters (``/proc/stat``, Linux); None where there are none to read."""
    try:
        cpus = os.sched_getaffinity(0)
        with open("/proc/stat", encoding="ascii") as stat_file:
            lines = stat_file.readlines()
    except (AttributeError, OSError):
        return None
    own_niceness = os.nice(0) if hasattr(os, "nice") else 0
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        # user nice system idle iowait irq softirq steal (guest time is inside user already)
        user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[:8])
        total += user + nice + system + idle + iowait + irq + softirq + steal
        # Processes that lowered their priority give way to this one, unless it did too.
        busy += user + system + irq + softirq + steal + (nice if own_niceness > 0 else 0)
    if total == 0:
        return None
    return _CpuSample(time.monotonic(), busy, total, time.process_time())


def cpus_busy_elsewhere(since: _CpuSample, now: _CpuSample) -> float:
    """How many CPUs other processes kept busy between two samples, on average (``1.7``).

    Counts the CPUs this process may run on, minus what this process itself used; a
    process with a lower priority (``nice``) does not count, since it gives way.
    """
    ticks = now.total_ticks - since.total_ticks
    if ticks <= 0:
        return 0.0
    cpus = len(os.sched_getaffinity(0))
    seconds = now.wall - since.wall
    all_busy = cpus * (now.busy_ticks - since.busy_ticks) / ticks
    own = (now.own_seconds - since.own_seconds) / seconds if seconds > 0 else 0.0
    return max(0.0, all_busy - own)


# What adapt_cpu_threads needs to remember between calls: torch's own choice of threads, the
# counters at the last call (the first at import) and the count it set last.
_TORCH_DEFAULT_THREADS = torch.get_num_threads()
_last_sample = _cpu_sample()
_threads_set: int | None = None


def adapt_cpu_threads(*, shortest_interval: float = 0.1) -> int:
    """Give torch as many CPU threads as there are CPUs that other processes leave free.

    Alone on a machine, a run keeps torch's own number of threads (one per core, at most
    :func:`usable_cpu_count`): nothing is slower. When other processes keep some of those
    CPUs busy, for example another student's training on a shared server, it takes only the
    free ones (at least one), so the two runs no longer fight over cores; called again later
    (training calls it before every epoch) it takes them all back once they are free. A CPU
    counts as busy when others used more than :data:`BUSY_CORE_THRESHOLD` of it on average
    since the previous call (the first time: since this module was imported), or, when that
    was more than :data:`STALE_AFTER_SECONDS` ago, over a new ``shortest_interval``.

    Nothing is changed when the user chose the number themselves (``OMP_NUM_THREADS`` is set,
    or ``torch.set_num_threads`` was called with another number than this function set), nor
    while deterministic algorithms are on (``seed_everything(..., deterministic=True)``): a
    run that must repeat to the last bit keeps one thread count, since sums split over
    another number of threads round differently. Where the load cannot be measured (not
    Linux), the count is only capped at the usable CPUs.

    Args:
        shortest_interval: seconds of measurement needed for a decision; the first call waits
            for them if needed, a later call that comes sooner keeps the current count.
            Also the length of a new measurement when the last one is stale.

    Returns:
        The number of threads torch now uses (``torch.get_num_threads()``).
    """
    global _last_sample, _threads_set
    current = torch.get_num_threads()
    chosen_by_user = current not in (_TORCH_DEFAULT_THREADS, _threads_set)
    if os.environ.get("OMP_NUM_THREADS") or chosen_by_user or torch.are_deterministic_algorithms_enabled():
        return current
    ceiling = min(_TORCH_DEFAULT_THREADS, usable_cpu_count())
    now = _cpu_sample()
    if now is None or _last_sample is None:
        threads = ceiling
    else:
        waited = now.wall - _last_sample.wall
        if waited > STALE_AFTER_SECONDS:
            # What the machine did long ago (a cell run again an hour later) says little now.
            _last_sample, waited = now, 0.0
        if waited < shortest_interval:
            if _threads_set is not None and _last_sample is not now:
                return current  # too short to tell anything new
            time.sleep(shortest_interval - waited)
            now = _cpu_sample() or now
        busy_cores = math.floor(cpus_busy_elsewhere(_last_sample, now) + 1.0 - BUSY_CORE_THRESHOLD)
        # Free CPUs among those this process may run on; a container's limit caps the ceiling
        # (other containers' load on the same server does not take from that limit).
        threads = max(1, min(ceiling, len(os.sched_getaffinity(0)) - busy_cores))
        _last_sample = now
    if threads != current:
        torch.set_num_threads(threads)
    _threads_set = threads
    return threads


def describe_environment(device: str | torch.device = "auto") -> dict[str, str]:
    """Collect the versions and hardware that a notebook runs on.

    Args:
        device: the device preference passed to :func:`get_device`.

    Returns:
        An ordered ``dict`` of strings: Python, torch, torchvision and CUDA versions, the
        device and its name, and the number of CPU threads torch uses. Print it with
        ``for k, v in describe_environment().items(): print(f"{k:>12}: {v}")``.
    """
    import torchvision

    chosen = get_device(device)
    if chosen.type == "cuda":
        device_name = torch.cuda.get_device_name(chosen)
    elif chosen.type == "mps":
        device_name = "Apple GPU (MPS)"
    else:
        device_name = cpu_name()
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else "not available",
        "device": str(chosen),
        "device name": device_name,
        "cpu threads": str(torch.get_num_threads()),
    }
