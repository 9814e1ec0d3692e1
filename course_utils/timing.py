"""Measuring time honestly: wait for the GPU, warm up first, report the median."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from course_utils.evaluation import eval_mode


def synchronize(device: torch.device | str) -> None:
    """Wait until queued GPU work is done (GPU calls return before the work finishes)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Timer:
    """A context manager that measures wall time, waiting for ``device`` at both ends.

    Example::

        with Timer("cuda") as timer:
            fit(...)
        print(f"{timer.seconds:.1f} s")
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds = float("nan")

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


@dataclass(frozen=True)
class Latency:
    """Median and spread of repeated timings, in seconds."""

    median: float
    low: float
    high: float
    repeats: int

    def __str__(self) -> str:
        spread = f"min {self.low * 1e3:.2f}, max {self.high * 1e3:.2f}"
        return f"{self.median * 1e3:.2f} ms ({spread}, n={self.repeats})"


@torch.no_grad()
def measure_latency(model: nn.Module, x: torch.Tensor, *, warmup: int = 5, repeats: int = 30) -> Latency:
    """Time ``model(x)`` in evaluation mode.

    Args:
        model: on the same device as ``x``.
        x: one input batch, e.g. (1, 1, 28, 28) for a single image or (256, 1, 28, 28).
        warmup: untimed calls first (caches, kernel selection, lazy initialisation).
        repeats: timed calls; the median is robust to the odd slow one.

    Returns:
        A :class:`Latency`; the model's training mode is restored.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times = []
    with eval_mode(model):
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            with Timer(x.device) as timer:
                model(x)
            times.append(timer.seconds)
    return Latency(statistics.median(times), min(times), max(times), repeats)
