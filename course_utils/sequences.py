"""Sequence tasks that test memory: the adding problem, copy memory, and sequential MNIST.

The tasks on which recurrent networks are traditionally tested, as Bai, Kolter & Koltun (2018), "An
empirical evaluation of generic convolutional and recurrent networks for sequence modeling", set them
to compare those with a temporal convolutional network (:class:`course_utils.models.TCN`):

* :func:`adding_problem` (Hochreiter & Schmidhuber, 1997): random numbers, two of them marked; the
  answer is their sum (a regression, one answer per sequence).
* :func:`copy_memory` (Hochreiter & Schmidhuber, 1997): ten digits, a long blank, a delimiter; then
  the network must repeat the ten digits (one answer per step).
* :func:`pixel_sequences`: an MNIST digit read one pixel per step (Le, Jaitly & Hinton, 2015), here
  shrunk to 14x14 (196 steps) so that a laptop can train on it, or with its pixels in a fixed random
  order (permuted sequential MNIST).

Every sequence is a float tensor ``(N, T, D)``: ``N`` sequences of ``T`` steps of ``D`` values. A
:class:`SequenceTask` holds a task's ``Batches`` for :func:`course_utils.training.fit`, the name of its
loss, and its chance level.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import (
    Batches,
    ImageDataset,
    permute_pixels,
    random_generator,
    stratified_indices,
    train_val_split,
)
from course_utils.evaluation import EvalResult, count_parameters
from course_utils.models import TCN, SequenceRNN
from course_utils.training import History, TrainConfig, TrainingDivergedError, fit, loss_function

#: The adding problem's chance level: always answering 1, the mean of the sum of two U(0, 1) values,
#: scores their variance, 2 * 1/12 = 1/6 = 0.167.
ADDING_CHANCE_MSE = 1 / 6
#: The copy task's symbols: 0 is the blank, 1..8 the digits to remember, 9 the delimiter.
COPY_BLANK, COPY_DELIMITER, COPY_SYMBOLS = 0, 9, 10
COPY_MEMORY_LENGTH = 10  # digits to remember, as in Bai et al.
_SPLIT_STREAMS, _PERMUTATION_STREAM = {"train": 10, "val": 11, "test": 12}, 13  # random_generator streams


def adding_problem(num_samples: int, length: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of the adding problem, as in Bai et al. (2018).

    Each of the ``length`` steps holds two values: a number drawn uniformly from [0, 1), and a marker,
    1 at exactly two random steps and 0 elsewhere. The target is the sum of the two marked numbers:
    the model must notice the markers, hold the first number until the end, and ignore the rest.
    (Hochreiter & Schmidhuber put the first marker among the first ten steps; Bai et al. anywhere.)

    Returns:
        ``(x, y)``: x float32 ``(N, T, 2)`` (numbers, markers), y float32 ``(N,)`` in [0, 2).
    """
    if length < 2:
        raise ValueError(f"length must be at least 2 (two steps get a marker), got {length}")
    generator = torch.Generator().manual_seed(seed)
    numbers = torch.rand(num_samples, length, generator=generator)
    # Two distinct positions per sequence, uniformly: the two largest of T random keys.
    positions = torch.rand(num_samples, length, generator=generator).topk(2, dim=1).indices  # (N, 2)
    markers = torch.zeros(num_samples, length).scatter_(1, positions, 1.0)
    return torch.stack([numbers, markers], dim=2), numbers.gather(1, positions).sum(dim=1)


