"""course_utils.sequences: the tasks, their chance levels, the models compared, and what is measured."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import Batches, ImageDataset, stratified_indices, train_val_split
from course_utils.evaluation import EvalResult, count_parameters, evaluate
from course_utils.models import TCN, SequenceRNN
from course_utils.sequences import (
    ADDING_CHANCE_MSE,
    COPY_DELIMITER,
    RECURRENT_HIDDEN_SIZES,
    SequenceTask,
    adding_problem,
    copy_memory,
    copy_memory_chance_loss,
    gradient_reach,
    make_sequence_task,
    pixel_sequences,
    select_learning_rate,
    sequence_model_builders,
)
from course_utils.settings import recipe
from course_utils.training import TrainConfig, loss_function

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def sizes(train: int = 40, val: int = 20, test: int = 30, batch_size: int = 8, steps: int = 4) -> dict:
    return {
        "train_size": train,
        "val_size": val,
        "test_size": test,
        "batch_size": batch_size,
        "steps_per_epoch": steps,
    }


def adding_task(length: int = 8, seed: int = 0, **split_sizes) -> SequenceTask:
    return make_sequence_task({"task": "adding", "length": length, **sizes(**split_sizes)}, seed=seed)


def copy_task(blank_length: int = 4, seed: int = 0, **split_sizes) -> SequenceTask:
    return make_sequence_task(
        {"task": "copy", "blank_length": blank_length, **sizes(**split_sizes)}, seed=seed
    )


def fake_mnist(train: int = 600, test: int = 200) -> ImageDataset:
    """An MNIST-shaped dataset of random (so all different) images, its 10 classes balanced."""
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


def mnist_task(mnist: ImageDataset, seed: int = 0, side: int = 14, permuted: bool = False, **split_sizes):
    settings = {"task": "sequential_mnist", "side": side, "permuted": permuted, **sizes(**split_sizes)}
    return make_sequence_task(settings, mnist, seed=seed)


def first_batch(batches: Batches) -> tuple[torch.Tensor, torch.Tensor]:
    return next(iter(batches))


# ---------------------------------------------------------------------------------------------
# The adding problem
# ---------------------------------------------------------------------------------------------


def test_adding_problem_shapes_and_values():
    x, y = adding_problem(50, 30, seed=1)
    assert x.shape == (50, 30, 2) and x.dtype == torch.float32
    assert y.shape == (50,) and y.dtype == torch.float32
    numbers, markers = x[..., 0], x[..., 1]
    assert ((numbers >= 0) & (numbers < 1)).all()
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(markers.sum(dim=1), torch.full((50,), 2.0))  # exactly two markers each
    torch.testing.assert_close(y, (numbers * markers).sum(dim=1))  # the sum of the marked numbers


def test_adding_problem_markers_fall_anywhere_and_are_reproducible():
    # Bai et al.'s form: both markers uniformly anywhere, not only the first in the first ten steps.
    x, _ = adding_problem(4000, 10, seed=0)
    counts = x[..., 1].sum(dim=0)  # how often each position is marked: 4000 * 2 / 10 = 800 each
    assert counts.min() > 0.8 * 800 and counts.max() < 1.2 * 800
    a, b = adding_problem(8, 20, seed=3), adding_problem(8, 20, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(adding_problem(8, 20, seed=4)[0], a[0])


def test_adding_problem_chance_level_is_one_sixth():
    _, y = adding_problem(200_000, 2, seed=0)
    # Always answering the mean, 1, scores the variance of the sum of two U(0, 1) values.
    assert pytest.approx(1 / 6) == ADDING_CHANCE_MSE
    assert F.mse_loss(torch.ones_like(y), y).item() == pytest.approx(ADDING_CHANCE_MSE, rel=0.02)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


def test_adding_problem_needs_two_steps():
    with pytest.raises(ValueError, match="length must be at least 2"):
        adding_problem(5, 1)


# ---------------------------------------------------------------------------------------------
# The copy-memory task
# ---------------------------------------------------------------------------------------------


def test_copy_memory_layout():
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
    assert (symbols[:, memory + blank - 1 :] == COPY_DELIMITER).all()  # the delimiter, m + 1 steps
    assert (y[:, : blank + memory] == 0).all()  # blanks due until the recall ...
    assert torch.equal(y[:, -memory:], digits)  # ... then the digits, in order


def test_copy_memory_uses_all_eight_digits_and_is_reproducible():
    x, y = copy_memory(500, 5, seed=0)
    assert set(y[:, -10:].unique().tolist()) == set(range(1, 9))
    again = copy_memory(500, 5, seed=0)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])
    assert not torch.equal(copy_memory(500, 5, seed=1)[1], y)


def blind_copy_logits(shape: tuple[int, int], memory: int = 10) -> torch.Tensor:
    """Certain of the blank where it is due, uniform over the digits 1..8 at the recall steps."""
    logits = torch.full((*shape, 10), -1e9)
    logits[:, :-memory, 0] = 0.0
    logits[:, -memory:, 1:9] = 0.0
    return logits


def test_copy_memory_chance_loss_is_that_of_a_blind_guess():
    blank = 15
    _, y = copy_memory(64, blank, seed=0)
    loss = F.cross_entropy(blind_copy_logits(y.shape).movedim(-1, 1), y).item()
    assert loss == pytest.approx(copy_memory_chance_loss(blank), rel=1e-6)
    assert copy_memory_chance_loss(blank) == pytest.approx(10 * math.log(8) / (blank + 20))
    # The value near which Bai et al.'s recurrent networks stay at T = 1000 (their Table 1).
    assert copy_memory_chance_loss(1000) == pytest.approx(0.0204, abs=5e-5)


# ---------------------------------------------------------------------------------------------
# Pixel sequences
# ---------------------------------------------------------------------------------------------


def test_pixel_sequences_read_in_reading_order():
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    sequences = pixel_sequences(images)
    assert sequences.shape == (3, 784, 1) and sequences.dtype == torch.float32
    torch.testing.assert_close(sequences[:, :, 0], images.flatten(1).float() / 255)
    assert sequences[1, 28 * 5 + 9, 0].item() == pytest.approx(images[1, 5, 9].item() / 255)


def test_pixel_sequences_shrink_by_averaging_2x2_blocks():
    images = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8)
    sequences = pixel_sequences(images, side=14)
    assert sequences.shape == (2, 196, 1)
    block = images[0, 6:8, 10:12].float().mean() / 255  # pixel (3, 5) of the 14x14 image
    assert sequences[0, 14 * 3 + 5, 0].item() == pytest.approx(block.item(), rel=1e-6)


def test_pixel_sequences_with_a_permutation_reorder_the_steps():
    images = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8)
    permutation = torch.randperm(196, generator=torch.Generator().manual_seed(0))
    plain, permuted = (
        pixel_sequences(images, side=14),
        pixel_sequences(images, side=14, permutation=permutation),
    )
    assert torch.equal(permuted, plain[:, permutation])
    with pytest.raises(ValueError, match="exactly once"):
        pixel_sequences(images, permutation=torch.arange(10))


def test_pixel_sequences_need_grey_images():
    with pytest.raises(ValueError, match=r"grey images \(N, H, W\)"):
        pixel_sequences(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


# ---------------------------------------------------------------------------------------------
# make_sequence_task
# ---------------------------------------------------------------------------------------------


def test_the_adding_task():
    task = adding_task(12, seed=3, steps=6)
    assert task.name == "adding" and (task.length, task.input_size, task.output_size) == (12, 2, 1)
    assert (task.outputs, task.loss, task.chance_loss, task.chance_accuracy) == (
        "last",
        "mse",
        ADDING_CHANCE_MSE,
        None,
    )
    assert (task.train.num_samples, task.val.num_samples, task.test.num_samples) == (40, 20, 30)
    assert task.train.inputs.shape == (40, 12, 2) and task.train.targets.shape == (40,)
    x, y = task.test.inputs, task.test.targets
    torch.testing.assert_close(y, (x[..., 0] * x[..., 1]).sum(dim=1))  # adding problems, answered


def test_the_copy_task():
    task = copy_task(6)
    assert task.name == "copy" and (task.length, task.input_size, task.output_size) == (26, 10, 10)
    assert (task.outputs, task.loss, task.recall_steps) == ("every_step", "cross_entropy", 10)
    assert task.chance_loss == pytest.approx(copy_memory_chance_loss(6)) and task.chance_accuracy == 1 / 8
    assert task.train.inputs.shape == (40, 26, 10) and task.train.targets.shape == (40, 26)
    assert torch.equal(task.val.targets[:, -10:], task.val.inputs[:, :10].argmax(dim=2))


@pytest.mark.parametrize("make", [adding_task, copy_task])
def test_the_splits_come_from_their_own_random_streams(make):
    small, large = make(seed=7, train=40), make(seed=7, train=80)
    assert torch.equal(small.test.inputs, large.test.inputs)  # a larger training set moves no test sequence
    assert torch.equal(small.val.targets, large.val.targets)
    again = make(seed=7, train=40)
    assert torch.equal(again.train.inputs, small.train.inputs) and torch.equal(
        again.test.inputs, small.test.inputs
    )
    assert not torch.equal(make(seed=8, train=40).test.inputs, small.test.inputs)
    # The three splits are different sequences, not one stream cut in three.
    rows = {tuple(row.flatten().tolist()) for row in small.train.inputs}
    assert not any(tuple(row.flatten().tolist()) in rows for row in (*small.val.inputs, *small.test.inputs))


def test_training_is_counted_in_steps_and_evaluation_in_whole_passes():
    task = adding_task(train=36, val=20, test=30, batch_size=8, steps=7)
    assert len(task.train) == 7 and task.train.shuffle and task.train.batch_size == 8
    assert [len(y) for _, y in task.train] == [8, 8, 8, 8, 4, 8, 8]  # past the end of a pass, into the next
    for split, count in ((task.val, 20), (task.test, 30)):
        assert not split.shuffle and split.steps_per_epoch is None and split.batch_size == 32  # 4 x 8
        assert sum(len(y) for _, y in split) == count
        assert torch.equal(torch.cat([y for _, y in split]), split.targets)


def test_sequential_mnist_is_class_balanced_and_normalised_with_the_training_pixels():
    mnist = fake_mnist()
    task = mnist_task(mnist, seed=2, train=200, val=100, test=50, batch_size=16)
    assert (task.name, task.length, task.input_size, task.output_size) == (
        "sequential MNIST 14x14",
        196,
        1,
        10,
    )
    assert (task.outputs, task.loss, task.chance_accuracy, task.permutation) == (
        "last",
        "cross_entropy",
        0.1,
        None,
    )
    assert task.chance_loss == pytest.approx(math.log(10)) and task.recall_steps is None
    for split, size in ((task.train, 200), (task.val, 100), (task.test, 50)):
        assert split.inputs.shape == (size, 196, 1)
        assert torch.bincount(split.targets, minlength=10).tolist() == [size // 10] * 10
    assert task.train.inputs.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert task.train.inputs.std().item() == pytest.approx(1.0, abs=1e-5)
    # Validation held out of the training images first, then the training subset of the rest; every
    # split standardised with the *training* pixels' mean and std.
    train, val = train_val_split(mnist.y_train, 100, seed=2)
    train = train[stratified_indices(mnist.y_train[train], 200, seed=2)]
    test = stratified_indices(mnist.y_test, 50, seed=2)
    raw_train = pixel_sequences(mnist.x_train[train], side=14)
    mean, std = raw_train.mean(), raw_train.std()
    for split, images, labels in (
        (task.train, mnist.x_train[train], mnist.y_train[train]),
        (task.val, mnist.x_train[val], mnist.y_train[val]),
        (task.test, mnist.x_test[test], mnist.y_test[test]),
    ):
        torch.testing.assert_close(split.inputs, (pixel_sequences(images, side=14) - mean) / std)
        assert torch.equal(split.targets, labels)
    assert len(set(train.tolist()) & set(val.tolist())) == 0


def test_sequential_mnist_takes_every_image_when_the_size_is_none():
    task = mnist_task(fake_mnist(), side=7, train=None, val=100, test=None)
    assert (task.train.num_samples, task.val.num_samples, task.test.num_samples) == (500, 100, 200)
    assert task.length == 49


def test_permuted_sequential_mnist_reorders_the_same_images():
    mnist = fake_mnist()
    plain = mnist_task(mnist, seed=5, train=100, val=50, test=30)
    permuted = mnist_task(mnist, seed=5, permuted=True, train=100, val=50, test=30)
    assert sorted(permuted.permutation.tolist()) == list(range(196))
    assert not torch.equal(permuted.permutation, torch.arange(196))
    assert permuted.name == "permuted sequential MNIST 14x14"
    for split in ("train", "val", "test"):  # the same images, standardised alike, their pixels reordered
        torch.testing.assert_close(
            getattr(permuted, split).inputs, getattr(plain, split).inputs[:, permuted.permutation]
        )
    assert torch.equal(
        mnist_task(mnist, seed=5, permuted=True, train=100, val=50, test=30).permutation, permuted.permutation
    )


def test_make_sequence_task_rejects_an_unknown_task_and_sequential_mnist_without_mnist():
    with pytest.raises(ValueError, match="unknown sequence task 'parity'.*adding, copy and sequential_mnist"):
        make_sequence_task({"task": "parity", **sizes()})
    with pytest.raises(ValueError, match=r"load_dataset\('mnist'\)"):
        make_sequence_task({"task": "sequential_mnist", "side": 14, "permuted": False, **sizes()})


@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_every_recipe_entry_makes_a_task(profile):
    settings, _checks = recipe("05_sequences_attention", profile)
    for name, entry in settings["tasks"].items():
        # Small splits keep the test fast; every other setting (epochs, TCN sizes, ...) is the recipe's.
        task = make_sequence_task(
            {**entry, "train_size": 20, "val_size": 10, "test_size": 10}, fake_mnist(), seed=0
        )
        assert task.train.batch_size == entry["batch_size"] and len(task.train) == entry["steps_per_epoch"], (
            name
        )
        expected = {"adding": entry.get("length"), "copy": entry.get("blank_length", 0) + 20}
        assert task.length == expected.get(entry["task"], entry.get("side", 0) ** 2), name
        assert first_batch(task.val)[0].shape[1:] == (task.length, task.input_size), name


# ---------------------------------------------------------------------------------------------
# Scoring: chance levels and the copy task's accuracy
# ---------------------------------------------------------------------------------------------


class ConstantAnswer(nn.Module):
    """Answers ``value`` for every sequence: the adding problem's chance-level model."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(len(x), 1)


