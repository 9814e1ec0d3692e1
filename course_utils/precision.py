"""Mixed precision: when to compute in bfloat16 or float16, and how.

bfloat16 keeps float32's exponent range, so training needs no loss scaling; it is fast on
recent NVIDIA GPUs (Ampere and newer) and on CPUs with AVX-512 BF16 or AMX instructions.
float16 (older GPUs such as the T4 on free Colab) needs a ``GradScaler`` so that small
gradients do not underflow to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PRECISION_CHOICES = ("auto", "bf16", "fp16", "fp32", True, False)


@dataclass(frozen=True)
class Precision:
    """How a run computes.

    Attributes:
        dtype: what ``torch.autocast`` computes matrix products and convolutions in
            (``torch.bfloat16`` or ``torch.float16``), or None for plain float32 (autocast off).
        use_grad_scaler: float16 needs its loss scaled so that small gradients do not
            underflow: ``torch.amp.GradScaler(device.type, enabled=use_grad_scaler)``.
    """

    dtype: torch.dtype | None
    use_grad_scaler: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bfloat16 instructions (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(choice: str | bool, device: torch.device) -> Precision:
    """Turn a user's choice into a concrete precision for ``device``.

    Args:
        choice: ``"auto"`` (bf16 where the hardware supports it, fp16 with loss scaling on
            older CUDA GPUs, else fp32), ``True`` (same as auto), ``"bf16"``, ``"fp16"``,
            ``"fp32"`` or ``False`` (off).
        device: where the model runs.

    Raises:
        ValueError: an unknown choice, or one the device cannot do.
    """
    if choice not in PRECISION_CHOICES:
        raise ValueError(f"mixed_precision must be one of {PRECISION_CHOICES}, got {choice!r}")
    if choice in (False, "fp32"):
        return Precision(None, False)
    if device.type == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        if choice in ("auto", True):
            return Precision(torch.bfloat16, False) if bf16_ok else Precision(torch.float16, True)
        if choice == "bf16" and not bf16_ok:
            raise ValueError("this GPU has no fast bfloat16; use mixed_precision='fp16' or 'auto'")
        return Precision(torch.bfloat16, False) if choice == "bf16" else Precision(torch.float16, True)
    if device.type == "cpu":
        if choice in ("auto", True):
            return Precision(torch.bfloat16, False) if cpu_supports_bf16() else Precision(None, False)
        if choice == "fp16":
            raise ValueError("float16 training on the CPU is not supported; use 'bf16', 'auto' or 'fp32'")
        return Precision(torch.bfloat16, False)
    # MPS and other backends: autocast support varies between releases, so stay in fp32
    # unless asked explicitly.
    if choice in ("auto", True):
        return Precision(None, False)
    return Precision(torch.bfloat16 if choice == "bf16" else torch.float16, False)


def autocast_context(device: torch.device, precision: Precision) -> torch.autocast:
    """``torch.autocast`` for ``precision`` on ``device``; switched off (a no-op) for fp32.

    The same as writing ``torch.autocast(device.type, dtype=precision.dtype,
    enabled=precision.dtype is not None)``, as :func:`course_utils.training.train_one_epoch`
    and :func:`course_utils.evaluation.evaluate` do.
    """
    return torch.autocast(device.type, dtype=precision.dtype, enabled=precision.dtype is not None)
