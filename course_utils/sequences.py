"""Sequence tasks that test memory: the adding problem, the copy-memory task and sequential MNIST.

Three tasks on which recurrent networks are traditionally tested, in the form of Bai, Kolter &
Koltun, "An empirical evaluation of generic convolutional and recurrent networks for sequence
modeling" (2018), section 4 and appendix, who compare them with a temporal convolutional
network (:class:`course_utils.models.TCN`):

* :func:`adding_problem` (Hochreiter & Schmidhuber, 1997): a sequence of random numbers, two
  of them marked; the answer is their sum. A regression with one answer per sequence.
* :func:`copy_memory` (Hochreiter & Schmidhuber, 1997): ten digits, a long blank, a
  delimiter; the network must then repeat the ten digits. One answer per step.
* :func:`pixel_sequences` / :func:`sequential_mnist_task`: an MNIST digit read one pixel per
  step (Le, Jaitly & Hinton, 2015), here also downsampled to 14x14 (196 steps) so that a
  laptop can train on it, and optionally with its pixels in a fixed random order
  (permuted sequential MNIST).

Every sequence is a float tensor ``(N, T, D)``: ``N`` sequences of ``T`` steps of ``D``
values, the ``batch_first`` layout of ``nn.LSTM`` and of the models in
:mod:`course_utils.models`. Everything random comes from a ``torch.Generator`` seeded by the
``seed`` argument, so the same seed always gives the same data.

A :class:`SequenceTask` bundles one task's training, validation and test batches
(:class:`SequenceBatches`) with its loss and its chance level; :func:`train_sequence_model`
is the plain training loop for it, :func:`evaluate_sequence_model` scores a model, and
:func:`select_learning_rate` picks a model's learning rate on the validation split::

    from course_utils.models import TCN
    from course_utils.sequences import adding_task, train_sequence_model, evaluate_sequence_model

    task = adding_task(length=100, train_size=8000, val_size=500, test_size=1000, batch_size=64)
    model = TCN(task.input_size, task.output_size, channels=[24] * 5, kernel_size=4)
    training = train_sequence_model(model, task, steps=500, lr=3e-3)
    print(evaluate_sequence_model(model, task, task.test), "chance:", task.chance_loss)

Notebook 04 and ``benchmarks/sequence_experiments.py`` read their tasks from the recipe
(``recipe("04_cnn_vs_rnn", profile)["sequence_tasks"]``): :func:`make_sequence_task` builds one
task from one entry, :func:`sequence_model_builders` the four models compared on it (TCN,
LSTM, GRU, RNN of about the same size), and :func:`gradient_reach` measures how far back in
a sequence a model's training signal reaches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import ImageDataset, permute_pixels, stratified_indices, train_val_split
from course_utils.evaluation import eval_mode
from course_utils.models import TCN, RecurrentSequenceModel
from course_utils.summary import count_parameters

__all__ = [
    "ADDING_CHANCE_MSE",
    "COPY_BLANK",
    "COPY_DELIMITER",
    "COPY_MEMORY_LENGTH",
    "COPY_SYMBOLS",
    "adding_problem",
    "copy_memory",
    "copy_memory_chance_loss",
    "pixel_sequences",
    "SequenceBatches",
    "SequenceTask",
    "adding_task",
    "copy_task",
    "sequential_mnist_task",
    "SequenceScore",
    "SequenceTraining",
    "evaluate_sequence_model",
    "train_sequence_model",
    "select_learning_rate",
    "SEQUENCE_TASK_KINDS",
    "make_sequence_task",
    "RECURRENT_HIDDEN_SIZES",
    "SEQUENCE_MODELS",
    "sequence_model_builders",
    "gradient_reach",
]

#: The adding problem's chance level: the mean squared error of always answering 1, the mean
#: of the sum of two independent U(0, 1) values; it is their variance, 2 * 1/12 = 1/6 = 0.167.
ADDING_CHANCE_MSE = 1 / 6

#: The copy-memory task's alphabet: 0 is the blank, 1..8 the digits to remember, 9 the delimiter.
COPY_BLANK = 0
COPY_DELIMITER = 9
COPY_SYMBOLS = 10
#: How many digits the copy-memory task asks to remember (10 in Bai et al.).
COPY_MEMORY_LENGTH = 10

# The streams of _generator: one per split of a synthetic task, one for the permutation of
# permuted MNIST, and one per epoch of SequenceBatches.
_SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}
_PERMUTATION_STREAM = 3
_EPOCH_STREAM = 4


def _generator(seed: int, *stream: int) -> torch.Generator:
    """A CPU generator whose numbers depend only on ``seed`` and ``stream``.

    numpy's SeedSequence mixes the two into one well-spread seed (as ``course_utils.data`` does
    for its batches), so that, e.g., the training and the test sequences of one seed are
    unrelated, and the test sequences do not change when the training set grows.
    """
    state = np.random.SeedSequence(seed, spawn_key=stream).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device="cpu").manual_seed(int(state) & (2**63 - 1))


def _check_positive_int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _check_seed(seed: object) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


# --------------------------------------------------------------------------------------
# The adding problem
# --------------------------------------------------------------------------------------


def adding_problem(num_samples: int, length: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of the adding problem (Hochreiter & Schmidhuber, 1997), as in Bai et al. (2018).

    Each sequence has ``length`` steps of two values: a random number drawn uniformly from
    [0, 1), and a marker that is 1 at exactly two steps, chosen at random anywhere in the
    sequence, and 0 elsewhere. The target is the sum of the two marked numbers. To answer, a
    model must notice the two markers, hold the first number until the second arrives (or
    the end), and ignore everything else. The loss is the mean squared error; always
    answering 1 (the mean) scores :data:`ADDING_CHANCE_MSE` = 0.167.

    Hochreiter & Schmidhuber put the first marker in the first ten steps and the second in
    the first half; Bai et al. (and this function) put both anywhere, so that some pairs are
    close together and some far apart.

    Args:
        num_samples: how many sequences ``N``.
        length: steps per sequence ``T`` (at least 2).
        seed: the same seed always gives the same sequences.

    Returns:
        ``(x, y)``: x float32 ``(N, T, 2)``, channel 0 the numbers and channel 1 the markers;
        y float32 ``(N,)``, the sums, in [0, 2).

    Raises:
        ValueError: ``num_samples < 1``, ``length < 2`` or a negative seed.
    """
    _check_positive_int(num_samples, "num_samples")
    if not isinstance(length, int) or isinstance(length, bool) or length < 2:
        raise ValueError(f"length must be an integer >= 2 (two steps get a marker), got {length!r}")
    generator = torch.Generator().manual_seed(_check_seed(seed))
    numbers = torch.rand(num_samples, length, generator=generator)
    # Two distinct positions per sequence, uniformly: the two largest of T random keys.
    positions = torch.rand(num_samples, length, generator=generator).topk(2, dim=1).indices  # (N, 2)
    markers = torch.zeros(num_samples, length).scatter_(1, positions, 1.0)
    x = torch.stack([numbers, markers], dim=2)  # (N, T, 2)
    y = numbers.gather(1, positions).sum(dim=1)  # (N,)
    return x, y