class BlindCopier(nn.Module):
    """Knows where the blanks are due, guesses the recalled digits uniformly: the copy task's chance."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return blind_copy_logits(x.shape[:2]) + self.unused


def test_chance_models_score_the_chance_levels():
    adding = adding_task(30, train=10, val=10, test=20_000, batch_size=500)
    result = evaluate(ConstantAnswer(1.0), adding.test, loss=adding.loss, mixed_precision="fp32")
    assert result.loss == pytest.approx(adding.chance_loss, rel=0.03)
    assert adding.accuracy(result) is None

    copy = copy_task(8, train=10, val=10, test=4_000, batch_size=500)
    result = evaluate(BlindCopier(), copy.test, loss=copy.loss, mixed_precision="fp32")
    assert result.loss == pytest.approx(copy.chance_loss, rel=1e-5)
    # argmax picks digit 1 at every recall step: right for about 1 digit in 8.
    assert copy.accuracy(result) == pytest.approx(copy.chance_accuracy, abs=0.01)


def test_copy_accuracy_counts_the_recalled_digits_only():
    task = copy_task(5, test=8, batch_size=2)
    y = task.test.targets
    right = EvalResult(loss=0.0, accuracy=1.0, predictions=y.clone(), probabilities=None, targets=y)
    assert task.accuracy(right) == 1.0
    wrong_blanks = y.clone()
    wrong_blanks[:, :-10] = COPY_DELIMITER  # every blank answered wrong: the overall accuracy is low ...
    result = EvalResult(loss=0.0, accuracy=10 / 25, predictions=wrong_blanks, probabilities=None, targets=y)
    assert task.accuracy(result) == 1.0  # ... but every recalled digit is right
    half = y.clone()
    half[:, -5:] = 0  # the last five digits forgotten
    assert task.accuracy(EvalResult(0.0, 0.0, half, None, y)) == 0.5
    # Other tasks score every answer: evaluate's accuracy as it is.
    mnist = mnist_task(fake_mnist(), train=20, val=10, test=10)
    assert mnist.accuracy(EvalResult(0.0, 0.3, torch.zeros(10), None, torch.zeros(10))) == 0.3


# ---------------------------------------------------------------------------------------------
# The models of the comparison
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adding", "copy"])
def test_sequence_model_builders_give_four_models_of_about_the_same_size(name):
    entry = recipe("05_sequences_attention", "quick")[0]["tasks"][name]
    task = make_sequence_task({**entry, "train_size": 8, "val_size": 8, "test_size": 8})
    levels, kernel_size = entry["tcn_levels"], entry["tcn_kernel_size"]
    builders = sequence_model_builders(task, tcn_levels=levels, tcn_kernel_size=kernel_size)
    assert tuple(builders) == ("TCN", "LSTM", "GRU", "RNN")  # Bai et al.'s order
    models = {model_name: build() for model_name, build in builders.items()}
    counts = {model_name: count_parameters(model) for model_name, model in models.items()}
    assert max(counts.values()) <= 1.1 * min(counts.values()), counts

    tcn = models["TCN"]
    assert isinstance(tcn, TCN) and tcn.levels == levels and tcn.kernel_size == kernel_size
    assert tcn.receptive_field >= task.length and tcn.outputs == task.outputs
    widths = {block.conv2.out_channels for block in tcn.blocks}
    assert len(widths) == 1  # levels of equal width
    # The width whose count is closest to the LSTM's: one channel more or fewer is farther off.
    width = widths.pop()

    def tcn_count(w: int) -> int:
        return count_parameters(
            TCN(task.input_size, task.output_size, [w] * levels, kernel_size, outputs=task.outputs)
        )

    gap = abs(counts["TCN"] - counts["LSTM"])
    assert all(gap <= abs(tcn_count(w) - counts["LSTM"]) for w in (width - 1, width + 1))

    for cell in ("LSTM", "GRU", "RNN"):
        model = models[cell]
        assert isinstance(model, SequenceRNN) and model.cell == cell.lower() and model.outputs == task.outputs
        assert model.rnn.hidden_size == RECURRENT_HIDDEN_SIZES[cell]
    x, y = first_batch(task.val)
    shape = (len(x), task.output_size) if task.outputs == "last" else (len(x), task.length, task.output_size)
    for model_name, model in models.items():  # every model answers in the shape the task's loss expects
        outputs = model(x)
        assert outputs.shape == shape, model_name
        assert loss_function(task.loss)(outputs, y).dim() == 0, model_name
    assert builders["LSTM"]() is not builders["LSTM"]()  # a new model each call


# ---------------------------------------------------------------------------------------------
# Choosing the learning rate on the validation split
# ---------------------------------------------------------------------------------------------


def quick_config(**changes) -> TrainConfig:
    settings = dict(epochs=3, lr=1e-3, optimizer="adamw", loss="mse", device="cpu", mixed_precision="fp32")
    return TrainConfig(**{**settings, "progress": False, **changes})


def test_select_learning_rate_keeps_the_lowest_validation_loss_from_the_same_start():
    task = adding_task(6, train=256, val=128, test=16, batch_size=32, steps=20)
    starts = []

    def build() -> nn.Module:
        model = TCN(2, 1, channels=[8, 8], kernel_size=2)
        starts.append({key: value.clone() for key, value in model.state_dict().items()})
        return model

    model, history, val_losses = select_learning_rate(build, task, (1e-5, 1e-2), quick_config(), seed=0)
    assert list(val_losses) == [1e-5, 1e-2] and min(val_losses, key=val_losses.get) == 1e-2
    assert val_losses[1e-2] < val_losses[1e-5]
    assert len(history) == 3 and history.last["val_loss"] == val_losses[1e-2]
    result = evaluate(model, task.val, loss="mse", mixed_precision="fp32")
    assert result.loss == pytest.approx(val_losses[1e-2], rel=1e-5)  # the model returned is the one scored
    # Every candidate started from the same weights: only the rate differed.
    assert all(torch.equal(starts[0][key], starts[1][key]) for key in starts[0])
    with pytest.raises(ValueError, match="learning_rates is empty"):
        select_learning_rate(build, task, (), quick_config())


class Linear(nn.Module):
    """A linear model of the whole sequence; ``nan_when_evaluated`` poisons its validation answers."""

    def __init__(self, length: int, nan_when_evaluated: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * length, 1)
        self.nan_when_evaluated = nan_when_evaluated

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x.flatten(1))
        return out * math.nan if self.nan_when_evaluated and not self.training else out


def test_a_diverging_learning_rate_ranks_last():
    task = adding_task(6, train=64, val=32, test=16, batch_size=16, steps=4)
    config = quick_config(optimizer="sgd", momentum=0.0, epochs=2)
    model, history, val_losses = select_learning_rate(lambda: Linear(6), task, (1e30, 1e-2), config)
    assert val_losses[1e30] == math.inf and math.isfinite(val_losses[1e-2])  # 1e30: TrainingDivergedError
    assert len(history) == 2 and history.last["val_loss"] == val_losses[1e-2]


def test_a_validation_loss_of_nan_ranks_last():
    # The weights can blow up in the last steps, after fit's last look at the training loss: the
    # validation loss is then NaN, which compares as neither smaller nor larger than anything.
    task = adding_task(6, train=64, val=32, test=16, batch_size=16, steps=4)
    built = []

    def build() -> nn.Module:
        built.append(Linear(6, nan_when_evaluated=not built))  # the first candidate scores NaN
        return built[-1]

    model, _history, val_losses = select_learning_rate(build, task, (1e-2, 1e-3), quick_config(epochs=1))
    assert val_losses[1e-2] == math.inf and math.isfinite(val_losses[1e-3])
    assert model is built[1]


# ---------------------------------------------------------------------------------------------
# Gradient reach
# ---------------------------------------------------------------------------------------------


class LastStepOnly(nn.Module):
    """Answers a linear function of the last step's values: earlier steps cannot matter."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.fc = nn.Linear(input_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x[:, -1])  # (N, 1)


