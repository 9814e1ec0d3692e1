"""What every benchmark record says about the machine that produced it, and where the record goes."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch


def machine_environment(**extra: Any) -> dict[str, Any]:
    """The software and CPU a benchmark ran on, for the ``environment`` block of its JSON record.

    Args:
        extra: further entries the benchmark's numbers depend on (e.g. the precision in use).

    Returns:
        torch and Python versions, the processor, CPU count, torch's threads, ``OMP_NUM_THREADS``,
        the ``extra`` entries, and the load average when the record was written (other jobs
        may have shared the CPU, which slows every timing in the record).
    """
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        **extra,
        "load_average_when_written": os.getloadavg(),
    }


def write_record(out: Path | None, name: str, environment: dict[str, Any], **fields: Any) -> Path | None:
    """Write ``{"environment": environment, **fields}`` as JSON to ``out / name`` (``out`` made if needed);
    with ``out`` None, nothing (the benchmark only printed). Returns the path written, or None."""
    if out is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps({"environment": environment, **fields}, indent=1))
    return path