# --------------------------------------------------------------------------------------
# The copy-memory task
# --------------------------------------------------------------------------------------


def copy_memory(
    num_samples: int, blank_length: int, *, memory_length: int = COPY_MEMORY_LENGTH, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of the copy-memory task (Hochreiter & Schmidhuber, 1997), as in Bai et al. (2018).

    The input, ``T + 2 * memory_length`` steps (``T = blank_length``): ``memory_length`` digits
    drawn uniformly from 1..8, then ``T - 1`` blanks (0), then the delimiter 9 for the last
    ``memory_length + 1`` steps. The target, of the same length: blanks, except for the last
    ``memory_length`` steps, which must repeat the digits of the start. For ``memory_length =
    10``::

        input   d1 d2 .. d10  0 0 .. 0  9 9 9 .. 9        (10 digits, T - 1 blanks, 11 nines)
        target   0  0 ..  0   0 0 .. 0  0 d1 d2 .. d10    (T + 10 blanks, then the 10 digits)

    The loss is the cross-entropy over all steps and the 10 symbols. A model that outputs the
    blank where it is due and guesses the digits uniformly scores
    :func:`copy_memory_chance_loss` ``= memory_length * ln 8 / (T + 2 * memory_length)``.

    This follows the code of Bai et al. (locuslab/TCN, ``copy_memory/utils.py``), whose
    delimiter stays on through the recall (Arjovsky, Shah & Bengio, 2016, put blanks after a
    single delimiter instead). Bai et al. feed each symbol as one number; here each step is a
    one-hot vector of the 10 symbols, the usual encoding of a category, which does not pretend
    that digit 8 is "more" than digit 1.

    Args:
        num_samples: how many sequences ``N``.
        blank_length: ``T``, the number of steps between the end of the digits and the end of
            the delimiter's first step (at least 1).
        memory_length: how many digits to remember (10 in the paper).
        seed: the same seed always gives the same sequences.

    Returns:
        ``(x, y)``: x float32 one-hot ``(N, T + 2 * memory_length, 10)``; y int64
        ``(N, T + 2 * memory_length)``, the symbol due at each step (0 or a digit 1..8).

    Raises:
        ValueError: a size below 1 or a negative seed.
    """
    _check_positive_int(num_samples, "num_samples")
    _check_positive_int(blank_length, "blank_length")
    _check_positive_int(memory_length, "memory_length")
    generator = torch.Generator().manual_seed(_check_seed(seed))
    digits = torch.randint(1, COPY_DELIMITER, (num_samples, memory_length), generator=generator)  # 1..8
    blanks = torch.full((num_samples, blank_length - 1), COPY_BLANK)
    delimiters = torch.full((num_samples, memory_length + 1), COPY_DELIMITER)
    symbols = torch.cat([digits, blanks, delimiters], dim=1)  # (N, T + 2m)
    x = F.one_hot(symbols, COPY_SYMBOLS).float()  # (N, T + 2m, 10)
    y = torch.cat([torch.full((num_samples, blank_length + memory_length), COPY_BLANK), digits], dim=1)
    return x, y


def copy_memory_chance_loss(blank_length: int, memory_length: int = COPY_MEMORY_LENGTH) -> float:
    """The copy-memory task's chance level: ``memory_length * ln 8 / (T + 2 * memory_length)``.

    The cross-entropy, averaged over all ``T + 2 * memory_length`` steps, of a model that knows
    where the blanks are (loss 0 there) but guesses each of the ``memory_length`` recalled
    digits uniformly among the 8 (loss ln 8 each). With ``T = 1000`` it is 0.0204, the value
    near which Bai et al.'s recurrent networks stay (their Table 1).
    """
    _check_positive_int(blank_length, "blank_length")
    _check_positive_int(memory_length, "memory_length")
    return memory_length * math.log(COPY_DELIMITER - 1) / (blank_length + 2 * memory_length)


# --------------------------------------------------------------------------------------
# Sequential MNIST
# --------------------------------------------------------------------------------------


def pixel_sequences(
    images: torch.Tensor, *, side: int | None = None, permutation: torch.Tensor | None = None
) -> torch.Tensor:
    """Turn grey images into sequences of pixels, one pixel per step, in reading order.

    Sequential MNIST (Le, Jaitly & Hinton, 2015) reads a 28x28 digit as 784 steps of one value;
    ``side=14`` first averages each 2x2 block (196 steps), short enough for a CPU. With a
    ``permutation`` the pixels are read in that fixed order instead (permuted sequential MNIST),
    which scatters a stroke's neighbouring pixels all over the sequence.

    Args:
        images: ``(N, H, W)``, uint8 pixels 0..255 (or floats on that scale), as in
            :class:`course_utils.data.ImageDataset`.
        side: resize to ``side x side`` by averaging blocks of pixels
            (``F.adaptive_avg_pool2d``; exact 2x2 blocks for 28 -> 14); None keeps the size.
        permutation: int ``(side * side,)``, each pixel position once (see
            :func:`course_utils.data.permute_pixels`); None keeps reading order.

    Returns:
        float32 ``(N, side * side, 1)``, values in [0, 1] (divided by 255; not normalised).

    Raises:
        ValueError: ``images`` is not ``(N, H, W)``, ``side`` is not between 1 and the image
            size, or ``permutation`` is not a permutation of the pixels.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be grey images of shape (N, H, W), got {shape}")
    pixels = images.float().div(255.0)  # (N, H, W)
    if side is not None:
        largest = min(images.shape[1], images.shape[2])
        if not isinstance(side, int) or isinstance(side, bool) or not 1 <= side <= largest:
            raise ValueError(f"side must be an integer from 1 to {largest} (the image size), got {side!r}")
        pixels = F.adaptive_avg_pool2d(pixels.unsqueeze(1), side).squeeze(1)  # (N, side, side)
    if permutation is not None:
        pixels = permute_pixels(pixels, permutation)
    return pixels.flatten(1).unsqueeze(2)  # (N, T, 1)


# --------------------------------------------------------------------------------------
# Batches of sequences
# --------------------------------------------------------------------------------------


class SequenceBatches:
    """Mini-batches of sequences kept in memory: the :class:`course_utils.data.TrainingData` of sequences.

    ``course_utils.data.Batches`` stores uint8 images and normalises them per batch; sequence
    tasks have float inputs and, for the adding problem, float targets, so they get this
    smaller class. It keeps the same contract: each ``for x, y in batches`` is one epoch, whose
    order (when ``shuffle``) comes from a CPU generator seeded with ``(seed, epoch)`` alone; each
    iteration uses the current epoch number and then advances it, and ``set_epoch(e)`` replays
    epoch ``e``. :func:`course_utils.training.fit` can train on it (classification targets).

    Args:
        inputs: float ``(N, T, D)``.
        targets: ``(N,)`` (one answer per sequence: float for a regression, int64 classes) or
            int64 ``(N, T)`` (one class per step).
        batch_size: sequences per batch; the last batch is smaller unless ``drop_last``.
        shuffle: a new random order every epoch (for training).
        drop_last: skip the last, incomplete batch.
        seed: with the epoch number, decides the order.

    Yields:
        ``(x, y)``: x ``(B, T, D)``, y ``(B,)`` or ``(B, T)``, on the device of ``inputs``.

    Raises:
        ValueError: inputs not 3-dimensional, targets of the wrong length, batch_size < 1.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        batch_size: int = 64,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3 or not inputs.dtype.is_floating_point:
            found = f"{inputs.dtype} {tuple(inputs.shape)}" if isinstance(inputs, torch.Tensor) else inputs
            raise ValueError(f"inputs must be a float tensor of shape (N, T, D), got {found}")
        if (
            not isinstance(targets, torch.Tensor)
            or targets.dim() not in (1, 2)
            or len(targets) != len(inputs)
        ):
            found = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
            raise ValueError(
                f"targets must have shape (N,) or (N, T) with N = len(inputs) = {len(inputs)}, got {found}"
            )
        if len(inputs) == 0:
            raise ValueError("inputs is empty: SequenceBatches needs at least one sequence")
        self.batch_size = _check_positive_int(batch_size, "batch_size")
        self.inputs = inputs
        self.targets = targets
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = _check_seed(seed)
        self._epoch = 0

    @property
    def num_samples(self) -> int:
        """How many sequences there are."""
        return len(self.inputs)

    @property
    def epoch(self) -> int:
        """The epoch number the next iteration will use."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch`` (its order)."""
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self._epoch = epoch

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = None
        if self.shuffle:
            generator = _generator(self.seed, _EPOCH_STREAM, self._epoch)
            order = torch.randperm(self.num_samples, generator=generator).to(self.inputs.device)
        self._epoch += 1
        return self._batches(order)

    def _batches(self, order: torch.Tensor | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in range(len(self)):
            start = batch * self.batch_size
            stop = min(start + self.batch_size, self.num_samples)
            if order is None:
                yield self.inputs[start:stop], self.targets[start:stop]
            else:
                indices = order[start:stop]
                yield self.inputs[indices], self.targets[indices]

    def __repr__(self) -> str:
        return (
            f"SequenceBatches({self.num_samples} sequences of shape {tuple(self.inputs.shape[1:])}, "
            f"batch_size={self.batch_size}, {len(self)} batches, shuffle={self.shuffle}, seed={self.seed})"
        )


# --------------------------------------------------------------------------------------
# Tasks: data, loss and chance level together
# --------------------------------------------------------------------------------------

LOSSES = ("mse", "cross_entropy")


@dataclass(eq=False)  # eq=False: tensors inside have no single True/False equality
class SequenceTask:
    """One sequence task: its batches, its loss and its chance level.

    Attributes:
        name: e.g. ``"adding"``, ``"copy"``, ``"sequential MNIST 14x14"``.
        train, val, test: the splits; ``train`` shuffles, the others do not. Choose settings
            on ``val``; look at ``test`` once, at the end.
        length: steps per sequence ``T``.
        input_size: values per step ``D``.
        output_size: what the model must output per answer (1 for the adding problem, 10
            classes for the others).
        outputs: ``"last"`` (one answer per sequence) or ``"every_step"``; build the model with
            the same ``outputs``.
        loss: ``"mse"`` (mean squared error) or ``"cross_entropy"``.
        chance_loss: the loss of the best answer that ignores what must be remembered.
        chance_accuracy: the accuracy of a guess (None for a regression).
        accuracy_steps: for ``"every_step"`` tasks, accuracy is measured on the last this many
            steps only (the copy task's recalled digits); None: on every answer.
        permutation: the pixel order of permuted sequential MNIST, else None.
    """

    name: str
    train: SequenceBatches
    val: SequenceBatches
    test: SequenceBatches
    length: int
    input_size: int
    output_size: int
    outputs: str
    loss: str
    chance_loss: float
    chance_accuracy: float | None = None
    accuracy_steps: int | None = None
    permutation: torch.Tensor | None = field(default=None, repr=False)

    def loss_function(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The task's loss, averaged over answers.

        Args:
            outputs: the model's output: ``(B, output_size)`` or ``(B, T, output_size)``.
            targets: ``(B,)`` or ``(B, T)``, as the batches give them.

        Returns:
            A scalar: the mean squared error (``outputs`` ``(B, 1)`` against float targets
            ``(B,)``), or the cross-entropy averaged over all answers (every step for
            ``"every_step"`` tasks, as Bai et al. do).
        """
        if self.loss == "mse":
            return F.mse_loss(outputs.squeeze(-1), targets)
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))

    def __repr__(self) -> str:
        chance = f"chance loss {self.chance_loss:.4g}"
        if self.chance_accuracy is not None:
            chance += f", chance accuracy {self.chance_accuracy:.1%}"
        return (
            f"SequenceTask({self.name}: T={self.length} steps of {self.input_size} value(s), "
            f"{self.train.num_samples}/{self.val.num_samples}/{self.test.num_samples} train/val/test "
            f"sequences, outputs={self.outputs!r}, {self.loss}, {chance})"
        )


def _synthetic_splits(
    make: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]],
    sizes: dict[str, int],
    batch_size: int,
    seed: int,
) -> dict[str, SequenceBatches]:
    """Make each split with its own random stream: the test set does not depend on the training size."""
    _check_seed(seed)
    splits = {}
    for split, size in sizes.items():
        _check_positive_int(size, f"{split}_size")
        # A seed for the split, from its own stream of `seed` (see _generator).
        split_seed = int(torch.randint(0, 2**62, (1,), generator=_generator(seed, _SPLIT_STREAMS[split])))
        x, y = make(size, split_seed)
        splits[split] = SequenceBatches(x, y, batch_size=batch_size, shuffle=split == "train", seed=seed)
    return splits


def adding_task(
    length: int,
    *,
    train_size: int = 10_000,
    val_size: int = 1_000,
    test_size: int = 1_000,
    batch_size: int = 64,
    seed: int = 0,
) -> SequenceTask:
    """The adding problem of :func:`adding_problem` as a :class:`SequenceTask`.

    Args:
        length: steps per sequence ``T``.
        train_size, val_size, test_size: sequences in each split; each split is drawn from
            its own random stream of ``seed``.
        batch_size: training batch size (validation and test use the same).
        seed: decides the sequences and the training order.

    Returns:
        A task with ``input_size=2``, ``output_size=1``, ``outputs="last"``, loss ``"mse"`` and
        ``chance_loss`` :data:`ADDING_CHANCE_MSE`.
    """
    splits = _synthetic_splits(
        lambda n, s: adding_problem(n, length, seed=s),
        {"train": train_size, "val": val_size, "test": test_size},
        batch_size,
        seed,
    )
    return SequenceTask(
        name="adding",
        **splits,
        length=length,
        input_size=2,
        output_size=1,
        outputs="last",
        loss="mse",
        chance_loss=ADDING_CHANCE_MSE,
    )


def copy_task(
    blank_length: int,
    *,
    memory_length: int = COPY_MEMORY_LENGTH,
    train_size: int = 10_000,
    val_size: int = 1_000,
    test_size: int = 1_000,
    batch_size: int = 64,
    seed: int = 0,
) -> SequenceTask:
    """The copy-memory task of :func:`copy_memory` as a :class:`SequenceTask`.

    Args:
        blank_length: ``T``; the sequences have ``T + 2 * memory_length`` steps.
        memory_length: digits to remember.
        train_size, val_size, test_size: sequences in each split, each split from its own
            random stream of ``seed``.
        batch_size: training batch size (validation and test use the same).
        seed: decides the sequences and the training order.

    Returns:
        A task with ``input_size=10`` (one-hot symbols), ``output_size=10``,
        ``outputs="every_step"``, loss ``"cross_entropy"``, ``chance_loss``
        :func:`copy_memory_chance_loss`, and accuracy measured on the ``memory_length``
        recalled digits (chance 1/8).
    """
    splits = _synthetic_splits(
        lambda n, s: copy_memory(n, blank_length, memory_length=memory_length, seed=s),
        {"train": train_size, "val": val_size, "test": test_size},
        batch_size,
        seed,
    )
    return SequenceTask(
        name="copy",
        **splits,
        length=blank_length + 2 * memory_length,
        input_size=COPY_SYMBOLS,
        output_size=COPY_SYMBOLS,
        outputs="every_step",
        loss="cross_entropy",
        chance_loss=copy_memory_chance_loss(blank_length, memory_length),
        chance_accuracy=1 / (COPY_DELIMITER - 1),
        accuracy_steps=memory_length,
    )


def sequential_mnist_task(
    dataset: ImageDataset,
    *,
    side: int = 14,
    permuted: bool = False,
    train_size: int | None = 10_000,
    val_size: int = 1_000,
    test_size: int | None = 2_000,
    batch_size: int = 64,
    seed: int = 0,
) -> SequenceTask:
    """Sequential (or permuted sequential) MNIST as a :class:`SequenceTask`.

    Every subset is class-balanced (:func:`course_utils.data.stratified_indices`): the
    validation images are held out of the training set first, then ``train_size`` images are
    chosen from the rest, and ``test_size`` from the test set. Pixels are normalised with the
    mean and standard deviation of the chosen training sequences.

    Args:
        dataset: MNIST, from :func:`course_utils.data.load_dataset`.
        side: images are downsampled to ``side x side`` and read in ``side * side`` steps:
            14 gives 196 steps (the quick variant), 28 the classic 784.
        permuted: read the pixels in one fixed random order (drawn from ``seed``), the same
            for every image: permuted sequential MNIST.
        train_size: training images (None: all that are left after validation).
        val_size: validation images, held out of the training set.
        test_size: test images (None: the whole test set).
        batch_size: training batch size (validation and test use 4 times this: no gradients).
        seed: decides the subsets, the permutation and the training order.

    Returns:
        A task with ``input_size=1``, ``output_size=10``, ``outputs="last"``, loss
        ``"cross_entropy"``, ``chance_loss = ln 10`` and ``chance_accuracy = 0.1``.

    Raises:
        ValueError: sizes that do not fit the dataset, or a dataset that is not grey images.
    """
    if dataset.channels != 1:
        raise ValueError(
            f"sequential MNIST reads grey images one pixel per step; {dataset.name} has "
            f"{dataset.channels} channels"
        )
    _check_seed(seed)
    _check_positive_int(val_size, "val_size")
    train_indices, val_indices = train_val_split(dataset.y_train, val_size, seed)
    if train_size is not None:
        _check_positive_int(train_size, "train_size")
        if train_size > len(train_indices):
            raise ValueError(
                f"train_size must be at most {len(train_indices)} (the images left after holding out "
                f"val_size={val_size}), got {train_size}"
            )
        train_indices = train_indices[stratified_indices(dataset.y_train[train_indices], train_size, seed)]
    test_indices = torch.arange(len(dataset.y_test))
    if test_size is not None:
        _check_positive_int(test_size, "test_size")
        if test_size > len(test_indices):
            raise ValueError(f"test_size must be at most {len(test_indices)}, got {test_size}")
        test_indices = stratified_indices(dataset.y_test, test_size, seed)

    permutation = None
    if permuted:
        permutation = torch.randperm(side * side, generator=_generator(seed, _PERMUTATION_STREAM))

    def sequences(images: torch.Tensor) -> torch.Tensor:
        return pixel_sequences(images, side=side, permutation=permutation)

    train_x = sequences(dataset.x_train[train_indices])
    # Statistics of the training pixels only: we never look at the test set to choose them.
    mean, std = train_x.mean(), train_x.std()
    val_x, test_x = sequences(dataset.x_train[val_indices]), sequences(dataset.x_test[test_indices])
    # (x - mean) / std; validation and test batches are 4 times larger: no gradients to keep.
    batches = {
        "train": SequenceBatches(
            (train_x - mean) / std,
            dataset.y_train[train_indices],
            batch_size=batch_size,
            shuffle=True,
            seed=seed,
        ),
        "val": SequenceBatches((val_x - mean) / std, dataset.y_train[val_indices], batch_size=4 * batch_size),
        "test": SequenceBatches(
            (test_x - mean) / std, dataset.y_test[test_indices], batch_size=4 * batch_size
        ),
    }
    order = "permuted " if permuted else ""
    return SequenceTask(
        name=f"{order}sequential MNIST {side}x{side}",
        **batches,
        length=side * side,
        input_size=1,
        output_size=10,
        outputs="last",
        loss="cross_entropy",
        chance_loss=math.log(10),
        chance_accuracy=0.1,
        permutation=permutation,
    )


# --------------------------------------------------------------------------------------
# A task from its settings in a recipe
# --------------------------------------------------------------------------------------

#: The kinds of task a ``sequence_tasks`` entry of a recipe names in its ``"task"`` key.
SEQUENCE_TASK_KINDS = ("adding", "copy", "sequential_mnist")

# What each kind takes from a recipe entry: required settings first, then optional ones (the
# builder's default when left out). The sizes are every kind's.
_SIZE_SETTINGS = ("train_size", "val_size", "test_size", "batch_size")
_REQUIRED_SETTINGS = {"adding": ("length",), "copy": ("blank_length",), "sequential_mnist": ()}
_OPTIONAL_SETTINGS = {
    "adding": _SIZE_SETTINGS,
    "copy": ("memory_length", *_SIZE_SETTINGS),
    "sequential_mnist": ("side", "permuted", *_SIZE_SETTINGS),
}
# Settings of the same entry that are not the task's (how to train, which TCN): ignored here.
_TRAINING_SETTINGS = ("steps", "eval_every", "tcn_levels", "tcn_kernel_size")


def make_sequence_task(
    settings: Mapping[str, Any], mnist: ImageDataset | None = None, *, seed: int = 0
) -> SequenceTask:
    """Build the task that one ``sequence_tasks`` entry of a recipe describes.

    The entry names its kind in ``"task"`` and gives that kind's arguments by name::

        {"task": "adding", "length": 50, "train_size": 10_000, "val_size": 500,
         "test_size": 1_000, "batch_size": 64, "steps": 800, "eval_every": 100,
         "tcn_levels": 4, "tcn_kernel_size": 4}

    * ``"adding"``: :func:`adding_task`; needs ``length``.
    * ``"copy"``: :func:`copy_task`; needs ``blank_length`` (``memory_length`` optional).
    * ``"sequential_mnist"``: :func:`sequential_mnist_task` on ``mnist``; ``side`` and
      ``permuted`` optional.

    Every kind also takes ``train_size``, ``val_size``, ``test_size`` and ``batch_size`` (the
    builder's defaults when left out). The keys that say how to train and which TCN to build
    (``steps``, ``eval_every``, ``tcn_levels``, ``tcn_kernel_size``) are not the task's and are
    ignored here: :func:`train_sequence_model` and :func:`sequence_model_builders` take them.

    Args:
        settings: one entry of ``recipe("04_cnn_vs_rnn", profile)["sequence_tasks"]``.
        mnist: the MNIST dataset, needed by ``"sequential_mnist"`` only.
        seed: decides the sequences (or subsets), the permutation and the training order.

    Returns:
        The :class:`SequenceTask`.

    Raises:
        ValueError: no ``"task"`` key or an unknown kind (the message lists the known ones), a
            required setting missing, a setting the kind does not take, or sequential MNIST
            without ``mnist``; and whatever the builder raises for bad values.
    """
    if not isinstance(settings, Mapping) or "task" not in settings:
        raise ValueError(
            f"settings must be a mapping with a 'task' key, one of "
            f"{', '.join(map(repr, SEQUENCE_TASK_KINDS))} (an entry of "
            f"recipe('04_cnn_vs_rnn', profile)['sequence_tasks']), got {settings!r}"
        )
    kind = settings["task"]
    if kind not in SEQUENCE_TASK_KINDS:
        raise ValueError(
            f"unknown sequence task {kind!r}; the known tasks are {', '.join(map(repr, SEQUENCE_TASK_KINDS))}"
        )
    required, optional = _REQUIRED_SETTINGS[kind], _OPTIONAL_SETTINGS[kind]
    missing = [name for name in required if name not in settings]
    if missing:
        raise ValueError(
            f"the {kind!r} task needs the setting(s) {', '.join(missing)}; got {dict(settings)!r}"
        )
    # A misspelt size would otherwise fall back to the builder's default without a word.
    unknown = sorted(set(settings) - {"task", *required, *optional, *_TRAINING_SETTINGS})
    if unknown:
        raise ValueError(
            f"the {kind!r} task does not take the setting(s) {', '.join(unknown)}; it takes "
            f"{', '.join((*required, *optional))} (and ignores {', '.join(_TRAINING_SETTINGS)})"
        )
    arguments = {name: settings[name] for name in optional if name in settings}
    if kind == "adding":
        return adding_task(settings["length"], seed=seed, **arguments)
    if kind == "copy":
        return copy_task(settings["blank_length"], seed=seed, **arguments)
    if mnist is None:
        raise ValueError(
            "the 'sequential_mnist' task reads MNIST digits: load it with load_dataset('mnist', DATA_DIR) "
            "and pass it as make_sequence_task(settings, mnist)"
        )
    return sequential_mnist_task(mnist, seed=seed, **arguments)


# --------------------------------------------------------------------------------------
# Evaluating and training
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceScore:
    """A model's mean loss and accuracy on one split.

    Attributes:
        loss: the task's loss, averaged over all sequences (MSE or cross-entropy).
        accuracy: the fraction of correct answers (only the recalled digits for the copy task),
            or None for a regression.
        samples: how many sequences were scored.
    """

    loss: float
    accuracy: float | None
    samples: int

    def __str__(self) -> str:
        accuracy = "" if self.accuracy is None else f", accuracy {self.accuracy:.2%}"
        return f"loss {self.loss:.4g}{accuracy} ({self.samples} sequences)"


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def evaluate_sequence_model(model: nn.Module, task: SequenceTask, batches: SequenceBatches) -> SequenceScore:
    """Score ``model`` on ``batches`` of ``task`` (in evaluation mode, restored afterwards).

    Args:
        model: built with ``outputs=task.outputs``; it stays on its device, and each batch is
            moved there.
        task: gives the loss and which answers count for the accuracy.
        batches: usually ``task.val`` (to choose settings) or ``task.test`` (once, at the end).

    Returns:
        A :class:`SequenceScore`.
    """
    device = _model_device(model)
    loss_sum, correct, answers, samples = 0.0, 0, 0, 0
    with eval_mode(model):
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            outputs = model(x)
            loss_sum += task.loss_function(outputs, y).item() * len(y)
            samples += len(y)
            if task.loss == "cross_entropy":  # a classification: count the correct answers
                predictions = outputs.argmax(dim=-1)  # (B,) or (B, T)
                if task.accuracy_steps is not None:
                    predictions, y = predictions[:, -task.accuracy_steps :], y[:, -task.accuracy_steps :]
                correct += int((predictions == y).sum())
                answers += y.numel()
    return SequenceScore(loss_sum / samples, correct / answers if answers else None, samples)


@dataclass
class SequenceTraining:
    """What :func:`train_sequence_model` measured.

    Attributes:
        lr: the learning rate.
        steps: the optimiser steps at which the curves were read (every ``eval_every`` steps and
            at the end).
        train_loss: mean training loss over the steps since the previous reading.
        val_loss, val_accuracy: the validation score at each reading (accuracy None for a
            regression).
        seconds: wall time of the whole run, validation included.
        diverged: the loss became NaN or infinite and training stopped early.
    """

    lr: float
    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float | None] = field(default_factory=list)
    seconds: float = 0.0
    diverged: bool = False

    @property
    def final_val_loss(self) -> float:
        """The validation loss at the end (infinite when the run diverged)."""
        return math.inf if self.diverged or not self.val_loss else self.val_loss[-1]


def train_sequence_model(
    model: nn.Module,
    task: SequenceTask,
    *,
    steps: int,
    lr: float,
    grad_clip: float | None = 1.0,
    eval_every: int | None = None,
) -> SequenceTraining:
    """Train ``model`` on ``task`` for ``steps`` optimiser steps of Adam at a constant learning rate.

    The loop is the one every notebook shows (forward, loss, ``zero_grad``, backward, update),
    with a gradient clip before the update. :func:`course_utils.training.fit` is the same loop
    for image classification; this one takes the task's own loss (the adding problem is a
    regression, the copy task answers at every step) and counts steps, not epochs, so that
    every model gets exactly the same number of updates.

    Gradient clipping (Pascanu, Mikolov & Bengio, 2013): when the global norm of the gradient
    exceeds ``grad_clip``, the gradient is scaled down to that norm. A recurrent network's
    gradient is a product of one Jacobian per step, and it can explode over a long sequence:
    one huge step would then throw the weights far away. Clipping bounds every step, for every
    model alike; it does nothing against *vanishing* gradients, so it cannot hide a plain
    RNN's failure to remember.

    Args:
        model: built with ``outputs=task.outputs``; it trains on its own device, and each batch is
            moved there.
        task: the data, loss and chance level.
        steps: optimiser steps (the training split is cycled through, a new order each epoch).
        lr: Adam's learning rate.
        grad_clip: the largest global gradient norm; None: no clipping.
        eval_every: score the validation split every this many steps (and always at the end);
            None: only at the end.

    Returns:
        A :class:`SequenceTraining`. A run whose loss becomes NaN or infinite stops there with
        ``diverged=True`` (a learning rate that is too high; :func:`select_learning_rate` then
        ranks it last).
    """
    _check_positive_int(steps, "steps")
    if eval_every is not None:
        _check_positive_int(eval_every, "eval_every")
    device = _model_device(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    record = SequenceTraining(lr=lr)
    model.train()
    start = time.perf_counter()
    step, epoch, loss_sum, losses = 0, 0, 0.0, 0
    while step < steps and not record.diverged:
        task.train.set_epoch(epoch)
        for x, y in task.train:
            x, y = x.to(device), y.to(device)
            loss = task.loss_function(model(x), y)  # forward, loss
            optimizer.zero_grad()
            loss.backward()  # backward
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()  # update
            step += 1
            loss_sum, losses = loss_sum + loss.item(), losses + 1
            if not math.isfinite(loss_sum):
                record.diverged = True
                break
            if step == steps or (eval_every is not None and step % eval_every == 0):
                score = evaluate_sequence_model(model, task, task.val)
                record.steps.append(step)
                record.train_loss.append(loss_sum / losses)
                record.val_loss.append(score.loss)
                record.val_accuracy.append(score.accuracy)
                loss_sum, losses = 0.0, 0
                model.train()
            if step == steps:
                break
        epoch += 1
    record.seconds = time.perf_counter() - start
    return record


def select_learning_rate(
    build: Callable[[], nn.Module],
    task: SequenceTask,
    learning_rates: Sequence[float],
    *,
    steps: int,
    seed: int = 0,
    grad_clip: float | None = 1.0,
    eval_every: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, SequenceTraining, dict[float, float]]:
    """Train one model per learning rate and keep the one with the lowest *validation* loss.

    Each candidate starts from the same initial weights (``torch.manual_seed(seed)`` before
    ``build()``) and the same batches, and trains for the same ``steps``: only the learning
    rate differs. The test split is not looked at.

    Args:
        build: makes a new model, e.g. ``lambda: TCN(2, 1, channels=[24] * 5, kernel_size=4)``.
        task: the task; its ``val`` split decides.
        learning_rates: the grid, e.g. ``(1e-3, 3e-3, 1e-2)``.
        steps, grad_clip, eval_every: as in :func:`train_sequence_model`.
        seed: seeds the initial weights of every candidate.
        device: where the models train.

    Returns:
        ``(model, training, val_losses)``: the best model (trained, on ``device``), its
        :class:`SequenceTraining`, and the final validation loss of every learning rate
        (infinite for a run that diverged).

    Raises:
        ValueError: an empty grid.
    """
    if not learning_rates:
        raise ValueError("learning_rates is empty: give at least one learning rate to try")
    best: tuple[nn.Module, SequenceTraining] | None = None
    val_losses: dict[float, float] = {}
    for lr in learning_rates:
        torch.manual_seed(seed)
        model = build().to(device)
        training = train_sequence_model(
            model, task, steps=steps, lr=lr, grad_clip=grad_clip, eval_every=eval_every
        )
        val_losses[lr] = training.final_val_loss
        if best is None or training.final_val_loss < best[1].final_val_loss:
            best = (model, training)
    assert best is not None  # the grid is not empty
    return best[0], best[1], val_losses


# --------------------------------------------------------------------------------------
# The models compared on every task
# --------------------------------------------------------------------------------------

#: The models of notebook 04's comparison, in the order of its tables (Bai et al.'s Table 1).
SEQUENCE_MODELS = ("TCN", "LSTM", "GRU", "RNN")

#: Hidden sizes that give the three recurrent networks about the same number of parameters
#: (about 17,000 to 20,000 on the quick tasks): an LSTM has 4 gates, a GRU 3, a plain RNN 1, so
#: the fewer the gates, the larger the hidden state. The TCN's width is then matched to the
#: LSTM's count (:func:`sequence_model_builders`).
RECURRENT_HIDDEN_SIZES = {"lstm": 64, "gru": 74, "rnn": 128}


def _matched_tcn_width(build: Callable[[int], nn.Module], target: int, widths: range) -> int:
    """The width in ``widths`` whose model has the parameter count closest to ``target``.

    The count grows with the width, so the search stops at the first width that reaches
    ``target``: the answer is that width or the one before (the smaller on a tie).
    """
    best_width, best_gap = widths[0], math.inf
    for width in widths:
        count = count_parameters(build(width))
        if abs(count - target) < best_gap:
            best_width, best_gap = width, abs(count - target)
        if count >= target:
            break
    return best_width


def sequence_model_builders(
    task: SequenceTask, *, tcn_levels: int, tcn_kernel_size: int
) -> dict[str, Callable[[], nn.Module]]:
    """The four models of the comparison for ``task``, each as a function that builds a new one.

    * ``"LSTM"``, ``"GRU"``, ``"RNN"``: a one-layer
      :class:`course_utils.models.RecurrentSequenceModel` of that cell, with the hidden size of
      :data:`RECURRENT_HIDDEN_SIZES` (the three have about the same parameter count).
    * ``"TCN"``: a :class:`course_utils.models.TCN` of ``tcn_levels`` levels of equal width,
      the width (4 to 128 channels) whose parameter count is closest to the LSTM's. Choose
      the levels and kernel size so that its receptive field ``1 + 2 (k - 1) (2**L - 1)``
      covers ``task.length`` steps.

    Every model takes ``(N, task.length, task.input_size)`` and returns what the task's loss
    expects: ``(N, task.output_size)``, or ``(N, T, task.output_size)`` for
    ``outputs="every_step"``. A builder returns a fresh model each call, its weights from
    PyTorch's global generator: call ``torch.manual_seed`` first to repeat them (as
    :func:`select_learning_rate` does).

    Args:
        task: gives the input and output sizes and ``outputs``.
        tcn_levels: the TCN's number of levels ``L`` (the recipe's ``tcn_levels``).
        tcn_kernel_size: the TCN's kernel size ``k`` (the recipe's ``tcn_kernel_size``).

    Returns:
        ``{"TCN": build, "LSTM": build, "GRU": build, "RNN": build}``, in the order of
        :data:`SEQUENCE_MODELS`.

    Raises:
        ValueError: ``tcn_levels < 1`` or ``tcn_kernel_size < 2``.
    """
    _check_positive_int(tcn_levels, "tcn_levels")
    if not isinstance(tcn_kernel_size, int) or isinstance(tcn_kernel_size, bool) or tcn_kernel_size < 2:
        raise ValueError(f"tcn_kernel_size must be an integer >= 2 (1 sees no past), got {tcn_kernel_size!r}")

    def recurrent(cell: str) -> Callable[[], nn.Module]:
        def build() -> nn.Module:
            hidden_size = RECURRENT_HIDDEN_SIZES[cell]
            return RecurrentSequenceModel(
                task.input_size, task.output_size, hidden_size, cell=cell, outputs=task.outputs
            )

        return build

    def tcn(width: int) -> nn.Module:
        channels = [width] * tcn_levels  # equal levels
        return TCN(
            task.input_size, task.output_size, channels, kernel_size=tcn_kernel_size, outputs=task.outputs
        )

    width = _matched_tcn_width(tcn, count_parameters(recurrent("lstm")()), range(4, 129))
    return {
        "TCN": lambda: tcn(width),
        "LSTM": recurrent("lstm"),
        "GRU": recurrent("gru"),
        "RNN": recurrent("rnn"),
    }


# --------------------------------------------------------------------------------------
# How far back the training signal reaches
# --------------------------------------------------------------------------------------


def gradient_reach(model: nn.Module, task: SequenceTask, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How strongly the loss depends on each step of the input: ``||dL/dx_t||`` for every step ``t``.

    ``L`` is the task's loss on the batch (:meth:`SequenceTask.loss_function`, a mean over the
    batch). Its gradient with respect to the input, ``(N, T, D)``, says how much a small change
    of each value would change the loss; at step ``t`` its norm, over the batch and the ``D``
    values, measures how much training signal reaches that step. For a recurrent network the
    signal from step ``t`` passes through ``T - t`` Jacobians on its way back, and vanishes
    when they shrink it: plotted against ``t``, the reach shows how far back a plain RNN (or
    an LSTM) can learn, and a TCN's is zero beyond its receptive field.

    Nothing of the model changes: the gradient is taken with respect to the input only
    (``torch.autograd.grad``), so the parameters' ``.grad`` stay as they were, and the
    model's training or evaluation mode (each submodule's own) is restored afterwards.

    Args:
        model: built with ``outputs=task.outputs``; it stays on its device, and ``x`` and
            ``y`` are moved there.
        task: gives the loss.
        x: float ``(N, T, D)``, a batch of the task's inputs, e.g. from ``task.val``.
        y: the batch's targets, ``(N,)`` or ``(N, T)``, as the task's batches give them.

    Returns:
        float32 ``(T,)`` on the CPU, non-negative, in reading order (index 0 is the first step).

    Raises:
        ValueError: ``x`` is not a float tensor of shape ``(N, T, D)``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or not x.dtype.is_floating_point:
        found = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a float tensor of shape (N, T, D), a batch of the task, got {found}")
    device = _model_device(model)
    inputs = x.detach().to(device).requires_grad_(True)
    modes = [(module, module.training) for module in model.modules()]
    # Training mode, because cuDNN computes a recurrent layer's backward pass only in training
    # mode. It changes nothing else here: our sequence models have no dropout by default and
    # no batch normalisation, so the forward pass is the same as in evaluation mode.
    model.train()
    try:
        loss = task.loss_function(model(inputs), y.to(device))
        (gradient,) = torch.autograd.grad(loss, inputs)  # (N, T, D); the parameters' .grad untouched
    finally:
        for module, training in modes:
            module.training = training
    return gradient.detach().float().pow(2).sum(dim=(0, 2)).sqrt().cpu()  # (T,)