def copy_memory(num_samples: int, blank_length: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of the copy-memory task, as in Bai et al.'s code (locuslab/TCN), one-hot encoded.

    With ``m = COPY_MEMORY_LENGTH`` (10) and ``T = blank_length``, both ``T + 2m`` steps long::

        input   d1 d2 .. dm  0 0 .. 0  9 9 9 .. 9        (m digits 1..8, T - 1 blanks, m + 1 nines)
        target   0  0 ..  0  0 0 .. 0  0 d1 d2 .. dm     (T + m blanks, then the m digits)

    The loss is the cross-entropy over every step. Each step is a one-hot vector of the 10 symbols
    (Bai et al. feed the symbol's number; one-hot does not pretend that digit 8 is "more" than 1).

    Returns:
        ``(x, y)``: x float32 ``(N, T + 2m, 10)``, y int64 ``(N, T + 2m)``.
    """
    generator, memory_length = torch.Generator().manual_seed(seed), COPY_MEMORY_LENGTH
    digits = torch.randint(1, COPY_DELIMITER, (num_samples, memory_length), generator=generator)
    blanks = torch.full((num_samples, blank_length - 1), COPY_BLANK)
    delimiters = torch.full((num_samples, memory_length + 1), COPY_DELIMITER)
    x = F.one_hot(torch.cat([digits, blanks, delimiters], dim=1), COPY_SYMBOLS).float()
    return x, torch.cat([torch.full((num_samples, blank_length + memory_length), COPY_BLANK), digits], dim=1)


def copy_memory_chance_loss(blank_length: int) -> float:
    """``m ln 8 / (T + 2m)``: the loss of a model that knows where the blanks are (loss 0 there) but
    guesses each recalled digit among the 8. With T = 1000 it is 0.0204, near which Bai et al.'s
    recurrent networks stayed."""
    return COPY_MEMORY_LENGTH * math.log(COPY_DELIMITER - 1) / (blank_length + 2 * COPY_MEMORY_LENGTH)


def pixel_sequences(
    images: torch.Tensor, *, side: int | None = None, permutation: torch.Tensor | None = None
) -> torch.Tensor:
    """Grey images as sequences of pixels, one per step, in reading order (or in ``permutation``'s).

    Args:
        images: ``(N, H, W)`` uint8 pixels.
        side: shrink to ``side x side`` first by averaging blocks (exact 2x2 blocks for 28 -> 14).
        permutation: each pixel position of the ``side x side`` image once.

    Returns:
        float32 ``(N, side * side, 1)`` in [0, 1].
    """
    if images.dim() != 3:
        raise ValueError(f"images must be grey images (N, H, W), got shape {tuple(images.shape)}")
    pixels = images.float() / 255
    if side is not None:
        pixels = F.adaptive_avg_pool2d(pixels.unsqueeze(1), side).squeeze(1)  # (N, side, side)
    if permutation is not None:
        pixels = permute_pixels(pixels, permutation)
    return pixels.flatten(1).unsqueeze(2)


@dataclass(eq=False)
class SequenceTask:
    """One sequence task as data for ``fit``: its batches, loss, chance level, and how it is scored.

    Attributes:
        train, val, test: :class:`~course_utils.data.Batches` of ``(x (B, T, D), y)``; ``train`` shuffles,
            and one of its epochs is a fixed number of optimiser steps (the recipe's ``steps_per_epoch``).
        outputs: ``"last"`` (one answer per sequence) or ``"every_step"``: build the model with it.
        loss: ``"mse"`` or ``"cross_entropy"``, for ``TrainConfig(loss=...)`` and ``evaluate``.
        chance_loss, chance_accuracy: the best score that ignores what must be remembered.
        recall_steps: the copy task counts only the last this many answers (the recalled digits).
    """

    name: str
    train: Batches
    val: Batches
    test: Batches
    length: int
    input_size: int
    output_size: int
    outputs: str
    loss: str
    chance_loss: float
    chance_accuracy: float | None = None
    recall_steps: int | None = None
    permutation: torch.Tensor | None = field(default=None, repr=False)

    def accuracy(self, result: EvalResult) -> float | None:
        """The task's accuracy from :func:`~course_utils.evaluation.evaluate`'s result: the fraction of
        answers right (only the recalled digits for the copy task), None for a regression."""
        if self.recall_steps is None:
            return result.accuracy
        recalled = slice(-self.recall_steps, None)
        return float((result.predictions[:, recalled] == result.targets[:, recalled]).float().mean())


def make_sequence_task(
    settings: Mapping[str, Any], mnist: ImageDataset | None = None, *, seed: int = 0
) -> SequenceTask:
    """Build the task that one ``tasks`` entry of notebook 05's recipe describes.

    The entry names the task in ``"task"`` (``"adding"``, ``"copy"``, ``"sequential_mnist"``) and gives
    ``train_size``, ``val_size``, ``test_size`` (None: all), ``batch_size`` and ``steps_per_epoch``;
    ``length`` (adding), ``blank_length`` (copy), or ``side`` and ``permuted`` (sequential MNIST, which
    needs ``mnist``); its other keys say how to train. Each synthetic split is drawn from its own random
    stream of ``seed``: the test sequences do not change when the training set grows.
    """
    kind, sizes = settings["task"], {s: settings[f"{s}_size"] for s in ("train", "val", "test")}

    def batches(x: torch.Tensor, y: torch.Tensor, split: str) -> Batches:
        training = split == "train"
        size = settings["batch_size"] if training else 4 * settings["batch_size"]  # no gradients: larger
        steps = settings["steps_per_epoch"] if training else None
        return Batches(x, y, batch_size=size, shuffle=training, steps_per_epoch=steps, seed=seed)

    def synthetic(make: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Batches]:
        seeds = {s: int(torch.randint(0, 2**62, (1,), generator=random_generator(seed, n)))
                 for s, n in _SPLIT_STREAMS.items()}  # fmt: skip
        return {split: batches(*make(size, seeds[split]), split) for split, size in sizes.items()}

    if kind == "adding":
        splits = synthetic(lambda n, s: adding_problem(n, settings["length"], seed=s))
        return SequenceTask("adding", **splits, length=settings["length"], input_size=2, output_size=1,
                            outputs="last", loss="mse", chance_loss=ADDING_CHANCE_MSE)  # fmt: skip
    if kind == "copy":
        blank = settings["blank_length"]
        splits = synthetic(lambda n, s: copy_memory(n, blank, seed=s))
        return SequenceTask("copy", **splits, length=blank + 2 * COPY_MEMORY_LENGTH, input_size=COPY_SYMBOLS,
                            output_size=COPY_SYMBOLS, outputs="every_step", loss="cross_entropy",
                            chance_loss=copy_memory_chance_loss(blank), chance_accuracy=1 / 8,
                            recall_steps=COPY_MEMORY_LENGTH)  # fmt: skip
    if kind != "sequential_mnist":
        raise ValueError(f"unknown sequence task {kind!r}; the tasks are adding, copy and sequential_mnist")
    if mnist is None:
        raise ValueError(
            "sequential MNIST reads MNIST digits: pass make_sequence_task(settings, load_dataset('mnist'))"
        )
    side, permuted = settings["side"], settings["permuted"]
    # Class-balanced subsets: validation held out of the training images first, then train_size of the rest.
    train, val = train_val_split(mnist.y_train, sizes["val"], seed)
    if sizes["train"] is not None:
        train = train[stratified_indices(mnist.y_train[train], sizes["train"], seed)]
    test = torch.arange(len(mnist.y_test))
    if sizes["test"] is not None:
        test = stratified_indices(mnist.y_test, sizes["test"], seed)
    generator = random_generator(seed, _PERMUTATION_STREAM)
    permutation = torch.randperm(side * side, generator=generator) if permuted else None
    images = {"train": mnist.x_train[train], "val": mnist.x_train[val], "test": mnist.x_test[test]}
    labels = {"train": mnist.y_train[train], "val": mnist.y_train[val], "test": mnist.y_test[test]}
    x = {split: pixel_sequences(images[split], side=side, permutation=permutation) for split in images}
    mean, std = x["train"].mean(), x["train"].std()  # of the training pixels only, never the test set's
    splits = {split: batches((x[split] - mean) / std, labels[split], split) for split in x}
    name = f"{'permuted ' if permuted else ''}sequential MNIST {side}x{side}"
    return SequenceTask(name, **splits, length=side * side, input_size=1, output_size=10, outputs="last",
                        loss="cross_entropy", chance_loss=math.log(10), chance_accuracy=0.1,
                        permutation=permutation)  # fmt: skip


#: Hidden sizes that give the three recurrent networks about the same number of parameters (17,000 to
#: 20,000 on the quick tasks): an LSTM has 4 gates, a GRU 3, a plain RNN 1, so fewer gates, larger state.
RECURRENT_HIDDEN_SIZES = {"LSTM": 64, "GRU": 74, "RNN": 128}


def sequence_model_builders(
    task: SequenceTask, *, tcn_levels: int, tcn_kernel_size: int
) -> dict[str, Callable[[], nn.Module]]:
    """The four models of the comparison, each as a function that builds a new one (call
    ``torch.manual_seed`` first to repeat its initial weights).

    The recurrent networks are one-layer :class:`~course_utils.models.SequenceRNN` of the sizes in
    :data:`RECURRENT_HIDDEN_SIZES`; the TCN has ``tcn_levels`` levels of equal width, the width (4 to
    128 channels) whose parameter count is closest to the LSTM's. Choose its levels and kernel size so
    that its receptive field, ``1 + 2 (k - 1) (2**L - 1)`` steps, covers the sequence.
    """

    def recurrent(cell: str) -> nn.Module:
        return SequenceRNN(task.input_size, RECURRENT_HIDDEN_SIZES[cell], cell.lower(),
                           num_classes=task.output_size, outputs=task.outputs)  # fmt: skip

    def tcn(width: int) -> nn.Module:
        return TCN(task.input_size, task.output_size, [width] * tcn_levels, tcn_kernel_size,
                   outputs=task.outputs)  # fmt: skip

    target = count_parameters(recurrent("LSTM"))
    # The count grows with the width: bisect for the narrowest width at or above the LSTM's count, then
    # keep it or the one below, whichever is closer (8 models built, not all 125 widths).
    low, high = 4, 128
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if count_parameters(tcn(middle)) >= target else (middle + 1, high)
    width = min({max(low - 1, 4), low}, key=lambda w: (abs(count_parameters(tcn(w)) - target), w))
    return {"TCN": partial(tcn, width), **{cell: partial(recurrent, cell) for cell in ("LSTM", "GRU", "RNN")}}


def select_learning_rate(
    build: Callable[[], nn.Module],
    task: SequenceTask,
    learning_rates: Sequence[float],
    config: TrainConfig,
    seed: int = 0,
) -> tuple[nn.Module, History, dict[float, float]]:
    """Train one model per learning rate and keep the one with the lowest *validation* loss.

    Every candidate starts from the same weights (``torch.manual_seed(seed)`` before ``build()``) and
    the same batches, and trains with ``config``; only the rate differs. The test split is not looked at.

    Returns:
        ``(best model, its history, {learning rate: final validation loss})`` (infinite for a run whose
        loss became NaN).
    """
    best, val_losses = None, {}  # best: (validation loss, model, history)
    for lr in learning_rates:
        torch.manual_seed(seed)
        model = build()
        try:
            history = fit(model, task.train, task.val, replace(config, lr=lr))
            # NaN (weights blown up by the last steps, after fit's last check) must not compare as best.
            val_losses[lr] = history.last["val_loss"] if math.isfinite(history.last["val_loss"]) else math.inf
        except TrainingDivergedError:  # a rate too high for this model: it ranks last
            val_losses[lr], history = math.inf, History(name=config.name)
        if best is None or val_losses[lr] < best[0]:
            best = (val_losses[lr], model, history)
    if best is None:
        raise ValueError("learning_rates is empty: give at least one rate to try")
    return best[1], best[2], val_losses


def gradient_reach(model: nn.Module, task: SequenceTask, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How strongly the loss depends on each step of the input: ``||dL/dx_t||`` for every step ``t``.

    For a recurrent network the signal from step ``t`` passes through ``T - t`` Jacobians on its way
    back, and fades when they shrink it; a TCN's is exactly zero beyond its receptive field. Only the
    gradient with respect to the input is taken (``torch.autograd.grad``): the parameters' ``.grad``
    and the model's training mode stay as they were.

    ``x`` is a batch ``(N, T, D)`` of the task and ``y`` its targets; the result is float32 ``(T,)`` on
    the CPU, the norm over the batch and the ``D`` values, step by step.
    """
    device = next(model.parameters()).device
    inputs = x.detach().to(device).requires_grad_(True)
    modes = [(module, module.training) for module in model.modules()]
    model.train()  # cuDNN computes a recurrent layer's backward pass only in training mode (no dropout here)
    try:
        loss = loss_function(task.loss)(model(inputs).float(), y.to(device))
        (gradient,) = torch.autograd.grad(loss, inputs)  # (N, T, D)
    finally:
        for module, training in modes:
            module.training = training
    return gradient.detach().float().pow(2).sum(dim=(0, 2)).sqrt().cpu()
