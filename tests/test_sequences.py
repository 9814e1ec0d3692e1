"""Tests for course_utils/sequences.py: the tasks, their chance levels, batches, evaluation and training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import ImageDataset, TrainingData
from course_utils.models import TCN, RecurrentSequenceModel
from course_utils.recipes import recipe
from course_utils.sequences import (
    ADDING_CHANCE_MSE,
    COPY_DELIMITER,
    RECURRENT_HIDDEN_SIZES,
    SEQUENCE_MODELS,
    SequenceBatches,
    SequenceTask,
    adding_problem,
    adding_task,
    copy_memory,
    copy_memory_chance_loss,
    copy_task,
    evaluate_sequence_model,
    gradient_reach,
    make_sequence_task,
    pixel_sequences,
    select_learning_rate,
    sequence_model_builders,
    sequential_mnist_task,
    train_sequence_model,
)
from course_utils.summary import count_parameters

# --------------------------------------------------------------------------------------
# The adding problem
# --------------------------------------------------------------------------------------


def test_adding_problem_shapes_and_values() -> None:
    x, y = adding_problem(50, 30, seed=1)
    assert x.shape == (50, 30, 2) and x.dtype == torch.float32
    assert y.shape == (50,) and y.dtype == torch.float32
    numbers, markers = x[..., 0], x[..., 1]
    assert ((numbers >= 0) & (numbers < 1)).all()
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(markers.sum(dim=1), torch.full((50,), 2.0))  # exactly two markers each
    torch.testing.assert_close(y, (numbers * markers).sum(dim=1))  # the sum of the marked numbers


def test_adding_problem_markers_fall_anywhere() -> None:
    # Bai et al.'s formulation: both markers uniformly anywhere, not only in the first half.
    x, _ = adding_problem(4000, 10, seed=0)
    counts = x[..., 1].sum(dim=0)  # how often each position is marked
    assert counts.min() > 0.8 * 800 and counts.max() < 1.2 * 800  # 4000 * 2 / 10 = 800 each


def test_adding_problem_is_reproducible() -> None:
    a, b = adding_problem(8, 20, seed=3), adding_problem(8, 20, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(adding_problem(8, 20, seed=4)[0], a[0])


def test_adding_problem_chance_level_is_one_sixth() -> None:
    _, y = adding_problem(200_000, 2, seed=0)
    # Always answering the mean, 1, scores the variance of the sum of two U(0, 1) values.
    assert pytest.approx(1 / 6) == ADDING_CHANCE_MSE
    assert F.mse_loss(torch.ones_like(y), y).item() == pytest.approx(ADDING_CHANCE_MSE, rel=0.02)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    ("args", "match"), [((0, 10), "num_samples"), ((5, 1), "length"), ((5, 2.5), "length")]
)
def test_adding_problem_rejects_bad_sizes(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        adding_problem(*args)


# --------------------------------------------------------------------------------------
# The copy-memory task
# --------------------------------------------------------------------------------------


def test_copy_memory_layout() -> None:
    blank, memory = 7, 10
    x, y = copy_memory(20, blank, seed=2)
    length = blank + 2 * memory
    assert x.shape == (20, length, 10) and x.dtype == torch.float32
    assert y.shape == (20, length) and y.dtype == torch.int64
    assert torch.equal(x.sum(dim=2), torch.ones(20, length))  # one-hot: one symbol per step
    symbols = x.argmax(dim=2)
    digits = symbols[:, :memory]
    assert ((digits >= 1) & (digits <= 8)).all()
    assert (symbols[:, memory : memory + blank - 1] == 0).all()  # T - 1 blanks
    assert (symbols[:, memory + blank - 1 :] == COPY_DELIMITER).all()  # the delimiter, 11 steps
    assert (y[:, : blank + memory] == 0).all()  # blanks due until the recall ...
    assert torch.equal(y[:, -memory:], digits)  # ... then the digits, in order


def test_copy_memory_uses_all_eight_digits_and_is_reproducible() -> None:
    x, y = copy_memory(500, 5, seed=0)
    assert set(y[:, -10:].unique().tolist()) == set(range(1, 9))
    again = copy_memory(500, 5, seed=0)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    assert not torch.equal(copy_memory(500, 5, seed=1)[1], y)


def test_copy_memory_chance_loss_is_that_of_a_blind_guess() -> None:
    blank = 15
    _, y = copy_memory(64, blank, seed=0)
    # Certain of the blank where it is due, uniform over the digits 1..8 at the 10 recall steps.
    logits = torch.full((*y.shape, 10), -1e9)
    logits[:, :-10, 0] = 0.0
    logits[:, -10:, 1:9] = 0.0
    loss = F.cross_entropy(logits.reshape(-1, 10), y.reshape(-1)).item()
    assert loss == pytest.approx(copy_memory_chance_loss(blank), rel=1e-6)
    assert copy_memory_chance_loss(blank) == pytest.approx(10 * math.log(8) / (blank + 20))
    # The value near which Bai et al.'s recurrent networks stay at T = 1000 (their Table 1).
    assert copy_memory_chance_loss(1000) == pytest.approx(0.0204, abs=5e-5)


# --------------------------------------------------------------------------------------
# Sequential MNIST
# --------------------------------------------------------------------------------------


def test_pixel_sequences_reads_in_reading_order() -> None:
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    seq = pixel_sequences(images)
    assert seq.shape == (3, 784, 1) and seq.dtype == torch.float32
    assert seq[1, 28 * 5 + 9, 0].item() == pytest.approx(images[1, 5, 9].item() / 255)


def test_pixel_sequences_downsamples_by_averaging_2x2_blocks() -> None:
    images = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8)
    seq = pixel_sequences(images, side=14)
    assert seq.shape == (2, 196, 1)
    block = images[0, 6:8, 10:12].float().mean() / 255  # pixel (3, 5) of the 14x14 image
    assert seq[0, 14 * 3 + 5, 0].item() == pytest.approx(block.item(), rel=1e-6)


def test_pixel_sequences_with_a_permutation_reorders_the_steps() -> None:
    images = torch.randint(0, 256, (2, 14, 14), dtype=torch.uint8)
    permutation = torch.randperm(196, generator=torch.Generator().manual_seed(0))
    plain, permuted = pixel_sequences(images), pixel_sequences(images, permutation=permutation)
    assert torch.equal(permuted, plain[:, permutation])


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [
        (torch.zeros(2, 1, 28, 28), {}, r"\(N, H, W\)"),
        (torch.zeros(2, 28, 28), {"side": 0}, "side"),
        (torch.zeros(2, 28, 28), {"side": 29}, "side"),
        (torch.zeros(2, 28, 28), {"permutation": torch.arange(10)}, "permutation"),
    ],
)
def test_pixel_sequences_rejects_bad_input(images: torch.Tensor, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        pixel_sequences(images, **kwargs)


def fake_mnist(train: int = 600, test: int = 200) -> ImageDataset:
    """A small MNIST-shaped dataset of random digits, 10 classes, balanced."""
    generator = torch.Generator().manual_seed(0)
    return ImageDataset(
        name="mnist",
        x_train=torch.randint(0, 256, (train, 28, 28), dtype=torch.uint8, generator=generator),
        y_train=torch.arange(train) % 10,
        x_test=torch.randint(0, 256, (test, 28, 28), dtype=torch.uint8, generator=generator),
        y_test=torch.arange(test) % 10,
        classes=tuple(str(i) for i in range(10)),
        mean=(0.5,),
        std=(0.29,),
        path=Path("fake.npz"),
    )


def test_sequential_mnist_task_is_class_balanced_and_normalised() -> None:
    task = sequential_mnist_task(
        fake_mnist(), side=14, train_size=200, val_size=100, test_size=50, batch_size=16
    )
    assert (task.length, task.input_size, task.output_size, task.outputs) == (196, 1, 10, "last")
    assert task.chance_loss == pytest.approx(math.log(10)) and task.chance_accuracy == 0.1
    for split, size in ((task.train, 200), (task.val, 100), (task.test, 50)):
        assert split.inputs.shape == (size, 196, 1)
        assert torch.bincount(split.targets, minlength=10).tolist() == [size // 10] * 10
    assert task.train.inputs.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert task.train.inputs.std().item() == pytest.approx(1.0, abs=1e-4)
    assert task.train.shuffle and not task.val.shuffle and not task.test.shuffle
    assert task.permutation is None and "sequential MNIST 14x14" in repr(task)


def test_sequential_mnist_task_keeps_validation_out_of_training() -> None:
    dataset = fake_mnist()
    # Every training image is distinct (random pixels), so equal sequences mean the same image.
    task = sequential_mnist_task(dataset, side=28, train_size=None, val_size=100, test_size=None)
    assert len(task.train.inputs) == 500 and len(task.test.inputs) == 200
    train_rows = {tuple(row.tolist()) for row in task.train.inputs[:, :40, 0]}
    assert not any(tuple(row.tolist()) in train_rows for row in task.val.inputs[:, :40, 0])


def test_permuted_sequential_mnist_reorders_the_same_images() -> None:
    dataset = fake_mnist()
    sizes = {"train_size": 100, "val_size": 50, "test_size": 30, "seed": 5}
    plain = sequential_mnist_task(dataset, side=14, **sizes)
    permuted = sequential_mnist_task(dataset, side=14, permuted=True, **sizes)
    assert permuted.permutation is not None and sorted(permuted.permutation.tolist()) == list(range(196))
    torch.testing.assert_close(permuted.test.inputs, plain.test.inputs[:, permuted.permutation])
    assert permuted.name.startswith("permuted")


def test_sequential_mnist_task_rejects_sizes_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="train_size must be at most 500"):
        sequential_mnist_task(fake_mnist(), train_size=501, val_size=100)
    with pytest.raises(ValueError, match="test_size must be at most 200"):
        sequential_mnist_task(fake_mnist(), train_size=10, val_size=100, test_size=201)


# --------------------------------------------------------------------------------------
# SequenceBatches
# --------------------------------------------------------------------------------------


def test_sequence_batches_cover_every_sequence_once_per_epoch() -> None:
    x, y = torch.randn(10, 4, 3), torch.arange(10)
    batches = SequenceBatches(x, y, batch_size=4, shuffle=True, seed=1)
    assert isinstance(batches, TrainingData) and len(batches) == 3
    seen = [(bx.shape, by) for bx, by in batches]
    assert [shape for shape, _ in seen] == [(4, 4, 3), (4, 4, 3), (2, 4, 3)]
    labels = torch.cat([by for _, by in seen])
    assert sorted(labels.tolist()) == list(range(10)) and labels.tolist() != list(range(10))
    first_x, first_y = next(iter(SequenceBatches(x, y, batch_size=4, shuffle=True, seed=1)))
    torch.testing.assert_close(first_x, x[first_y])  # inputs and targets stay paired


def test_sequence_batches_replay_an_epoch_with_set_epoch() -> None:
    x, y = torch.randn(20, 2, 1), torch.arange(20)
    batches = SequenceBatches(x, y, batch_size=5, shuffle=True, seed=0)
    epoch0 = torch.cat([by for _, by in batches])
    epoch1 = torch.cat([by for _, by in batches])
    assert not torch.equal(epoch0, epoch1) and batches.epoch == 2
    batches.set_epoch(0)
    assert torch.equal(torch.cat([by for _, by in batches]), epoch0)


def test_sequence_batches_without_shuffle_keep_order_and_drop_last() -> None:
    x, y = torch.randn(10, 2, 1), torch.arange(10)
    batches = SequenceBatches(x, y, batch_size=4, drop_last=True)
    assert len(batches) == 2
    assert torch.cat([by for _, by in batches]).tolist() == list(range(8))


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        (torch.randn(4, 3), torch.zeros(4), {}, r"\(N, T, D\)"),
        (torch.zeros(4, 3, 1, dtype=torch.int64), torch.zeros(4), {}, "float"),
        (torch.randn(4, 3, 1), torch.zeros(5), {}, "N = len"),
        (torch.randn(4, 3, 1), torch.zeros(4), {"batch_size": 0}, "batch_size"),
    ],
)
def test_sequence_batches_reject_bad_input(
    x: torch.Tensor, y: torch.Tensor, kwargs: dict, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        SequenceBatches(x, y, **kwargs)


# --------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------


def test_adding_task_splits_are_reproducible_and_independent_of_the_training_size() -> None:
    small = adding_task(12, train_size=50, val_size=20, test_size=30, batch_size=8, seed=7)
    large = adding_task(12, train_size=80, val_size=20, test_size=30, batch_size=8, seed=7)
    assert (small.train.num_samples, small.val.num_samples, small.test.num_samples) == (50, 20, 30)
    assert torch.equal(small.test.inputs, large.test.inputs)  # the test set does not move
    assert torch.equal(small.val.targets, large.val.targets)
    assert not torch.equal(small.train.inputs[:20], small.val.inputs)
    again = adding_task(12, train_size=50, val_size=20, test_size=30, batch_size=8, seed=7)
    assert torch.equal(again.train.inputs, small.train.inputs)
    other = adding_task(12, train_size=50, val_size=20, test_size=30, batch_size=8, seed=8)
    assert not torch.equal(other.test.inputs, small.test.inputs)
    assert (small.input_size, small.output_size, small.outputs, small.loss) == (2, 1, "last", "mse")
    assert small.chance_loss == ADDING_CHANCE_MSE and small.chance_accuracy is None


def test_copy_task_settings() -> None:
    task = copy_task(6, train_size=10, val_size=10, test_size=10)
    assert (task.length, task.input_size, task.output_size, task.outputs) == (26, 10, 10, "every_step")
    assert task.chance_loss == pytest.approx(copy_memory_chance_loss(6))
    assert task.chance_accuracy == pytest.approx(1 / 8) and task.accuracy_steps == 10
    assert "copy" in repr(task) and "26" in repr(task)


# --------------------------------------------------------------------------------------
# Evaluating and training
# --------------------------------------------------------------------------------------


class ConstantAnswer(nn.Module):
    """Answers ``value`` for every sequence: the adding problem's chance-level model."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(len(x), 1)


