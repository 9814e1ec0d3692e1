"""The training loop that every notebook uses: :func:`fit`.

:func:`train_one_epoch` is the plain epoch that notebook 02 writes out by hand, line for line
(set the learning rate, forward, loss, ``zero_grad``, backward, update, add up the loss and
the correct answers), plus the few lines that let the same loop run fast on a GPU. :func:`fit`
calls it once per epoch and puts the other extras *around* it, never inside it. Each extra is
switched by one named setting of :class:`TrainConfig`, in the spirit of torchvision's
classification recipes.

In the loop (:func:`train_one_epoch`):

* **device**: each batch is moved to the training device (a no-op when it is already there);
* **channels-last**: 4-D inputs are laid out channels-last when the model is;
* **mixed precision**: ``torch.autocast`` around forward and loss, and a
  ``torch.amp.GradScaler`` that is switched on only for float16 (switched off it passes the
  loss and the step straight through, so there is no ``if`` for it);
* **gradient clipping** (``grad_clip``);
* **running sums on the device**, read only every ``log_every`` steps.

Around the loop (:func:`fit`):

* the **schedule**, a plain function of the step (:func:`learning_rate_schedule`);
* ``torch.compile``, label smoothing, the optimiser (:func:`make_optimizer`);
* the **progress bar** and the **divergence check** (a NaN or infinite loss stops the run
  with advice), both at the log points;
* the **time budget**, **checkpoints** and exact **resume**, the **live plot** of the curves,
  and clear messages for **Ctrl-C** and for a GPU that runs **out of memory**.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from course_utils.data import TrainingData
from course_utils.environment import adapt_cpu_threads, get_device
from course_utils.evaluation import evaluate
from course_utils.files import display_path
from course_utils.history import History
from course_utils.precision import Precision, resolve_precision

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
            ``gamma`` at each epoch in ``milestones``: the ResNet paper's schedule). See
            :func:`learning_rate_schedule`.
        label_smoothing: spread this much target probability over all classes.
        grad_clip: clip the gradient's global norm to this value (useful for RNNs); None: off.

    Speed:
        mixed_precision: ``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"`` (see
            :func:`course_utils.precision.resolve_precision`).
        channels_last: ``"auto"`` (on for models with 2-D convolutions), True or False.
        compile: wrap the model in ``torch.compile`` (slow first epoch, faster after).

    Bookkeeping:
        device: where the model trains: ``"auto"`` (CUDA, then Apple MPS, then the CPU: see
            :func:`course_utils.environment.get_device`), ``"cuda"``, ``"cpu"``... The
            batches are moved there one at a time, wherever they are stored.
        time_budget: seconds; no new epoch starts once the next one would not fit.
        checkpoint_dir: where ``last.pt`` is written; None: no checkpoints.
        checkpoint_every: also write every N epochs (the last epoch is always written).
        resume: continue from ``checkpoint_dir/last.pt`` when it exists.
        progress: show a progress bar per epoch.
        live_plot: redraw the training curves after every epoch (in a notebook).
        log_every: update the bar's loss and accuracy (and check for a NaN loss) every N
            steps (each look waits for the GPU, so not every step).
        name: a label for the run's :class:`History` (plots that compare runs show it).
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
        if not isinstance(self.log_every, int) or self.log_every < 1:
            problems.append(f"log_every must be a positive integer (steps), got {self.log_every!r}")
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
# The optimiser and the learning-rate schedule
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


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning rate of every optimiser step of a run, as a plain function ``lr_at(step)``.

    ``step`` counts optimiser steps from 0 over the whole run (epoch ``e``, batch ``i`` is
    step ``e * steps_per_epoch + i``), so the rate depends on nothing but the step: a resumed
    run picks the schedule up where it stopped, and the curve can be drawn with
    ``[lr_at(s) for s in range(config.epochs * steps_per_epoch)]``.

    The schedules (``config.lr`` is the peak, or the starting rate):

    * ``"onecycle"`` (Smith & Topin 2019, linear version): rises linearly from ``lr/25`` to
      ``lr`` over ``warmup_fraction`` of the steps, then falls linearly towards ``lr/25000``
      at the end: a high rate in the middle of training explores, the long descent to almost
      zero settles into a minimum.
    * ``"cosine"``: rises linearly over ``warmup_epochs`` (from ``lr/warmup_steps``), then
      follows half a cosine down to 0 at the end.
    * ``"multistep"``: ``lr * gamma ** k`` where ``k`` counts the ``milestones`` (epochs)
      already reached: the ResNet paper's "divide by 10 at epochs 100 and 150".
    * ``"constant"``: ``lr`` throughout.

    Args:
        config: the run's settings (``schedule``, ``lr``, ``epochs`` and the schedule's own).
        steps_per_epoch: optimiser steps per epoch, ``len(train_data)``.

    Returns:
        ``lr_at(step: int) -> float``, the absolute learning rate at that step.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    total_steps = config.epochs * steps_per_epoch
    peak = config.lr

    if config.schedule == "onecycle":
        warmup_steps = max(1, round(config.warmup_fraction * total_steps))
        start, end = 1 / 25, 1 / 25000  # fractions of the peak at step 0 and at the end

        def lr_at(step: int) -> float:
            if step <= warmup_steps:
                return peak * (start + (1.0 - start) * step / warmup_steps)
            progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
            return peak * (1.0 + (end - 1.0) * progress)

    elif config.schedule == "cosine":
        warmup_steps = max(1, int(round(config.warmup_epochs * steps_per_epoch)))

        def lr_at(step: int) -> float:
            if step < warmup_steps:
                return peak * ((step + 1) / warmup_steps)
            progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
            return peak * (0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))

    elif config.schedule == "multistep":
        milestone_steps = [epoch * steps_per_epoch for epoch in config.milestones]

        def lr_at(step: int) -> float:
            rate = peak
            for milestone in milestone_steps:
                if step >= milestone:
                    # One multiplication per milestone passed, as torch's MultiStepLR does:
                    # the same rates to the last bit (peak * gamma**k can differ there).
                    rate *= config.gamma
            return rate

    else:

        def lr_at(step: int) -> float:
            return peak

    return lr_at


# ---------------------------------------------------------------------------------------
# One epoch: the notebook-02 loop, plus device, memory layout and precision
# ---------------------------------------------------------------------------------------


def train_one_epoch(
    model: nn.Module,
    batches: TrainingData,
    optimizer: torch.optim.Optimizer,
    loss_function: nn.Module,
    lr_at: Callable[[int], float],
    first_step: int,
    *,
    device: torch.device,
    precision: Precision,
    scaler: torch.amp.GradScaler,
    channels_last: bool,
    grad_clip: float | None,
    log_every: int,
    on_log: Callable[[int, float, float], None],
) -> tuple[float, float, int]:
    """One pass over the training batches: the loop of notebook 02, ready for a GPU.

    Args:
        model: the classifier being trained, already on ``device``.
        batches: the epoch's ``(x, y)`` batches, x ``(B, C, H, W)`` float, y ``(B,)`` int64,
            stored anywhere (each is moved to ``device``).
        optimizer: its learning rate is set from ``lr_at`` before every step.
        loss_function: ``loss_function(logits (B, K), y (B,)) -> scalar``.
        lr_at: the schedule, from :func:`learning_rate_schedule`.
        first_step: the run's step number of this epoch's first batch.
        device: where to compute.
        precision: from :func:`course_utils.precision.resolve_precision`; its ``dtype`` is
            autocast's (None: plain float32, autocast off).
        scaler: ``torch.amp.GradScaler``; enabled only for float16, otherwise a pass-through.
        channels_last: lay 4-D inputs out channels-last (the model's layout).
        grad_clip: the gradient's maximal global norm, or None.
        log_every: call ``on_log`` every this many steps, and after the last.
        on_log: ``on_log(steps_done, mean_loss, accuracy)`` with the epoch's figures so far.

    Returns:
        ``(mean_loss, accuracy, samples)`` of the epoch's training batches.
    """
    model.train()
    # Running sums stay on the device: reading one (.item()) makes the CPU wait until the GPU
    # has finished every queued step, which would stall the GPU at every step. We read them
    # only every `log_every` steps.
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    steps = len(batches)
    # A copy to a GPU may run in the background; one to the CPU must be finished before the
    # CPU reads it, so it is not asynchronous. (No copy at all when a batch is already there.)
    non_blocking = device.type == "cuda"
    for i, (images, labels) in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(first_step + i)  # the schedule: a plain function of the step
        images = images.to(device, non_blocking=non_blocking)  # to the training device
        labels = labels.to(device, non_blocking=non_blocking)
        if channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.dtype is not None):
            logits = model(images)  # forward
            loss = loss_function(logits, labels)  # loss (autocast computes it in float32)
        optimizer.zero_grad()
        scaler.scale(loss).backward()  # backward (float16: of the loss times a large factor)
        scaler.unscale_(optimizer)  # the true gradients again, for clipping
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)  # update (float16: skipped when a gradient overflowed)
        scaler.update()
        loss_sum += loss.detach().double() * len(labels)  # detach: keep no graph alive
        correct += (logits.argmax(dim=1) == labels).sum()
        seen += len(labels)
        if (i + 1) % log_every == 0 or i + 1 == steps:
            on_log(i + 1, loss_sum.item() / seen, correct.item() / seen)
    return loss_sum.item() / seen, correct.item() / seen, seen


# ---------------------------------------------------------------------------------------
# The extras around the loop
# ---------------------------------------------------------------------------------------


def uses_convolutions(model: nn.Module) -> bool:
    """True when the model has 2-D convolutions (and so may gain from channels-last)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _progress_bar(total: int, description: str, enabled: bool) -> Any:
    """A tqdm bar: a widget in Jupyter, text in a terminal, and calm text in batch runs.

    Batch runs (``make course``, ``make outputs``, papermill) set ``COURSE_PROGRESS=text``: a widget would be
    stored as an unreadable placeholder, so a plain text bar that redraws rarely is used.
    """
    if os.environ.get("COURSE_PROGRESS", "").lower() == "text":
        from tqdm import tqdm

        return tqdm(
            total=total, desc=description, disable=not enabled, file=sys.stdout, mininterval=30, ascii=True
        )
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, disable=not enabled, leave=True)


