"""Training: :func:`fit`, the loop every model of the course trains with, and the record it keeps.

:func:`train_one_epoch` is the epoch notebook 02 writes out by hand, line for line (set the learning
rate, forward, loss, ``zero_grad``, backward, update, count), plus what lets it run fast anywhere: each
batch moved to the device, autocast in bfloat16 or float16 where the hardware computes it natively
(with a ``GradScaler`` switched on only for float16, so there is no ``if`` for it), gradient clipping.
:func:`fit` calls it once per epoch and keeps every other extra *around* it, each one a named field of
:class:`TrainConfig`. The sequence tasks of notebook 04 train with the same ``fit``: a regression sets
``loss="mse"``; a task that answers at every step has outputs ``(B, T, K)``.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import TrainingData
from course_utils.environment import (
    atomic_write,
    choose_precision,
    display_path,
    get_device,
    share_cpu_threads,
)
from course_utils.evaluation import evaluate
from course_utils.tables import format_table

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "onecycle")
LOSSES = ("cross_entropy", "mse")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: missing, damaged, unsafe, or made for another model or run."""


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of :func:`fit`; a notebook's recipe (``course_utils.settings``) gives the values.

    Defaults are neutral (no weight decay, a constant rate, no clipping) or torch's own: a recipe says what
    it wants. ``optimizer``: ``"sgd"`` (``momentum``, ``nesterov``) or ``"adamw"`` (``momentum`` is its beta1;
    None: the optimiser's default, none for SGD, 0.9 for AdamW); ``lr``: the peak rate; ``schedule``:
    ``"constant"`` or ``"onecycle"`` (up from ``lr/25`` over ``warmup_fraction`` of the steps, which it needs,
    then down to almost 0);
    ``grad_clip``: the largest global norm of the gradient (None: no clipping); ``loss``: ``"cross_entropy"``
    or ``"mse"``. ``mixed_precision``: see ``course_utils.environment.choose_precision``; ``channels_last``
    ``"auto"``: on for models with 2-D convolutions. ``time_budget``: seconds (no epoch starts that would
    not fit); ``checkpoint_dir``: ``last.pt`` after the last epoch and every ``checkpoint_every`` epochs,
    read by ``resume``; ``log_every``: steps between looks at the loss (progress bar, NaN check).
    """

    epochs: int
    lr: float
    optimizer: str
    momentum: float | None = None
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_fraction: float | None = None
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    loss: str = "cross_entropy"
    mixed_precision: str = "auto"
    channels_last: str | bool = "auto"
    compile: bool = False
    device: str = "auto"
    time_budget: float | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    progress: bool = True
    live_plot: bool = False
    log_every: int = 25
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            problems.append(f"epochs must be a positive whole number, got {self.epochs!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a positive number, got {self.lr!r}")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("loss", LOSSES)):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        warmup_ok = self.warmup_fraction is None or 0 < self.warmup_fraction < 1
        if self.weight_decay < 0 or not 0 <= self.label_smoothing < 1 or not warmup_ok:
            problems.append("weight_decay must be >= 0, label_smoothing in [0, 1), warmup_fraction in (0, 1)")
        if self.schedule == "onecycle" and self.warmup_fraction is None:
            problems.append(
                "the onecycle schedule needs warmup_fraction: the share of the steps that rise to lr"
            )
        if self.grad_clip is not None and not self.grad_clip > 0:
            problems.append(f"grad_clip must be positive or None, got {self.grad_clip!r}")
        if not (isinstance(self.log_every, int) and self.log_every >= 1 and self.checkpoint_every >= 0):
            problems.append(
                f"log_every must be >= 1, checkpoint_every >= 0: {self.log_every}, {self.checkpoint_every}"
            )
        if self.resume and not self.checkpoint_dir:
            problems.append("resume=True needs checkpoint_dir, the folder that holds last.pt")
        if problems:
            raise ValueError("invalid training settings: " + "; ".join(problems))


class History:
    """What a training run measured: one row per finished epoch (the one record of a run).

    Each row is a dict: ``epoch`` (from 1), ``train_loss``, ``train_accuracy`` (not for a regression),
    ``lr`` (at the epoch's first step), ``images_per_second``, then ``val_loss`` and ``val_accuracy``
    when there was validation data, and ``seconds`` (the epoch's wall time, validation included).
    """

    def __init__(self, rows: Iterable[dict[str, float]] = (), name: str = "") -> None:
        self.rows = [dict(row) for row in rows]
        self.name = name

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(dict(row))

    def column(self, key: str) -> list[float]:
        """Every epoch's value of one key, e.g. ``history.column("val_accuracy")``."""
        if self.rows and key not in self.rows[0]:
            raise KeyError(f"no {key!r} in this history; it has {', '.join(self.rows[0])}")
        return [row[key] for row in self.rows]

    @property
    def last(self) -> dict[str, float]:
        """The last finished epoch's row."""
        if not self.rows:
            raise IndexError("the history is empty: no epoch has finished yet")
        return self.rows[-1]

    @property
    def total_seconds(self) -> float:
        return float(sum(row["seconds"] for row in self.rows))

    def __len__(self) -> int:
        return len(self.rows)

    def to_table(self) -> str:
        """The rows as a text table."""
        keys = list(dict.fromkeys(key for row in self.rows for key in row))  # every key, in order
        shown = {"epoch": "d", "lr": ".3g", "seconds": ".1f", "images_per_second": ",.0f"}
        formats = [shown.get(k, ".2%" if "accuracy" in k else ".4f") for k in keys]
        return format_table([[row.get(k, "-") for k in keys] for row in self.rows], keys, formats=formats)

    __repr__ = to_table


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with (Nesterov) momentum, or AdamW, as ``config`` says."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=config.lr,
            momentum=config.momentum or 0.0,
            nesterov=config.nesterov and bool(config.momentum),
            weight_decay=config.weight_decay,
        )
    beta1 = (
        {} if config.momentum is None else {"betas": (config.momentum, 0.999)}
    )  # else torch's (0.9, 0.999)
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay, **beta1)


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning rate of every optimiser step, as a plain function ``lr_at(step)``.

    ``step`` counts from 0 over the whole run (epoch ``e``, batch ``i`` is step ``e * steps_per_epoch
    + i``), so the rate depends on nothing but the step: a resumed run continues the schedule, and
    ``[lr_at(s) for s in range(config.epochs * steps_per_epoch)]`` draws it.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    peak, total = config.lr, config.epochs * steps_per_epoch
    if config.schedule == "onecycle":  # Smith & Topin (2019), the linear version
        warmup = max(1, round(config.warmup_fraction * total))

        def lr_at(step: int) -> float:
            if step <= warmup:  # rise from peak/25: a high rate too early would throw the weights away
                return peak * (1 / 25 + (1 - 1 / 25) * step / warmup)
            done = min(1.0, (step - warmup) / max(1, total - warmup))
            return peak * (1 + (1 / 25000 - 1) * done)  # the long descent settles into a minimum

    else:

        def lr_at(step: int) -> float:
            return peak

    return lr_at


def loss_function(
    name: str, label_smoothing: float = 0.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``name``: cross-entropy for outputs ``(B, K)`` or ``(B, T, K)`` (one answer per step), or
    the mean squared error for outputs ``(B,)`` or ``(B, 1)`` against float targets ``(B,)``."""
    if name == "mse":
        return lambda outputs, targets: F.mse_loss(outputs.reshape(targets.shape), targets)

    def cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # One answer per step (B, T, K): cross_entropy wants the classes in dimension 1.
        outputs = outputs.movedim(-1, 1) if outputs.dim() > 2 else outputs
        return F.cross_entropy(outputs, targets, label_smoothing=label_smoothing)

    return cross_entropy


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    loss_function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    lr_at: Callable[[int], float],
    first_step: int,
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler,
    channels_last: bool,
    grad_clip: float | None,
    on_log: Callable[[int, float], None],
    log_every: int,
) -> tuple[float, float | None, int]:
    """One pass over the training batches: notebook 02's loop, ready for a GPU.

    ``batches`` yields ``(x, y)`` stored anywhere: x ``(B, C, H, W)`` images or ``(B, T, D)`` sequences; y
    ``(B,)`` classes, ``(B, T)`` classes per step, or ``(B,)`` float values. ``dtype``: what autocast
    computes in (None: float32). ``on_log(steps_done, mean_loss)`` runs every ``log_every`` steps and at
    the end. Returns ``(mean loss, accuracy or None for a regression, samples)`` of the epoch.
    """
    model.train()
    # Running sums stay on the device: reading one (.item()) makes the CPU wait for the GPU.
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples = answers = 0
    steps = len(batches)  # type: ignore[arg-type]
    for i, (x, y) in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(first_step + i)  # the schedule: a plain function of the step
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            outputs = model(x)  # forward
            loss = loss_function(outputs.float(), y)  # loss, in float32
        optimizer.zero_grad()
        scaler.scale(loss).backward()  # backward (float16: of the loss times a large factor)
        scaler.unscale_(optimizer)  # the true gradients again, for clipping
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)  # update (float16: skipped when a gradient overflowed)
        scaler.update()
        loss_sum += loss.detach().double() * len(y)  # detach: keep no graph alive
        if not y.is_floating_point():  # classes: count the right answers
            correct += (outputs.argmax(dim=-1) == y).sum()
            answers += y.numel()
        samples += len(y)
        if (i + 1) % log_every == 0 or i + 1 == steps:
            on_log(i + 1, loss_sum.item() / samples)
    return loss_sum.item() / samples, (correct.item() / answers if answers else None), samples


def fit(
    model: nn.Module,
    train_data: TrainingData,
    val_data: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    config: TrainConfig | None = None,
    **options: Any,
) -> History:
    """Train ``model`` in place on ``train_data`` and return the :class:`History`, one row per epoch.

    ``fit`` alone decides where and how to compute (``device``, ``channels_last``, ``mixed_precision``):
    the model is moved there, and so is each batch. ``train_data`` is a :class:`course_utils.data.Batches`
    or any :class:`course_utils.data.TrainingData`; ``val_data`` (optional) fills the validation columns;
    ``options`` replace fields of ``config``: ``fit(model, train, val, config, epochs=5)``.

    Raises:
        TrainingDivergedError: the loss became NaN or infinite (with advice).
        CheckpointError: ``resume=True`` with a checkpoint of another model or run length.
        KeyboardInterrupt: re-raised after saying where the last checkpoint is.
    """
    unknown = sorted(set(options) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise TypeError(f"unknown training option(s) {', '.join(unknown)}; see TrainConfig")
    config = TrainConfig(**options) if config is None else replace(config, **options)
    if not isinstance(train_data, TrainingData):
        raise TypeError(
            "train_data must be iterable over (x, y) batches, with len() and set_epoch(epoch), like "
            f"course_utils.data.Batches; got {type(train_data).__name__}"
        )
    if len(train_data) == 0:
        raise ValueError("the training data has no batches (empty, or drop_last with too few samples)")
    device = get_device(config.device)
    precision = choose_precision(config.mixed_precision, device)
    convolutional = any(isinstance(m, nn.Conv2d) for m in model.modules())
    channels_last = convolutional if config.channels_last == "auto" else bool(config.channels_last)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    if device.type == "cuda" and not torch.are_deterministic_algorithms_enabled():
        torch.backends.cudnn.benchmark = True  # cuDNN times its algorithms once per shape, keeps the fastest
    # The compiled wrapper shares the parameters of `model`; checkpoints use `model`.
    step_model = torch.compile(model, dynamic=False) if config.compile else model
    steps_per_epoch = len(train_data)
    optimizer = make_optimizer(model, config)
    lr_at = learning_rate_schedule(config, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.use_grad_scaler)
    loss = loss_function(config.loss, config.label_smoothing)
    checkpoint = Path(config.checkpoint_dir) / "last.pt" if config.checkpoint_dir else None
    history = History(name=config.name)
    if config.resume and checkpoint is not None:
        history = _resume(checkpoint, config, model, optimizer, scaler)
    plot = None  # the live plot's display handle, once drawn
    started, first_epoch = time.perf_counter(), len(history)
    for epoch in range(first_epoch, config.epochs):
        spent = time.perf_counter() - started
        next_epoch_ends = spent + spent / max(1, epoch - first_epoch)  # at the mean pace so far
        if config.time_budget is not None and epoch > first_epoch and next_epoch_ends > config.time_budget:
            print(f"time budget of {config.time_budget:.0f} s reached after {epoch} epochs; stopping")
            break
        if device.type == "cpu":
            share_cpu_threads()  # between epochs: take only the cores other runs leave free
        epoch_start = time.perf_counter()
        # in the run's first epoch, after a tenth of it, fit says how long the whole training will take
        timing = (epoch_start, config.epochs - epoch) if epoch == first_epoch else None
        train_data.set_epoch(epoch)  # the order depends only on (seed, epoch): a resume is exact
        bar = _progress_bar(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", config.progress)
        try:
            with bar:
                train_loss, train_accuracy, samples = train_one_epoch(
                    step_model,
                    train_data,
                    optimizer,
                    loss,
                    lr_at,
                    epoch * steps_per_epoch,
                    device=device,
                    dtype=precision.dtype,
                    scaler=scaler,
                    channels_last=channels_last,
                    grad_clip=config.grad_clip,
                    on_log=partial(_log_point, bar, epoch, config.lr, config.log_every, timing),
                    log_every=config.log_every,
                )
            row = {"epoch": epoch + 1, "train_loss": train_loss}
            if train_accuracy is not None:
                row["train_accuracy"] = train_accuracy
            row["lr"] = lr_at(epoch * steps_per_epoch)
            row["images_per_second"] = samples / (time.perf_counter() - epoch_start)
            if val_data is not None:
                result = evaluate(model, val_data, loss=config.loss, mixed_precision=config.mixed_precision)
                row["val_loss"] = result.loss
                if result.accuracy is not None:
                    row["val_accuracy"] = result.accuracy
        except KeyboardInterrupt:
            saved = checkpoint is not None and checkpoint.exists()
            where = f"; the last checkpoint is {display_path(checkpoint)}" if saved else ""
            print(f"\ntraining interrupted during epoch {epoch + 1}{where}", file=sys.stderr)
            raise
        except torch.OutOfMemoryError:
            raise RuntimeError(
                f"the GPU ran out of memory with batches of {getattr(train_data, 'batch_size', '?')}: use "
                "smaller batches, mixed_precision='auto', or restart other notebooks' kernels"
            ) from None
        row["seconds"] = time.perf_counter() - epoch_start
        history.append(row)
        if config.live_plot and "IPython" in sys.modules:  # redraw the curves in place, in a notebook
            from IPython.display import display

            from course_utils.plots import plot_history

            figure = plot_history(history)
            if plot is None:
                plot = display(figure, display_id=True)
            else:
                plot.update(figure)
        every = config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0
        if checkpoint is not None and (epoch + 1 == config.epochs or every):
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "history": history.rows,
                "config": asdict(config),
                "rng": _random_state(),
            }
            atomic_write(checkpoint, lambda file, state=state: torch.save(state, file))
    return history


def _log_point(
    bar: Any,
    epoch: int,
    lr: float,
    log_every: int,
    timing: tuple[float, int] | None,
    steps: int,
    mean_loss: float,
) -> None:
    """Stop on a NaN loss (one NaN step makes the running sum NaN), else update the progress bar; with
    ``timing`` (the epoch's start, epochs left), say once, after a tenth of the epoch, how long it takes."""
    if not math.isfinite(mean_loss):
        raise TrainingDivergedError(
            f"the loss became NaN or infinite in epoch {epoch + 1}, by step {steps} (learning rate "
            f"{lr:g}). Try a lower learning rate (e.g. {lr / 10:g}), gradient clipping (grad_clip=1.0), "
            "or mixed_precision='fp32' to rule out overflow."
        )
    bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)
    bar.update(steps - bar.n)
    tenth = max(1, bar.total // 10)
    if timing is not None and not bar.disable and steps - log_every < tenth <= steps:
        seconds = (time.perf_counter() - timing[0]) / steps * bar.total * timing[1]
        duration = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
        bar.write(
            f"at this pace the training takes about {duration} here ({timing[1]} epochs of "
            f"{bar.total} steps, validation aside); fewer epochs or images make it shorter"
        )


def _progress_bar(total: int, description: str, enabled: bool) -> Any:
    """A tqdm bar: a widget in Jupyter, text elsewhere; calm text in batch runs (``COURSE_PROGRESS=text``),
    whose stored notebooks cannot show a widget."""
    if os.environ.get("COURSE_PROGRESS", "").lower() == "text":
        from tqdm import tqdm

        return tqdm(total=total, desc=description, disable=not enabled, file=sys.stdout, mininterval=30)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, disable=not enabled)


# Checkpoints ------------------------------------------------------------------------------------


def _random_state() -> dict[str, Any]:
    """Every random generator a run draws from, as plain values (safe to load with weights_only)."""
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _restore_random_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`fit` or :func:`save_weights`, refusing anything but tensors and data.

    ``torch.load(..., weights_only=True)``: a file that holds code (a pickled object) is refused, never
    run. Raises :class:`CheckpointError` saying what is wrong: no file, empty, truncated, unsafe, unreadable.
    """
    path = Path(path)
    again = "delete it and train again (or use another checkpoint)"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: train first, or check the path")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a regular file (a folder, a pipe): give a .pt file's path")
    try:
        with path.open("rb") as file:  # is_zipfile(path) would hide a PermissionError as "not a zip"
            if path.stat().st_size == 0 or not zipfile.is_zipfile(file):  # torch.save writes a zip
                raise CheckpointError(f"{path} is empty or truncated (an interrupted save or copy); {again}")
        return torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise CheckpointError(f"you may not read {path}: ask its owner to make it readable") from None
    except CheckpointError:
        raise
    except Exception as error:  # an UnpicklingError for unsafe contents; other types for damage
        unsafe = "weights_only" in str(error) or "GLOBAL" in str(error)
        why = "it holds code or objects, not only tensors (loading them would run code)" if unsafe else error
        raise CheckpointError(f"refused to load {path}: {why}; {again}") from None


def _load_model_state(model: nn.Module, state: dict[str, Any], path: Path) -> None:
    """Load a state dict, explaining a checkpoint of another model in one message."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        differences = " ".join(line.strip() for line in str(error).splitlines()[1:4])
        what = f"{path} was saved from another model than this {type(model).__name__}: {differences}"
        raise CheckpointError(
            f"{what} Build the same model (class and arguments) that was trained."
        ) from None


def _resume(
    path: Path, config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any
) -> History:
    """Load ``path`` into the run and return its history so far (empty, with a note, if there is none yet)."""
    if not path.exists():
        print(f"no checkpoint in {display_path(path.parent)} yet: starting from scratch")
        return History(name=config.name)
    state = read_checkpoint(path)
    if state.get("config", {}).get("epochs") != config.epochs:
        raise CheckpointError(
            f"{path} was written by a run of {state.get('config', {}).get('epochs')} epochs, but this run "
            f"asks for {config.epochs}: the schedule depends on the total, so resume with the same epochs"
        )
    _load_model_state(model, state["model"], path)
    optimizer.load_state_dict(state["optimizer"])  # its buffers move to where the parameters are
    scaler.load_state_dict(state["scaler"])
    _restore_random_state(state["rng"])
    history = History(state["history"], name=config.name)
    print(f"resumed from {display_path(path)} after epoch {len(history)}")
    return history


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Save a trained model's weights (and plain ``metadata``: accuracy, epochs, ...), atomically."""
    state = {"model": model.state_dict(), "metadata": metadata or {}}
    return atomic_write(path, lambda file: torch.save(state, file))


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights written by :func:`save_weights` (or a checkpoint of :func:`fit`) into ``model``."""
    state = read_checkpoint(path)
    if "model" not in state:
        raise CheckpointError(f"{path} holds no model weights: it was not written by save_weights or fit")
    _load_model_state(model, state["model"], Path(path))  # copied into the model's own device
    return model
