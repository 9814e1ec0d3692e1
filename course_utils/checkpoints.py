"""Saving and loading training state safely.

Two promises:

* **A killed run never leaves a broken file.** Every file is written with
  :func:`course_utils.files.atomic_write` (a temporary file, then a rename over the old
  one), so the previous checkpoint stays valid until the new one is complete.
* **Loading never runs code from the file.** ``torch.load(..., weights_only=True)`` only
  unpickles tensors and plain containers; a checkpoint that contains anything else is
  refused instead of executed.
"""

from __future__ import annotations

import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from course_utils.files import atomic_write, permission_problem

CHECKPOINT_FORMAT = "course_utils.checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: missing, unreadable, or made for another model."""


def _describe_model(model: nn.Module) -> dict[str, Any]:
    state = model.state_dict()
    return {
        "class": type(model).__name__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "shapes": {name: list(t.shape) for name, t in state.items()},
    }


def _check_compatible(model: nn.Module, saved: dict[str, Any], path: Path) -> None:
    """Raise a CheckpointError that explains how the saved model differs from ``model``."""
    saved_info = saved.get("model", {})
    saved_shapes: dict[str, list[int]] = saved_info.get("shapes") or {
        name: list(t.shape) for name, t in saved["model_state"].items()
    }
    current = _describe_model(model)
    missing = sorted(set(current["shapes"]) - set(saved_shapes))
    unexpected = sorted(set(saved_shapes) - set(current["shapes"]))
    mismatched = sorted(
        name
        for name in set(current["shapes"]) & set(saved_shapes)
        if current["shapes"][name] != saved_shapes[name]
    )
    if not (missing or unexpected or mismatched):
        return
    lines = [
        f"checkpoint {path} belongs to another model: it was saved from a "
        f"{saved_info.get('class', '?')} with {saved_info.get('parameters', '?'):,} parameters, "
        f"but you are loading it into a {current['class']} with {current['parameters']:,} parameters."
    ]
    if missing:
        lines.append(
            f"  in the model but not the checkpoint: {', '.join(missing[:5])}{' …' * (len(missing) > 5)}"
        )
    if unexpected:
        lines.append(
            f"  in the checkpoint but not the model: "
            f"{', '.join(unexpected[:5])}{' …' * (len(unexpected) > 5)}"
        )
    for name in mismatched[:5]:
        lines.append(
            f"  {name}: checkpoint has shape {tuple(saved_shapes[name])}, "
            f"model has {tuple(current['shapes'][name])}"
        )
    lines.append("Build the same model (class and arguments) that was trained, or use another checkpoint.")
    raise CheckpointError("\n".join(lines))