def test_gradient_reach_of_a_last_step_model_is_zero_before_the_last_step():
    task = adding_task(9, val=16, batch_size=4)
    x, y = first_batch(task.val)
    reach = gradient_reach(LastStepOnly(2), task, x, y)
    assert reach.shape == (9,) and reach.dtype == torch.float32 and reach.device.type == "cpu"
    assert torch.equal(reach[:-1], torch.zeros(8)) and reach[-1] > 0


def test_gradient_reach_of_a_tcn_is_zero_beyond_its_receptive_field():
    torch.manual_seed(0)
    task = adding_task(12, val=16, batch_size=4)
    model = TCN(2, 1, channels=[6, 6], kernel_size=2)  # sees 1 + 2 (2 - 1) (2**2 - 1) = 7 steps
    assert model.receptive_field == 7
    reach = gradient_reach(model, task, *first_batch(task.val))
    assert torch.equal(reach[:5], torch.zeros(5))  # steps 0..4: out of its sight
    assert (reach[5:] > 0).all()  # the last 7 steps


def test_gradient_reach_is_the_norm_of_the_input_gradient_step_by_step():
    torch.manual_seed(0)
    task = copy_task(3, val=8, batch_size=2)
    model = SequenceRNN(10, 8, "rnn", num_classes=10, outputs="every_step")
    x, y = first_batch(task.val)
    inputs = x.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(loss_function(task.loss)(model(inputs), y), inputs)
    expected = gradient.pow(2).sum(dim=(0, 2)).sqrt()  # (T,), index 0 the first step
    torch.testing.assert_close(gradient_reach(model, task, x, y), expected)