class _LogPoint:
    """What :func:`fit` does at each log point of an epoch: stop on a NaN loss, update the bar.

    A NaN or infinite loss at any step makes the running loss sum NaN or infinite, so looking
    at the mean every ``log_every`` steps catches it without waiting for the GPU every step.
    """

    def __init__(self, bar: Any, epoch: int, config: TrainConfig) -> None:
        self.bar, self.epoch, self.config = bar, epoch, config
        self.checked_steps = 0

    def __call__(self, steps_done: int, mean_loss: float, accuracy: float) -> None:
        if not math.isfinite(mean_loss):
            first, lr = self.checked_steps + 1, self.config.lr
            steps = f"step {first}" if first == steps_done else f"one of steps {first} to {steps_done}"
            raise TrainingDivergedError(
                f"the loss became NaN or infinite in epoch {self.epoch + 1}, at {steps} (learning rate "
                f"{lr:g}). Try a lower learning rate (e.g. {lr / 10:g}), gradient clipping "
                "(grad_clip=1.0), or mixed_precision='fp32' to rule out overflow."
            )
        self.checked_steps = steps_done
        self.bar.set_postfix(loss=f"{mean_loss:.4f}", acc=f"{accuracy:.2%}", refresh=False)
        self.bar.update(steps_done - self.bar.n)


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


