"""The training loop that every notebook uses: :func:`fit`.

One loop, written out in :func:`fit` so that a learner can read it top to bottom:
for each epoch, for each batch: forward, loss, backward, optimiser step, schedule step.
Everything around it (mixed precision, channels-last, ``torch.compile``, checkpoints, the
progress bar, the time budget, clear errors) is switched by one named setting each, all
gathered in :class:`TrainConfig`, in the spirit of torchvision's classification recipes.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from course_utils.evaluation import evaluate
from course_utils.history import History
from course_utils.precision import Precision, autocast_context, resolve_precision

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "onecycle", "cosine", "multistep")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of :func:`fit`, with the default a careful practitioner would pick.

    Optimisation:
        epochs: passes over the training data.
        optimizer: ``"sgd"`` (with ``momentum`` and ``nesterov``) or ``"adamw"``.
        lr: the peak learning rate (for ``onecycle``/``cosine``) or the starting one.
        momentum, nesterov: SGD's momentum (also AdamW's beta1) and Nesterov's variant.
        weight_decay: L2 penalty (SGD) or decoupled weight decay (AdamW).
        schedule: ``"constant"``, ``"onecycle"`` (warm up linearly from ``lr/25`` to ``lr``
            over ``warmup_fraction`` of training, then anneal linearly to almost zero:
            Smith & Topin 2019), ``"cosine"`` (linear
            warm-up for ``warmup_epochs``, then cosine to zero), ``"multistep"`` (multiply by
            ``gamma`` at each epoch in ``milestones``: the ResNet paper's schedule).
        label_smoothing: spread this much target probability over all classes.
        grad_clip: clip the gradient's global norm to this value (useful for RNNs); None: off.

    Speed:
        mixed_precision: ``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"`` (see
            :func:`course_utils.precision.resolve_precision`).
        channels_last: ``"auto"`` (on for models with 2-D convolutions), True or False.
        compile: wrap the model in ``torch.compile`` (slow first epoch, faster after).

    Bookkeeping:
        device: ``"auto"`` means the device the training batches are on.
        time_budget: seconds; no new epoch starts once the next one would not fit.
        checkpoint_dir: where ``last.pt`` is written; None: no checkpoints.
        checkpoint_every: also write every N epochs (the last epoch is always written).
        resume: continue from ``checkpoint_dir/last.pt`` when it exists.
        progress: show a progress bar per epoch.
        live_plot: redraw the training curves after every epoch (in a notebook).
        log_every: update the bar's loss and accuracy every N steps (each update waits for
            the GPU, so not every step).
    """

    epochs: int = 10
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    warmup_fraction: float = 0.25
    warmup_epochs: float = 1.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    mixed_precision: str | bool = "auto"
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

    def validate(self) -> None:
        """Raise ValueError with a clear message for a setting that cannot work."""
        problems = []
        if not isinstance(self.epochs, int) or self.epochs < 1:
            problems.append(f"epochs must be a positive integer, got {self.epochs!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr must be a positive number, got {self.lr!r}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if not 0 < self.warmup_fraction < 1:
            problems.append(f"warmup_fraction must be in (0, 1), got {self.warmup_fraction!r}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            problems.append(f"grad_clip must be positive or None, got {self.grad_clip!r}")
        if self.time_budget is not None and self.time_budget <= 0:
            problems.append(
                f"time_budget must be a positive number of seconds or None, got {self.time_budget!r}"
            )
        if self.resume and not self.checkpoint_dir:
            problems.append("resume=True needs checkpoint_dir: the folder that holds last.pt")
        if problems:
            raise ValueError("invalid training settings:\n  " + "\n  ".join(problems))


def make_config(config: TrainConfig | None = None, **options: Any) -> TrainConfig:
    """``config`` (or the defaults) with ``options`` replacing some fields; unknown names are refused."""
    base = config or TrainConfig()
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown training option(s) {unknown}; valid options: {sorted(known)}")
    if "milestones" in options:
        options["milestones"] = tuple(options["milestones"])
    result = replace(base, **options)
    result.validate()
    return result


# ---------------------------------------------------------------------------------------
# Building blocks of the loop
# ---------------------------------------------------------------------------------------


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with (Nesterov) momentum or AdamW, as the config says."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
    return torch.optim.AdamW(
        params, lr=config.lr, betas=(config.momentum, 0.999), weight_decay=config.weight_decay
    )


@dataclass
class OneCycle:
    """Learning-rate factor of the one-cycle policy (Smith & Topin 2019), linear version.

    Rises linearly from ``1/25`` to 1 over ``warmup_steps``, then falls linearly to
    ``1/25000`` at ``total_steps``: a high rate in the middle of training explores, the long
    descent to almost zero settles into a minimum. A small class rather than a lambda so
    that the scheduler's state can be saved; it also works for runs of only a few steps.
    """

    warmup_steps: int
    total_steps: int
    start: float = 1 / 25
    end: float = 1 / 25000

    def __call__(self, step: int) -> float:
        if step <= self.warmup_steps:
            return self.start + (1.0 - self.start) * step / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return 1.0 + (self.end - 1.0) * progress


@dataclass
class WarmupCosine:
    """Learning-rate factor: linear warm-up from ~0 to 1, then cosine decay to 0.

    A small class rather than a lambda so that the scheduler's state can be saved.
    """

    warmup_steps: int
    total_steps: int

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler that is stepped once per optimiser step (also for per-epoch schedules)."""
    total_steps = config.epochs * steps_per_epoch
    if config.schedule == "onecycle":
        warmup = max(1, round(config.warmup_fraction * total_steps))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, OneCycle(warmup, total_steps))
    if config.schedule == "cosine":
        warmup = int(round(config.warmup_epochs * steps_per_epoch))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(max(1, warmup), total_steps))
    if config.schedule == "multistep":
        milestones = [m * steps_per_epoch for m in config.milestones]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=config.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _constant_factor)


def _constant_factor(step: int) -> float:
    return 1.0


def uses_convolutions(model: nn.Module) -> bool:
    """True when the model has 2-D convolutions (and so may gain from channels-last)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _progress_bar(total: int, description: str, enabled: bool) -> Any:
    """A tqdm bar: a widget in Jupyter, text in a terminal, and calm text in batch runs.

    Batch runs (papermill, ``make outputs``) set ``COURSE_PROGRESS=text``: a widget would be
    stored as an unreadable placeholder, so a plain text bar that redraws rarely is used.
    """
    if os.environ.get("COURSE_PROGRESS", "").lower() == "text":
        from tqdm import tqdm

        return tqdm(
            total=total, desc=description, disable=not enabled, file=sys.stdout, mininterval=30, ascii=True
        )
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, disable=not enabled, leave=True)


class _LivePlot:
    """Redraws the training curves in place after each epoch, when running in IPython."""

    def __init__(self, enabled: bool) -> None:
        self.handle = None
        self.enabled = enabled and "IPython" in sys.modules
        if self.enabled:
            from IPython import get_ipython

            self.enabled = get_ipython() is not None

    def update(self, history: History) -> None:
        if not self.enabled:
            return
        from IPython.display import display

        from course_utils.plots import plot_history

        figure = plot_history(history)
        if self.handle is None:
            self.handle = display(figure, display_id=True)
        else:
            self.handle.update(figure)


@contextlib.contextmanager
def _explain_out_of_memory(batch_size: int | None) -> Iterator[None]:
    """Turn a CUDA out-of-memory error into advice."""
    try:
        yield
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise RuntimeError(
            f"the GPU ran out of memory with batch size {batch_size}. Use a smaller batch "
            "(e.g. half), turn on mixed_precision='auto', or free memory held by other "
            "notebooks (restart their kernels)."
        ) from None


def _checkpoint_path(config: TrainConfig) -> Path | None:
    return Path(config.checkpoint_dir) / "last.pt" if config.checkpoint_dir else None


# ---------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    train_data: Any,
    val_data: Any = None,
    config: TrainConfig | None = None,
    **options: Any,
) -> History:
    """Train ``model`` on ``train_data`` and return the per-epoch :class:`History`.

    Args:
        model: a classifier ``(B, C, H, W) -> (B, K)`` logits; it is trained in place and
            moved to the data's device.
        train_data: a :class:`course_utils.data.Batches` (shuffled, maybe augmented):
            anything iterable over ``(x, y)`` on one device, with ``len()`` (batches),
            ``set_epoch(e)``, ``device`` and ``batch_size``.
        val_data: batches for the validation curves, or None.
        config: a :class:`TrainConfig`; ``options`` override its fields, e.g.
            ``fit(model, train, val, epochs=5, lr=0.05)``.

    Returns:
        The :class:`History`, one row per finished epoch (with a resumed run, the rows
        of the earlier epochs come from the checkpoint).

    Raises:
        TrainingDivergedError: the loss became NaN or infinite.
        RuntimeError: out of GPU memory (with advice), or a device mismatch.
        CheckpointError: ``resume=True`` with a checkpoint of another model.
        KeyboardInterrupt: re-raised after saying where the last checkpoint is.
    """
    config = make_config(config, **options)
    data_device = torch.device(getattr(train_data, "device", "cpu"))
    if config.device != "auto":
        from course_utils.environment import get_device

        wanted = get_device(config.device)
        if wanted.type != data_device.type:
            raise RuntimeError(
                f"fit(device={config.device!r}) but the training batches are on {data_device}; "
                f"build them with make_batches(..., device={str(wanted)!r})"
            )
    device = data_device
    model.to(device)
    precision: Precision = resolve_precision(config.mixed_precision, device)
    channels_last = uses_convolutions(model) if config.channels_last == "auto" else bool(config.channels_last)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda" and not torch.are_deterministic_algorithms_enabled():
        # Let cuDNN time its algorithms once per input shape and keep the fastest.
        torch.backends.cudnn.benchmark = True
    # The compiled wrapper shares its parameters with `model`; checkpoints use `model`.
    # dynamic=False: a smaller last batch gets its own static graph instead of turning
    # every step into slower shape-generic code.
    step_model = torch.compile(model, dynamic=False) if config.compile else model

    steps_per_epoch = len(train_data)
    if steps_per_epoch == 0:
        raise ValueError(
            "the training data has no batches (empty dataset, or drop_last with too few samples)"
        )
    optimizer = make_optimizer(model, config)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type) if precision.use_grad_scaler else None
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    history = History(name=config.name)
    start_epoch = 0
    checkpoint = _checkpoint_path(config)
    if config.resume and checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(
            checkpoint, model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, restore_rng=True
        )
        saved_epochs = state["config"].get("epochs")
        if saved_epochs is not None and saved_epochs != config.epochs:
            raise CheckpointError(
                f"{checkpoint} was written by a run of {saved_epochs} epochs, but this run asks for "
                f"{config.epochs}; the learning-rate schedule depends on the total, so resume with "
                f"epochs={saved_epochs} (or start a new run in another checkpoint_dir)"
            )
        history = History.from_dict(state["history"])
        history.name = config.name
        start_epoch = int(state["epoch"])
        if config.progress:
            print(f"resumed from {checkpoint} after epoch {start_epoch}")
    elif config.resume and config.progress:
        print(f"no checkpoint in {config.checkpoint_dir} yet: starting from scratch")

    live_plot = _LivePlot(config.live_plot)
    run_start = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        if config.time_budget is not None and len(history) > start_epoch:
            spent = time.perf_counter() - run_start
            per_epoch = spent / (len(history) - start_epoch)
            if spent + per_epoch > config.time_budget:
                if config.progress:
                    print(
                        f"time budget of {config.time_budget:.0f} s reached after {epoch} epochs "
                        f"({spent:.0f} s); stopping early"
                    )
                break
        try:
            row = _train_one_epoch(
                step_model,
                train_data,
                optimizer,
                scheduler,
                scaler,
                criterion,
                precision,
                device,
                channels_last,
                config,
                epoch,
            )
            if val_data is not None:
                result = evaluate(
                    model, val_data, mixed_precision=config.mixed_precision, channels_last=channels_last
                )
                row["val_loss"], row["val_accuracy"] = result.loss, result.accuracy
            row["seconds"] = time.perf_counter() - row.pop("_start")
        except KeyboardInterrupt:
            where = f"; the last checkpoint is {checkpoint}, continue with resume=True" if checkpoint else ""
            print(f"\ntraining interrupted during epoch {epoch + 1}{where}", file=sys.stderr)
            raise
        history.append(row)
        live_plot.update(history)
        last_epoch = epoch + 1 == config.epochs
        every = config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0
        if checkpoint is not None and (last_epoch or every):
            save_checkpoint(
                checkpoint,
                model,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                epoch=epoch + 1,
                history=history.to_dict(),
                config=_plain_config(config),
            )
    return history