@pytest.mark.parametrize("training", [True, False])
def test_gradient_reach_leaves_the_model_as_it_was(training):
    torch.manual_seed(0)
    task = adding_task(7, val=8, batch_size=2)
    model = SequenceRNN(2, 6, "lstm", num_classes=1)
    model.train(training)
    model.fc.eval()  # a submodule in its own mode gets that mode back too
    x, y = first_batch(task.val)
    loss_function(task.loss)(model(x), y).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}

    reach = gradient_reach(model, task, x, y)
    assert reach.shape == (7,) and (reach >= 0).all() and reach.sum() > 0
    assert model.training is training and model.rnn.training is training and not model.fc.training
    for name, p in model.named_parameters():
        assert torch.equal(p.grad, grads[name]) and torch.equal(p.detach(), weights[name]), name
    assert not x.requires_grad  # the caller's batch is not changed either

    fresh = SequenceRNN(2, 6, "lstm", num_classes=1)
    gradient_reach(fresh, task, x, y)
    assert all(p.grad is None for p in fresh.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_gradient_reach_of_a_recurrent_network_in_evaluation_mode_on_the_gpu():
    # cuDNN computes a recurrent layer's backward pass only in training mode: gradient_reach switches
    # it there for the measurement, and back.
    torch.manual_seed(0)
    task = adding_task(7, val=8, batch_size=2)
    model = SequenceRNN(2, 6, "lstm", num_classes=1).cuda().eval()
    x, y = first_batch(task.val)
    reach = gradient_reach(model, task, x, y)
    assert reach.device.type == "cpu" and reach.shape == (7,) and reach.sum() > 0
    assert not model.training and not model.rnn.training
    torch.testing.assert_close(reach, gradient_reach(model.cpu(), task, x, y), rtol=1e-4, atol=1e-6)