def _plain_config(config: TrainConfig) -> dict[str, Any]:
    """The config as plain values, safe for ``weights_only`` loading."""
    plain = asdict(config)
    plain["milestones"] = list(config.milestones)
    return plain


def _resume_or_start(
    checkpoint: Path | None,
    config: TrainConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> History:
    """The run's history so far: the checkpoint's (loaded into the run) with ``resume=True``, else empty.

    The learning rate comes from the step number, so model, optimiser, scaler and the random
    state are all there is to restore; the data order comes from ``set_epoch``.
    """
    if not config.resume or checkpoint is None:
        return History(name=config.name)
    if not checkpoint.exists():
        if config.progress:
            print(f"no checkpoint in {display_path(config.checkpoint_dir)} yet: starting from scratch")
        return History(name=config.name)
    state = load_checkpoint(checkpoint, model, optimizer=optimizer, scaler=scaler, restore_rng=True)
    saved_epochs = state["config"].get("epochs")
    if saved_epochs is not None and saved_epochs != config.epochs:
        raise CheckpointError(
            f"{checkpoint} was written by a run of {saved_epochs} epochs, but this run asks for "
            f"{config.epochs}; the learning-rate schedule depends on the total, so resume with "
            f"epochs={saved_epochs} (or start a new run in another checkpoint_dir)"
        )
    history = History.from_dict(state["history"])  # one row per finished epoch
    history.name = config.name
    if config.progress:
        print(f"resumed from {display_path(checkpoint)} after epoch {len(history)}")
    return history


def _no_time_for_another_epoch(config: TrainConfig, spent: float, epochs_done: int) -> bool:
    """True when the time budget would be exceeded by one more epoch of the average length."""
    if config.time_budget is None or epochs_done == 0:
        return False
    return spent + spent / epochs_done > config.time_budget


# ---------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    train_data: TrainingData,
    val_data: Any = None,
    config: TrainConfig | None = None,
    **options: Any,
) -> History:
    """Train ``model`` on ``train_data`` and return the per-epoch :class:`History`.

    ``fit`` alone decides where and how to compute: the device (``config.device``), the
    memory layout (``channels_last``) and the precision (``mixed_precision``). The model is
    moved there, and so is each batch, wherever the data are stored.

    Args:
        model: a classifier ``(B, C, H, W) -> (B, K)`` logits; it is trained in place and
            moved to the training device.
        train_data: the training batches: a :class:`course_utils.data.Batches` (shuffled,
            maybe augmented) or anything else that is a
            :class:`course_utils.data.TrainingData` (iterable over ``(x, y)``, with ``len()``
            and ``set_epoch(e)``).
        val_data: batches for the validation curves (any iterable of ``(x, y)``), or None.
        config: a :class:`TrainConfig`; ``options`` override its fields, e.g.
            ``fit(model, train, val, epochs=5, lr=0.05)``.

    Returns:
        The :class:`History`, one row per finished epoch (with a resumed run, the rows
        of the earlier epochs come from the checkpoint).

    Raises:
        TrainingDivergedError: the loss became NaN or infinite.
        TypeError: ``train_data`` lacks ``set_epoch`` or ``len()``.
        RuntimeError: out of GPU memory (with advice), or the device is not on this machine.
        CheckpointError: ``resume=True`` with a checkpoint of another model or run length.
        KeyboardInterrupt: re-raised after saying where the last checkpoint is.
    """
    config = make_config(config, **options)
    if not isinstance(train_data, TrainingData):
        raise TypeError(
            f"train_data must be iterable over (x, y) batches, with len() (batches per epoch) and "
            f"set_epoch(epoch), like course_utils.data.Batches (see course_utils.data.TrainingData); "
            f"got {type(train_data).__name__}"
        )
    device = get_device(config.device)
    precision = resolve_precision(config.mixed_precision, device)
    channels_last = uses_convolutions(model) if config.channels_last == "auto" else bool(config.channels_last)
    model.to(device)
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
    lr_at = learning_rate_schedule(config, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.use_grad_scaler)
    loss_function = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    checkpoint = _checkpoint_path(config)
    history = _resume_or_start(checkpoint, config, model, optimizer, scaler)
    start_epoch = len(history)  # the epochs a resumed run has already done
    live_plot = _LivePlot(config.live_plot)
    run_start = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        spent = time.perf_counter() - run_start
        if _no_time_for_another_epoch(config, spent, epochs_done=epoch - start_epoch):
            if config.progress:
                print(
                    f"time budget of {config.time_budget:.0f} s reached after {epoch} epochs "
                    f"({spent:.0f} s); stopping early"
                )
            break
        if device.type == "cpu":
            # On a shared CPU, use only the cores other processes leave free (and take them
            # back when they are free again): competing threads slow both runs many times over.
            adapt_cpu_threads()
        epoch_start = time.perf_counter()
        try:
            train_data.set_epoch(epoch)  # the data order depends only on (seed, epoch): exact resume
            bar = _progress_bar(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", config.progress)
            with bar, _explain_out_of_memory(getattr(train_data, "batch_size", None)):
                train_loss, train_accuracy, samples = train_one_epoch(
                    step_model,
                    train_data,
                    optimizer,
                    loss_function,
                    lr_at,
                    epoch * steps_per_epoch,
                    device=device,
                    precision=precision,
                    scaler=scaler,
                    channels_last=channels_last,
                    grad_clip=config.grad_clip,
                    log_every=config.log_every,
                    on_log=_LogPoint(bar, epoch, config),
                )
            train_seconds = time.perf_counter() - epoch_start
            row = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_accuracy": train_accuracy,
                "lr": lr_at(epoch * steps_per_epoch),
                "images_per_second": samples / train_seconds,
            }
            if val_data is not None:
                result = evaluate(model, val_data, mixed_precision=config.mixed_precision)
                row["val_loss"], row["val_accuracy"] = result.loss, result.accuracy
            row["seconds"] = time.perf_counter() - epoch_start
        except KeyboardInterrupt:
            where = (
                f"; the last checkpoint is {display_path(checkpoint)}, continue with resume=True"
                if checkpoint
                else ""
            )
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
                scaler=scaler,
                epoch=epoch + 1,
                history=history.to_dict(),
                config=_plain_config(config),
            )
    return history