def capture_rng_state() -> dict[str, Any]:
    """The state of every random number generator a training run uses (Python, NumPy, torch)."""
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        # NumPy's state holds an ndarray, which weights_only loading refuses: store plain ints.
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back generator states captured by :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    epoch: int = 0,
    history: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write everything needed to continue training exactly where it stopped.

    No learning-rate scheduler state: in :func:`course_utils.training.fit` the rate is a
    function of the step number, which ``epoch`` gives.

    Args:
        path: the ``.pt`` file to write (folders are created).
        model: its ``state_dict`` is saved, with its class name and parameter shapes so
            that loading into the wrong model gives a clear message.
        optimizer, scaler: their ``state_dict``s, when given (the optimiser's momentum
            buffers, the float16 loss scale).
        epoch: the number of finished epochs.
        history: ``History.to_dict()`` of the run so far.
        config: the training settings, as plain values.
        extra: anything else made of tensors, numbers, strings, lists and dicts.

    Returns:
        The path written.
    """
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": _describe_model(model),
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scaler_state": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "history": history or {},
        "config": config or {},
        "rng": capture_rng_state(),
        "extra": extra or {},
    }
    return atomic_write(path, lambda file: torch.save(state, file))


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint file with ``weights_only=True`` and check that it is one of ours.

    Raises:
        CheckpointError: the file is missing, empty, truncated, unreadable for you, holds
            code or objects a checkpoint should not (refused, never run), or is not a
            course_utils checkpoint. The message says which, and what to do.
    """
    path = Path(path)
    damaged = "delete it and train again (or use another checkpoint)"
    try:
        if path.is_dir():
            raise CheckpointError(f"{path} is a folder, not a checkpoint file: give the path of a .pt file")
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}: train first, or check the path")
        size = path.stat().st_size
        with open(path, "rb") as file:
            # torch.save writes a zip archive; one cut short has no zip directory at its end.
            # Telling that apart first keeps torch's message about unsafe contents for files
            # that are complete (a 1-byte file would otherwise be "refused" as unsafe).
            complete = zipfile.is_zipfile(file)
        if size == 0:
            raise CheckpointError(
                f"checkpoint {path} is empty (0 bytes): the save that wrote it never finished, or a "
                f"copy of it failed. It holds nothing to load; {damaged}."
            )
        if not complete:
            raise CheckpointError(
                f"cannot read checkpoint {path}: it is not a complete PyTorch file ({size:,} bytes, with "
                f"no zip directory at the end). It was probably truncated by an interrupted save or copy, "
                f"or is not a checkpoint at all; {damaged}."
            )
        state = torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except PermissionError:
        raise CheckpointError(f"cannot read checkpoint {path}: {permission_problem(path)}") from None
    except pickle.UnpicklingError as error:
        # torch refused something that is not tensors, numbers, strings or containers. Its own
        # message suggests weights_only=False, which would run whatever the file holds: not passed on.
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))  # the code the file names
        raise CheckpointError(
            f"refused to load checkpoint {path}: it holds code or objects that a checkpoint should not "
            f"(a checkpoint is tensors, numbers, strings, lists and dicts). Loading it the unsafe way "
            f"would run that code on your machine, with your permissions; do not do it unless you wrote "
            f"the file yourself. Use a checkpoint written by save_checkpoint or save_weights."
            + (f" (It refers to {refused.group(1)}.)" if refused else "")
        ) from None
    except Exception as error:  # torch raises several types for damaged files
        detail = str(error).strip().splitlines()[0] if str(error).strip() else "no details"
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(error).__name__}: {detail}). "
            f"It may be truncated or not a course_utils checkpoint; {damaged}."
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a course_utils checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
            "for plain weights use load_weights()"
        )
    return state


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
    restore_rng: bool = False,
    map_location: str | torch.device | None = None,
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (and friends).

    Returns:
        The whole checkpoint ``dict`` (``epoch``, ``history``, ``config``, ``extra``, …).

    Raises:
        CheckpointError: the file is missing, damaged, or was saved from a different model.
    """
    if map_location is None:
        map_location = next(model.parameters()).device
    state = read_checkpoint(path, map_location=map_location)
    _check_compatible(model, state, Path(path))
    model.load_state_dict(state["model_state"])
    if optimizer is not None and state.get("optimizer_state") is not None:
        optimizer.load_state_dict(state["optimizer_state"])
    if scaler is not None and state.get("scaler_state") is not None:
        scaler.load_state_dict(state["scaler_state"])
    if restore_rng:
        restore_rng_state(state["rng"])
    return state


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Save only a trained model's weights (for inference), atomically.

    Args:
        model: the trained model.
        path: the file to write, e.g. ``outputs/lenet5.pt``.
        metadata: plain values to keep beside the weights (accuracy, dataset, …).
    """
    return save_checkpoint(path, model, extra={"metadata": metadata or {}})


def load_weights(
    model: nn.Module, path: str | Path, map_location: str | torch.device | None = None
) -> nn.Module:
    """Load weights saved by :func:`save_weights` (or any checkpoint) into ``model`` and return it."""
    load_checkpoint(path, model, map_location=map_location)
    return model