def _plain_config(config: TrainConfig) -> dict[str, Any]:
    """The config as plain values, safe for ``weights_only`` loading."""
    plain = asdict(config)
    plain["milestones"] = list(config.milestones)
    return plain


def _train_one_epoch(
    model: nn.Module,
    train_data: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    criterion: nn.Module,
    precision: Precision,
    device: torch.device,
    channels_last: bool,
    config: TrainConfig,
    epoch: int,
) -> dict[str, float]:
    """One pass over the training data. Returns the epoch's row of metrics."""
    start = time.perf_counter()
    model.train()
    if hasattr(train_data, "set_epoch"):
        train_data.set_epoch(epoch)  # the data order depends only on (seed, epoch): exact resume
    lr = optimizer.param_groups[0]["lr"]
    # Running sums stay on the device: reading them (.item()) waits for the GPU, so we do
    # that only every `log_every` steps.
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    first_bad_step = torch.full((), -1, device=device, dtype=torch.int64)
    seen = 0
    bar = _progress_bar(len(train_data), f"epoch {epoch + 1}/{config.epochs}", config.progress)
    batch_size = getattr(train_data, "batch_size", None)
    with bar, _explain_out_of_memory(batch_size):
        for step, (x, y) in enumerate(train_data):
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            # --- the heart of training: forward, loss, backward, step ---
            with autocast_context(device, precision):
                logits = model(x)
                loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            # --- bookkeeping ---
            detached = loss.detach()
            first_bad_step = torch.where(
                (first_bad_step < 0) & ~torch.isfinite(detached),
                torch.tensor(step, device=device),
                first_bad_step,
            )
            loss_sum += detached.double() * y.numel()
            correct += (logits.detach().argmax(dim=1) == y).sum()
            seen += y.numel()
            if (step + 1) % config.log_every == 0 or step + 1 == len(train_data):
                _stop_if_diverged(first_bad_step, epoch, config)
                bar.set_postfix(
                    loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.2%}", refresh=False
                )
                bar.update((step + 1) - bar.n)
    _stop_if_diverged(first_bad_step, epoch, config)
    train_seconds = time.perf_counter() - start
    return {
        "epoch": epoch + 1,
        "train_loss": loss_sum.item() / max(1, seen),
        "train_accuracy": correct.item() / max(1, seen),
        "lr": lr,
        "images_per_second": seen / train_seconds,
        "_start": start,
    }


def _stop_if_diverged(first_bad_step: torch.Tensor, epoch: int, config: TrainConfig) -> None:
    bad = int(first_bad_step.item())
    if bad >= 0:
        raise TrainingDivergedError(
            f"the loss became NaN or infinite at epoch {epoch + 1}, step {bad + 1} (learning rate "
            f"{config.lr:g}). Try a lower learning rate (e.g. {config.lr / 10:g}), gradient clipping "
            "(grad_clip=1.0), or mixed_precision='fp32' to rule out overflow."
        )