class BlindCopier(nn.Module):
    """Knows where the blanks are due, guesses the recalled digits uniformly: chance level."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.full((*x.shape[:2], 10), -1e9)
        logits[:, :-10, 0] = 0.0
        logits[:, -10:, 1:9] = 0.0
        return logits + self.unused


def test_evaluate_gives_the_chance_levels_of_chance_models() -> None:
    adding = adding_task(30, train_size=10, val_size=10, test_size=20_000, batch_size=500)
    score = evaluate_sequence_model(ConstantAnswer(1.0), adding, adding.test)
    assert score.loss == pytest.approx(ADDING_CHANCE_MSE, rel=0.03)
    assert score.accuracy is None and score.samples == 20_000

    copy = copy_task(8, train_size=10, val_size=10, test_size=4_000, batch_size=500)
    score = evaluate_sequence_model(BlindCopier(), copy, copy.test)
    assert score.loss == pytest.approx(copy.chance_loss, rel=1e-5)
    # argmax picks digit 1 everywhere in the recall: right for about 1 digit in 8.
    assert score.accuracy == pytest.approx(1 / 8, abs=0.01)


def test_copy_accuracy_counts_the_recalled_digits_only() -> None:
    task = copy_task(5, train_size=10, val_size=10, test_size=8, batch_size=8)
    x, y = next(iter(task.test))

    class Oracle(nn.Module):
        def __init__(self, wrong_blanks: bool) -> None:
            super().__init__()
            self.wrong_blanks = wrong_blanks
            self.unused = nn.Parameter(torch.zeros(()))

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            logits = F.one_hot(y, 10).float() * 10
            if self.wrong_blanks:
                logits[:, :-10] = F.one_hot(torch.full_like(y[:, :-10], 9), 10).float() * 10
            return logits + self.unused

    assert evaluate_sequence_model(Oracle(False), task, task.test).accuracy == 1.0
    assert evaluate_sequence_model(Oracle(True), task, task.test).accuracy == 1.0  # blanks do not count


def test_a_tiny_training_run_lowers_the_loss_below_chance() -> None:
    torch.manual_seed(0)
    task = adding_task(8, train_size=512, val_size=256, test_size=16, batch_size=32, seed=0)
    model = TCN(task.input_size, task.output_size, channels=[16, 16], kernel_size=3)
    assert model.receptive_field >= task.length
    training = train_sequence_model(model, task, steps=150, lr=1e-2, eval_every=50)
    assert training.steps == [50, 100, 150] and len(training.val_loss) == 3
    assert training.val_loss[-1] < 0.5 * task.chance_loss
    assert training.train_loss[-1] < training.train_loss[0]
    assert training.seconds > 0 and not training.diverged
    assert model.training  # left in training mode, as after any training step


def test_training_the_copy_task_with_a_recurrent_model_lowers_the_loss() -> None:
    torch.manual_seed(0)
    task = copy_task(2, memory_length=2, train_size=256, val_size=64, test_size=8, batch_size=32)
    model = RecurrentSequenceModel(10, 10, hidden_size=16, cell="gru", outputs="every_step")
    before = evaluate_sequence_model(model, task, task.val).loss
    training = train_sequence_model(model, task, steps=40, lr=1e-2)
    assert training.final_val_loss < before


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weight * float("inf")).expand(len(x), 1)


def test_a_diverging_run_stops_and_ranks_last() -> None:
    task = adding_task(5, train_size=64, val_size=16, test_size=16, batch_size=16)
    training = train_sequence_model(Exploding(), task, steps=10, lr=1e-3)
    assert training.diverged and training.final_val_loss == math.inf and training.steps == []


def test_select_learning_rate_keeps_the_lowest_validation_loss() -> None:
    task = adding_task(6, train_size=256, val_size=128, test_size=16, batch_size=32, seed=0)

    def build() -> nn.Module:
        return TCN(2, 1, channels=[8, 8], kernel_size=2)

    model, training, val_losses = select_learning_rate(build, task, (1e-5, 1e-2), steps=60, seed=0)
    assert set(val_losses) == {1e-5, 1e-2}
    assert training.lr == min(val_losses, key=val_losses.get) == 1e-2
    assert training.final_val_loss == val_losses[1e-2]
    # The same seed gives every candidate the same starting weights.
    torch.manual_seed(0)
    start = build()
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(start.state_dict().values(), build().state_dict().values()))
    assert evaluate_sequence_model(model, task, task.val).loss == pytest.approx(val_losses[1e-2])
    with pytest.raises(ValueError, match="learning_rates is empty"):
        select_learning_rate(build, task, (), steps=1)


def test_sequence_task_loss_shapes() -> None:
    adding = adding_task(4, train_size=4, val_size=4, test_size=4)
    assert isinstance(adding, SequenceTask)
    outputs, targets = torch.zeros(3, 1), torch.tensor([1.0, 0.0, 2.0])
    assert adding.loss_function(outputs, targets).item() == pytest.approx(5 / 3)
    copy = copy_task(3, train_size=4, val_size=4, test_size=4)
    logits = torch.zeros(2, 23, 10)
    assert copy.loss_function(logits, torch.zeros(2, 23, dtype=torch.int64)).item() == pytest.approx(
        math.log(10)
    )


# --------------------------------------------------------------------------------------
# A task from its recipe settings
# --------------------------------------------------------------------------------------

SMALL_SIZES = {"train_size": 40, "val_size": 20, "test_size": 30, "batch_size": 8}
# Keys of a recipe entry that are not the task's: make_sequence_task must ignore them.
TRAINING_KEYS = {"steps": 5, "eval_every": 5, "tcn_levels": 3, "tcn_kernel_size": 3}


def test_make_sequence_task_builds_the_adding_problem() -> None:
    settings = {"task": "adding", "length": 12, **SMALL_SIZES, **TRAINING_KEYS}
    task = make_sequence_task(settings, seed=3)
    assert task.name == "adding" and (task.length, task.input_size, task.output_size) == (12, 2, 1)
    assert (task.train.num_samples, task.val.num_samples, task.test.num_samples) == (40, 20, 30)
    assert task.train.batch_size == 8 and task.train.inputs.shape == (40, 12, 2)
    # The same task as adding_task with the same arguments and seed.
    direct = adding_task(12, **SMALL_SIZES, seed=3)
    assert torch.equal(task.test.inputs, direct.test.inputs)
    assert not torch.equal(make_sequence_task(settings, seed=4).test.inputs, direct.test.inputs)


def test_make_sequence_task_builds_the_copy_task() -> None:
    task = make_sequence_task({"task": "copy", "blank_length": 6, **SMALL_SIZES, **TRAINING_KEYS})
    assert task.name == "copy" and task.outputs == "every_step"
    assert task.train.inputs.shape == (40, 26, 10) and task.train.targets.shape == (40, 26)
    short = make_sequence_task({"task": "copy", "blank_length": 6, "memory_length": 3, **SMALL_SIZES})
    assert short.length == 12 and short.accuracy_steps == 3


def test_make_sequence_task_builds_sequential_mnist() -> None:
    settings = {"task": "sequential_mnist", "side": 14, "permuted": True, **TRAINING_KEYS}
    sizes = {"train_size": 100, "val_size": 50, "test_size": 30, "batch_size": 16}
    task = make_sequence_task({**settings, **sizes}, fake_mnist(), seed=5)
    direct = sequential_mnist_task(fake_mnist(), side=14, permuted=True, **sizes, seed=5)
    assert task.name == direct.name == "permuted sequential MNIST 14x14"
    assert task.train.inputs.shape == (100, 196, 1) and task.test.targets.shape == (30,)
    assert torch.equal(task.permutation, direct.permutation)
    torch.testing.assert_close(task.test.inputs, direct.test.inputs)


@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_make_sequence_task_accepts_every_recipe_entry(profile: str) -> None:
    for name, settings in recipe("04_cnn_vs_rnn", profile)["sequence_tasks"].items():
        # Small sizes, so that the test stays fast; every other setting is the recipe's.
        sizes = {"train_size": 20, "val_size": 10, "test_size": 10}
        task = make_sequence_task({**settings, **sizes}, fake_mnist(), seed=0)
        assert task.train.batch_size == settings["batch_size"], name
        expected = {"adding": settings.get("length"), "copy": settings.get("blank_length", 0) + 20}
        assert task.length == expected.get(settings["task"], settings.get("side", 0) ** 2), name


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"length": 10}, "'task' key"),
        (
            {"task": "parity", "length": 10},
            "unknown sequence task 'parity'.*'adding', 'copy', 'sequential_mnist'",
        ),
        ({"task": "adding", **SMALL_SIZES}, "needs the setting.*length"),
        ({"task": "copy", "length": 10, **SMALL_SIZES}, "needs the setting.*blank_length"),
        ({"task": "adding", "length": 10, "train_sise": 5}, "does not take the setting.*train_sise"),
        ({"task": "adding", "length": 1, **SMALL_SIZES}, "length must be an integer >= 2"),
        ({"task": "sequential_mnist", **SMALL_SIZES}, r"load_dataset\('mnist', DATA_DIR\) and pass it"),
    ],
)
def test_make_sequence_task_rejects_bad_settings(settings: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_sequence_task(settings)


# --------------------------------------------------------------------------------------
# The models of the comparison
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adding", "copy"])
def test_sequence_model_builders_give_four_models_of_about_the_same_size(name: str) -> None:
    settings = recipe("04_cnn_vs_rnn", "quick")["sequence_tasks"][name]
    task = make_sequence_task({**settings, "train_size": 8, "val_size": 8, "test_size": 8})
    builders = sequence_model_builders(
        task, tcn_levels=settings["tcn_levels"], tcn_kernel_size=settings["tcn_kernel_size"]
    )
    assert tuple(builders) == SEQUENCE_MODELS == ("TCN", "LSTM", "GRU", "RNN")
    models = {model_name: build() for model_name, build in builders.items()}
    counts = {model_name: count_parameters(model) for model_name, model in models.items()}
    assert max(counts.values()) <= 1.1 * min(counts.values()), counts

    tcn = models["TCN"]
    assert isinstance(tcn, TCN) and tcn.levels == settings["tcn_levels"]
    assert tcn.kernel_size == settings["tcn_kernel_size"] and tcn.receptive_field >= task.length
    widths = {block.conv2.out_channels for block in tcn.blocks}
    assert len(widths) == 1  # equal levels
    # The width is the one whose count is closest to the LSTM's: one channel more or less is farther.
    width = widths.pop()

    def tcn_count(w: int) -> int:
        channels = [w] * settings["tcn_levels"]
        return count_parameters(
            TCN(
                task.input_size, task.output_size, channels, settings["tcn_kernel_size"], outputs=task.outputs
            )
        )

    gap = abs(counts["TCN"] - counts["LSTM"])
    assert all(gap <= abs(tcn_count(w) - counts["LSTM"]) for w in (width - 1, width + 1))

    for cell in ("lstm", "gru", "rnn"):
        model = models[cell.upper()]
        assert isinstance(model, RecurrentSequenceModel) and model.cell == cell
        assert model.rnn.hidden_size == RECURRENT_HIDDEN_SIZES[cell] and model.outputs == task.outputs
    x, y = next(iter(task.val))
    for model_name, model in models.items():  # every model answers in the shape the loss expects
        assert task.loss_function(model(x), y).dim() == 0, model_name
    assert builders["LSTM"]() is not builders["LSTM"]()  # a fresh model each call


def test_sequence_model_builders_reject_bad_tcn_settings() -> None:
    task = adding_task(5, train_size=4, val_size=4, test_size=4)
    with pytest.raises(ValueError, match="tcn_levels"):
        sequence_model_builders(task, tcn_levels=0, tcn_kernel_size=3)
    with pytest.raises(ValueError, match="tcn_kernel_size"):
        sequence_model_builders(task, tcn_levels=2, tcn_kernel_size=1)


# --------------------------------------------------------------------------------------
# Gradient reach
# --------------------------------------------------------------------------------------


class LastStepOnly(nn.Module):
    """Answers a linear function of the last step's values: earlier steps cannot matter."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.fc = nn.Linear(input_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x[:, -1])  # (N, 1)


