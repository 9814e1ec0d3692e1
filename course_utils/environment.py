"""Hardware and reproducibility: which device to train on, seeds, and a report of the set-up.

Every notebook starts by calling :func:`describe_environment`, so that a reader can see
which library versions and which device produced the outputs below it.
"""

from __future__ import annotations

import os
import platform
import random
import sys

import numpy as np
import torch

DEVICE_PREFERENCES = ("auto", "cuda", "mps", "cpu")


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