def test_gradient_reach_of_a_last_step_model_is_zero_before_the_last_step() -> None:
    task = adding_task(9, train_size=4, val_size=16, test_size=4, batch_size=16)
    x, y = next(iter(task.val))
    reach = gradient_reach(LastStepOnly(2), task, x, y)
    assert reach.shape == (9,) and reach.dtype == torch.float32
    assert torch.equal(reach[:-1], torch.zeros(8)) and reach[-1] > 0


def test_gradient_reach_matches_the_norm_of_the_input_gradient() -> None:
    torch.manual_seed(0)
    task = copy_task(4, memory_length=2, train_size=4, val_size=8, test_size=4, batch_size=8)
    model = RecurrentSequenceModel(10, 10, hidden_size=8, cell="rnn", outputs="every_step")
    x, y = next(iter(task.val))
    inputs = x.clone().requires_grad_(True)
    task.loss_function(model(inputs), y).backward()
    expected = inputs.grad.pow(2).sum(dim=(0, 2)).sqrt()  # (T,), index 0 the first step
    model.zero_grad(set_to_none=True)
    torch.testing.assert_close(gradient_reach(model, task, x, y), expected)


@pytest.mark.parametrize("training", [True, False])
def test_gradient_reach_leaves_the_model_as_it_was(training: bool) -> None:
    torch.manual_seed(0)
    task = adding_task(7, train_size=4, val_size=8, test_size=4, batch_size=8)
    model = RecurrentSequenceModel(2, 1, hidden_size=6, cell="lstm")
    model.train(training)
    model.fc.eval()  # a submodule in its own mode gets that mode back too
    x, y = next(iter(task.val))
    task.loss_function(model(x), y).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}

    reach = gradient_reach(model, task, x, y)
    assert reach.shape == (7,) and (reach >= 0).all() and reach.sum() > 0
    assert model.training is training and model.rnn.training is training and not model.fc.training
    for name, p in model.named_parameters():
        assert torch.equal(p.grad, grads[name]) and torch.equal(p.detach(), weights[name]), name
    assert not x.requires_grad  # the caller's batch is not changed either

    fresh = RecurrentSequenceModel(2, 1, hidden_size=6, cell="lstm")
    gradient_reach(fresh, task, x, y)
    assert all(p.grad is None for p in fresh.parameters())


def test_gradient_reach_rejects_inputs_that_are_not_sequences() -> None:
    task = adding_task(5, train_size=4, val_size=4, test_size=4)
    with pytest.raises(ValueError, match=r"\(N, T, D\)"):
        gradient_reach(LastStepOnly(2), task, torch.zeros(4, 5), torch.zeros(4))
