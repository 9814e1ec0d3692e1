"""course_utils.training: the settings, the schedule, the history, fit (it trains, it is the plain loop,
it resumes exactly, it fails clearly) and checkpoints."""

import contextlib
import math
import os
import pickle
import re
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

from course_utils.data import Batches, TrainingData, default_data_dir, load_dataset, make_batches
from course_utils.environment import seed_everything
from course_utils.evaluation import evaluate
from course_utils.models import LeNet5, SequenceRNN
from course_utils.training import (
    CheckpointError,
    History,
    TrainConfig,
    TrainingDivergedError,
    fit,
    learning_rate_schedule,
    load_weights,
    make_optimizer,
    read_checkpoint,
    save_weights,
)

REPOSITORY = Path(__file__).resolve().parent.parent
QUIET = {"optimizer": "sgd", "progress": False, "mixed_precision": "fp32"}
# The keys of a row of History, in order, as fit writes them for a classification with validation data.
ROW_KEYS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "lr",
    "images_per_second",
    "val_loss",
    "val_accuracy",
    "seconds",
]


def blob_batches(n=256, seed=0, batch_size=32, shuffle=True, size=8):
    """A learnable toy problem: 4 classes, each a bright square in another corner of a size x size image."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = torch.randint(0, 60, (n, size, size), generator=generator, dtype=torch.uint8)
    half = size // 2
    for index, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        images[index, row * half : (row + 1) * half, col * half : (col + 1) * half] += 150
    return Batches(images, labels, mean=(0.3,), std=(0.3,), batch_size=batch_size, shuffle=shuffle, seed=seed)


class TinyNet(nn.Module):
    """Conv + dropout: exercises channels-last and the global random generator (dropout masks)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 8 * 8, 4)

    def forward(self, x):
        return self.fc(self.drop(torch.relu(self.conv(x)).flatten(1)))


@contextlib.contextmanager
def pinned_threads(count=1):
    """torch's CPU threads fixed at ``count`` inside the block, restored after it.

    fit shares the CPUs with other processes between epochs (share_cpu_threads); with another thread
    count, sums split differently and round differently. A count chosen with OMP_NUM_THREADS is left
    alone, so setting it here pins the count whatever the machine's load or the shell's setting.
    """
    saved_threads, saved_variable = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(count)
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved_threads)
        if saved_variable is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = saved_variable


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """fit may change torch's thread count (share_cpu_threads): give later tests the count they had."""
    saved = torch.get_num_threads()
    yield
    torch.set_num_threads(saved)


# --- TrainConfig ------------------------------------------------------------------------------------


def test_a_config_needs_only_epochs_lr_and_optimizer():
    config = TrainConfig(epochs=3, lr=0.1, optimizer="sgd")
    assert config.schedule == "constant" and config.loss == "cross_entropy"
    assert TrainConfig(epochs=3, lr=0.1, optimizer="sgd", name="a") == TrainConfig(3, 0.1, "sgd", name="b")
    with pytest.raises(TypeError):
        TrainConfig(epochs=3, lr=0.1)  # no recipe value hides in a default


def test_bad_settings_are_refused_with_every_problem_listed():
    with pytest.raises(ValueError) as caught:
        TrainConfig(epochs=0, lr=-1.0, optimizer="adam", schedule="cosine", loss="l1")
    message = str(caught.value)
    assert message.startswith("invalid training settings: ")
    for problem in (
        "epochs must be a positive whole number, got 0",
        "lr must be a positive number, got -1.0",
        "optimizer must be one of sgd, adamw, got 'adam'",
        "schedule must be one of constant, onecycle, got 'cosine'",
        "loss must be one of cross_entropy, mse, got 'l1'",
    ):
        assert problem in message
    for settings, problem in [
        ({"epochs": 2.5}, "epochs must be a positive whole number, got 2.5"),
        ({"epochs": True}, "epochs must be a positive whole number"),
        ({"lr": float("nan")}, "lr must be a positive number, got nan"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0, label_smoothing in [0, 1)"),
        ({"label_smoothing": 1.0}, "label_smoothing in [0, 1)"),
        ({"warmup_fraction": 0.0}, "warmup_fraction in (0, 1)"),
        ({"grad_clip": 0.0}, "grad_clip must be positive or None, got 0.0"),
        ({"log_every": 0}, "log_every must be >= 1, checkpoint_every >= 0: 0, 0"),
        ({"checkpoint_every": -1}, "log_every must be >= 1, checkpoint_every >= 0: 25, -1"),
        ({"resume": True}, "resume=True needs checkpoint_dir"),
    ]:
        with pytest.raises(ValueError) as caught:
            TrainConfig(**{"epochs": 2, "lr": 0.1, "optimizer": "sgd", **settings})
        assert problem in str(caught.value), settings


def test_fit_takes_a_config_or_its_fields_and_names_unknown_ones():
    config = TrainConfig(epochs=5, lr=0.05, **QUIET)
    history = fit(TinyNet(), blob_batches(n=64), config=config, epochs=1)  # options replace fields
    assert len(history) == 1
    for given in ({"config": config}, {}):
        with pytest.raises(TypeError, match=r"unknown training option\(s\) learning_rate; see TrainConfig"):
            fit(TinyNet(), blob_batches(n=64), **given, epochs=1, lr=0.05, optimizer="sgd", learning_rate=0.1)


def test_make_optimizer_builds_what_the_config_says():
    model = nn.Linear(3, 2)
    model.bias.requires_grad_(False)  # frozen parameters are not optimised
    sgd = make_optimizer(model, TrainConfig(2, 0.1, "sgd", momentum=0.8, nesterov=True, weight_decay=5e-4))
    assert isinstance(sgd, torch.optim.SGD) and len(sgd.param_groups[0]["params"]) == 1
    assert {k: sgd.defaults[k] for k in ("lr", "momentum", "nesterov", "weight_decay")} == {
        "lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 5e-4,
    }  # fmt: skip
    assert (
        make_optimizer(model, TrainConfig(2, 0.1, "sgd", momentum=0.0, nesterov=True)).defaults["nesterov"]
        is False
    )
    adamw = make_optimizer(model, TrainConfig(2, 3e-3, "adamw", momentum=0.85, weight_decay=0.01))
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.defaults["betas"] == (0.85, 0.999) and adamw.defaults["weight_decay"] == 0.01


# --- learning_rate_schedule -------------------------------------------------------------------------


def test_onecycle_rises_to_the_peak_then_falls_almost_to_zero():
    lr_at = learning_rate_schedule(
        TrainConfig(10, 0.1, "sgd", schedule="onecycle", warmup_fraction=0.25), steps_per_epoch=10
    )
    rates = [lr_at(step) for step in range(100)]
    assert rates[0] == pytest.approx(0.1 / 25)
    assert max(rates) == rates[25] == 0.1  # the peak, after warmup_fraction = 0.25 of the 100 steps
    assert all(a < b for a, b in zip(rates[:25], rates[1:26]))  # up, step by step
    assert all(a > b for a, b in zip(rates[25:], rates[26:]))  # then down, step by step
    assert lr_at(100) == pytest.approx(0.1 / 25000)  # where the line ends
    assert rates[62] == pytest.approx(0.1 * (1 + (1 / 25000 - 1) * 37 / 75))  # linear on the way down
    short = learning_rate_schedule(
        TrainConfig(1, 0.1, "sgd", schedule="onecycle", warmup_fraction=0.25), steps_per_epoch=2
    )
    assert short(0) < short(1) == pytest.approx(0.1)  # a run of two steps still warms up


def test_constant_is_the_rate_itself_and_no_steps_is_refused():
    config = TrainConfig(3, 0.03, "sgd")
    assert {learning_rate_schedule(config, 7)(step) for step in range(21)} == {0.03}
    with pytest.raises(ValueError, match="steps_per_epoch must be at least 1, got 0"):
        learning_rate_schedule(config, 0)


# --- History ----------------------------------------------------------------------------------------


def make_history():
    history = History(name="run")
    history.append(
        {"epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "lr": 0.1, "images_per_second": 1234.5,
         "val_loss": 0.9, "val_accuracy": 0.55, "seconds": 2.0}
    )  # fmt: skip
    history.append(
        {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.8, "lr": 0.05, "images_per_second": 2000.0,
         "val_loss": 0.6, "val_accuracy": 0.75, "seconds": 3.0}
    )  # fmt: skip
    return history


def test_history_rows_columns_last_and_total_seconds():
    history = make_history()
    assert len(history) == 2 and repr(history) == history.to_table()
    assert [row["epoch"] for row in history.rows] == [1, 2]
    assert history.column("train_loss") == [1.0, 0.5]
    assert history.last["val_accuracy"] == 0.75
    assert history.total_seconds == 5.0
    with pytest.raises(KeyError, match="no 'acc' in this history; it has epoch, train_loss"):
        history.column("acc")
    empty = History()
    assert len(empty) == 0 and empty.total_seconds == 0.0 and empty.column("anything") == []
    with pytest.raises(IndexError, match="empty"):
        _ = empty.last


def test_history_keeps_copies_of_its_rows():
    row = {"epoch": 1, "train_loss": 1.0, "seconds": 1.0}
    history = History([row])
    row["train_loss"] = 99.0
    assert history.column("train_loss") == [1.0]


def test_history_table_formats_each_column():
    lines = make_history().to_table().splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ROW_KEYS
    assert lines[1].split() == ["1", "1.0000", "50.00%", "0.1", "1,234", "0.9000", "55.00%", "2.0"]
    assert lines[2].split() == ["2", "0.5000", "80.00%", "0.05", "2,000", "0.6000", "75.00%", "3.0"]
    # Rows without validation (a history put together by hand) show a dash there.
    mixed = History([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5, "val_loss": 0.7}])
    assert mixed.to_table().splitlines()[1].split() == ["1", "1.0000", "-"]


# --- fit ------------------------------------------------------------------------------------------


def test_fit_learns_a_simple_problem_and_records_every_epoch():
    seed_everything(0)
    val = blob_batches(64, seed=1, shuffle=False)
    history = fit(
        TinyNet(),
        blob_batches(),
        val,
        epochs=4,
        lr=0.05,
        schedule="onecycle",
        warmup_fraction=0.25,
        name="tiny",
        **QUIET,
    )
    assert history.name == "tiny" and len(history) == 4
    assert list(history.last) == ROW_KEYS
    assert history.column("epoch") == [1, 2, 3, 4]
    assert history.last["val_accuracy"] > 0.95
    assert history.column("train_loss")[-1] < history.column("train_loss")[0]
    assert all(row["images_per_second"] > 0 and row["seconds"] > 0 for row in history.rows)
    lr_at = learning_rate_schedule(
        TrainConfig(4, 0.05, "sgd", schedule="onecycle", warmup_fraction=0.25), steps_per_epoch=8
    )
    assert history.column("lr") == [lr_at(0), lr_at(8), lr_at(16), lr_at(24)]  # each epoch's first step


def test_time_budget_stops_between_epochs(capsys):
    seed_everything(0)
    history = fit(TinyNet(), blob_batches(n=64), epochs=50, lr=0.05, time_budget=1e-6, **QUIET)
    assert len(history) == 1  # the first epoch always runs; the budget is then spent
    assert "time budget of 0 s reached after 1 epochs; stopping" in capsys.readouterr().out


def train_one_epoch_as_in_notebook_02(model, batches, optimizer, loss_function, lr_at, first_step):
    """The plain epoch a student writes in notebook 02."""
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for i, (images, labels) in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(first_step + i)
        logits = model(images)
        loss = loss_function(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += len(labels)
    return loss_sum / seen, correct / seen


class ClippingOptimizer:
    """Clips the gradient's norm, then steps: the plain loop's optimiser when fit has grad_clip."""

    def __init__(self, optimizer, model, max_norm):
        self.optimizer, self.model, self.max_norm = optimizer, model, max_norm
        self.param_groups = optimizer.param_groups

    def zero_grad(self):
        self.optimizer.zero_grad()

    def step(self):
        nn.utils.clip_grad_norm_(self.model.parameters(), self.max_norm)
        self.optimizer.step()


@pytest.mark.parametrize("grad_clip", [None, 0.5])
def test_fit_in_fp32_is_exactly_the_plain_notebook_loop(grad_clip):
    """LeNet-5 in float32: fit's GradScaler is off and passes everything through, the same losses and
    the same weights come out, to the bit."""
    config = TrainConfig(
        epochs=3,
        lr=0.05,
        schedule="onecycle",
        warmup_fraction=0.25,
        channels_last=False,
        grad_clip=grad_clip,
        **QUIET,
    )
    seed_everything(5)
    by_fit, by_hand = LeNet5(num_classes=4), LeNet5(num_classes=4)
    by_hand.load_state_dict(by_fit.state_dict())
    with pinned_threads(1):
        history = fit(by_fit, blob_batches(n=128, size=28), config=config)
        assert torch.get_num_threads() == 1  # fit kept the count chosen here

        optimizer = make_optimizer(by_hand, config)
        if grad_clip is not None:
            optimizer = ClippingOptimizer(optimizer, by_hand, grad_clip)
        lr_at = learning_rate_schedule(config, steps_per_epoch=4)
        batches = blob_batches(n=128, size=28)
        rows = []
        for epoch in range(3):
            batches.set_epoch(epoch)
            rows.append(
                train_one_epoch_as_in_notebook_02(
                    by_hand, batches, optimizer, nn.CrossEntropyLoss(), lr_at, first_step=epoch * 4
                )
            )
    for name, value in by_fit.state_dict().items():
        assert torch.equal(value, by_hand.state_dict()[name]), name
    assert history.column("train_loss") == [loss for loss, _ in rows]
    assert history.column("train_accuracy") == [accuracy for _, accuracy in rows]


def sum_of_marked(n, steps=4, seed=0):
    """A small adding problem: (N, T, 2) sequences of (value, marker); the target is the sum of the
    two marked values."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(n, steps, generator=generator)
    markers = torch.zeros(n, steps)
    markers[:, 0] = markers[:, steps // 2] = 1.0
    return torch.stack([values, markers], dim=2), (values * markers).sum(dim=1)


def test_a_regression_trains_with_mse_and_has_no_accuracy():
    seed_everything(0)
    train = Batches(*sum_of_marked(512), batch_size=64, shuffle=True)
    val = Batches(*sum_of_marked(128, seed=1), batch_size=128)
    model = SequenceRNN(input_size=2, hidden_size=16, cell="gru", num_classes=1)  # outputs (B, 1)
    history = fit(
        model,
        train,
        val,
        epochs=10,
        lr=0.03,
        optimizer="adamw",
        loss="mse",
        progress=False,
        mixed_precision="fp32",
    )
    assert list(history.last) == ["epoch", "train_loss", "lr", "images_per_second", "val_loss", "seconds"]
    assert history.last["val_loss"] < 0.1 * history.rows[0]["val_loss"]
    assert history.last["train_loss"] < 0.02  # a constant guess (the mean, 1.0) would give 1/6


def test_a_task_that_answers_at_every_step_trains_on_outputs_b_t_k():
    """Outputs (B, T, K) against targets (B, T): the loss and accuracy count every step's answer."""

    def echo(n, seed):  # answer at each step the class whose one-hot vector came in
        targets = torch.randint(0, 3, (n, 6), generator=torch.Generator().manual_seed(seed))
        return nn.functional.one_hot(targets, 3).float(), targets

    seed_everything(0)
    model = SequenceRNN(input_size=3, hidden_size=16, cell="rnn", num_classes=3, outputs="every_step")
    train, val = Batches(*echo(256, 0), batch_size=32, shuffle=True), Batches(*echo(64, 1), batch_size=64)
    assert model(next(iter(val))[0]).shape == (64, 6, 3)
    history = fit(
        model, train, val, epochs=5, lr=0.02, optimizer="adamw", progress=False, mixed_precision="fp32"
    )
    assert history.column("train_accuracy")[0] < history.last["train_accuracy"]
    assert history.last["val_accuracy"] > 0.95  # chance is 1/3
    assert evaluate(model, val, mixed_precision="fp32").accuracy == history.last["val_accuracy"]


class ExplodesAt(TinyNet):
    """Its output becomes NaN from the ``at_call``-th training call on."""

    def __init__(self, at_call):
        super().__init__()
        self.at_call, self.calls = at_call, 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x) * (float("nan") if self.calls >= self.at_call else 1.0)


def test_a_nan_loss_stops_the_run_with_advice():
    # The check reads the running loss every log_every steps and after an epoch's last (8 steps here).
    advice = r" \(learning rate 0.05\)\. Try a lower learning rate \(e\.g\. 0\.005\), gradient clipping"
    with pytest.raises(TrainingDivergedError, match=r"NaN or infinite in epoch 1, by step 8" + advice):
        fit(ExplodesAt(1), blob_batches(), epochs=1, lr=0.05, **QUIET)
    with pytest.raises(TrainingDivergedError, match=r"in epoch 2, by step 4" + advice):
        fit(ExplodesAt(8 + 3), blob_batches(), epochs=3, lr=0.05, log_every=4, **QUIET)
    with pytest.raises(TrainingDivergedError, match=r"in epoch 1, by step 5" + advice):
        fit(ExplodesAt(5), blob_batches(), epochs=1, lr=0.05, log_every=1, **QUIET)


def test_out_of_memory_is_explained():
    class OutOfMemory(TinyNet):
        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="ran out of memory with batches of 32: use smaller batches"):
        fit(OutOfMemory(), blob_batches(), epochs=1, lr=0.05, **QUIET)


def test_training_data_need_set_epoch_and_batches():
    assert isinstance(blob_batches(), TrainingData)
    with pytest.raises(TypeError, match=r"train_data must be iterable .* set_epoch\(epoch\).*got list"):
        fit(TinyNet(), list(blob_batches()), epochs=1, lr=0.05, **QUIET)

    class NoBatches:
        def __iter__(self):
            return iter(())

        def __len__(self):
            return 0

        def set_epoch(self, epoch):
            pass

    with pytest.raises(ValueError, match="the training data has no batches"):
        fit(TinyNet(), NoBatches(), epochs=1, lr=0.05, **QUIET)


def test_the_device_is_fits_decision_and_a_missing_one_is_explained(monkeypatch):
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        fit(TinyNet(), blob_batches(), epochs=1, lr=0.05, device="tpu", **QUIET)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda' is not available on this machine"):
        fit(TinyNet(), blob_batches(), epochs=1, lr=0.05, device="cuda", **QUIET)


class ColourNet(nn.Module):
    """A 3-channel convolutional model that remembers the memory layout of its inputs."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 4)
        self.channels_last_inputs = []

    def forward(self, x):
        self.channels_last_inputs.append(x.is_contiguous(memory_format=torch.channels_last))
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize(("setting", "expected"), [("auto", True), (True, True), (False, False)])
def test_fit_decides_the_memory_layout_of_model_and_inputs(setting, expected):
    def colour_batches(n, batch_size):
        images = torch.randint(0, 255, (n, 8, 8, 3), dtype=torch.uint8)
        return Batches(images, torch.arange(n) % 4, mean=(0.5,) * 3, std=(0.25,) * 3, batch_size=batch_size)

    model = ColourNet()
    fit(
        model,
        colour_batches(64, 16),
        colour_batches(32, 32),
        epochs=1,
        lr=0.05,
        channels_last=setting,
        **QUIET,
    )
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last) == expected
    # 4 training steps, then 1 validation batch: evaluate follows the model's layout.
    assert model.channels_last_inputs == [expected] * 5


def test_bf16_training_runs_on_the_cpu():
    seed_everything(0)
    history = fit(
        TinyNet(), blob_batches(), epochs=2, lr=0.05, optimizer="sgd", progress=False, mixed_precision="bf16"
    )
    assert math.isfinite(history.last["train_loss"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("precision", ["auto", "fp16", "fp32"])
def test_fit_moves_cpu_batches_to_its_gpu(precision):
    class RecordsDevice(TinyNet):
        def forward(self, x):
            self.seen = x.device.type
            return super().forward(x)

    seed_everything(0)
    model, cpu_batches = RecordsDevice(), blob_batches()
    history = fit(
        model, cpu_batches, blob_batches(64, seed=1, shuffle=False), epochs=3, lr=0.05, optimizer="sgd",
        device="cuda", mixed_precision=precision, progress=False,
    )  # fmt: skip
    assert cpu_batches.device.type == "cpu"  # the data stay where they are stored
    assert next(model.parameters()).device.type == "cuda" and model.seen == "cuda"
    assert history.last["val_accuracy"] > 0.9


@pytest.mark.skipif(
    not (default_data_dir() / "mnist.npz").is_file(), reason="no mnist.npz in the data folder"
)
def test_lenet5_learns_real_mnist_in_a_few_seconds():
    seed_everything(0)
    data = make_batches(load_dataset("mnist"), batch_size=64, train_subset=6000, test_subset=2000, seed=0)
    model = LeNet5()
    fit(model, data.train, epochs=2, optimizer="adamw", lr=3e-3, weight_decay=0.01, progress=False)
    result = evaluate(model, data.test)
    assert result.num_samples == 2000
    assert result.accuracy >= 0.93


# --- checkpoints and resuming -------------------------------------------------------------------------


class InterruptAt(nn.Module):
    """Wraps a model and raises KeyboardInterrupt at a given training call, like Ctrl-C would."""

    def __init__(self, inner, at_call=-1):
        super().__init__()
        self.inner, self.at_call, self.calls = inner, at_call, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.at_call:
                raise KeyboardInterrupt
        return self.inner(x)


def test_an_interrupted_run_resumed_in_a_new_model_ends_exactly_as_an_uninterrupted_one(tmp_path, capsys):
    settings = dict(
        epochs=4,
        lr=0.05,
        schedule="onecycle",
        warmup_fraction=0.25,
        momentum=0.9,
        checkpoint_every=1,
        **QUIET,
    )
    with pinned_threads(1):
        seed_everything(7)
        straight = TinyNet()
        full = fit(
            straight,
            blob_batches(),
            blob_batches(64, seed=1),
            epochs=4,
            lr=0.05,
            schedule="onecycle",
            warmup_fraction=0.25,
            momentum=0.9,
            **QUIET,
        )

        seed_everything(7)
        interrupted = InterruptAt(TinyNet(), at_call=2 * 8 + 3)  # 8 steps per epoch: stop inside epoch 3
        with pytest.raises(KeyboardInterrupt):
            fit(
                interrupted,
                blob_batches(),
                blob_batches(64, seed=1),
                checkpoint_dir=str(tmp_path),
                **settings,
            )
        assert "training interrupted during epoch 3; the last checkpoint is" in capsys.readouterr().err
        assert len(read_checkpoint(tmp_path / "last.pt")["history"]) == 2

        seed_everything(999)  # a new process has other random states: resuming restores them
        resumed = InterruptAt(TinyNet())
        history = fit(
            resumed,
            blob_batches(),
            blob_batches(64, seed=1),
            checkpoint_dir=str(tmp_path),
            resume=True,
            **settings,
        )
    assert "after epoch 2" in capsys.readouterr().out
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.inner.state_dict()[name]), name
    for column in ("epoch", "train_loss", "train_accuracy", "lr", "val_loss", "val_accuracy"):
        assert history.column(column) == full.column(column), column
    # The finished run's checkpoint holds its last weights: load_weights reads it too.
    assert torch.equal(
        load_weights(InterruptAt(TinyNet()), tmp_path / "last.pt").inner.fc.bias, straight.fc.bias
    )


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path, capsys):
    history = fit(
        TinyNet(), blob_batches(n=64), epochs=1, lr=0.05, checkpoint_dir=str(tmp_path), resume=True, **QUIET
    )
    assert len(history) == 1 and "yet: starting from scratch" in capsys.readouterr().out
    assert (tmp_path / "last.pt").is_file()  # written after the last epoch


def test_resume_with_other_epochs_is_refused(tmp_path):
    fit(TinyNet(), blob_batches(n=64), epochs=1, lr=0.05, checkpoint_dir=str(tmp_path), **QUIET)
    with pytest.raises(CheckpointError, match="run of 1 epochs, but this run asks for 3"):
        fit(
            TinyNet(),
            blob_batches(n=64),
            epochs=3,
            lr=0.05,
            checkpoint_dir=str(tmp_path),
            resume=True,
            **QUIET,
        )


def test_a_checkpoint_of_another_model_is_refused_naming_the_difference(tmp_path):
    fit(TinyNet(), blob_batches(n=64), epochs=1, lr=0.05, checkpoint_dir=str(tmp_path), **QUIET)
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    with pytest.raises(CheckpointError) as caught:
        fit(other, blob_batches(n=64), epochs=1, lr=0.05, checkpoint_dir=str(tmp_path), resume=True, **QUIET)
    message = str(caught.value)
    assert "was saved from another model than this Sequential" in message
    assert 'Missing key(s) in state_dict: "1.weight"' in message and "Unexpected key(s)" in message
    assert message.endswith("Build the same model (class and arguments) that was trained.")

    save_weights(nn.Linear(3, 4), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"size mismatch for weight: .*\[4, 3\].*\[8, 3\]"):
        load_weights(nn.Linear(3, 8), tmp_path / "w.pt")


def test_weights_round_trip_with_their_metadata(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    path = save_weights(model, tmp_path / "deeper" / "w.pt", metadata={"accuracy": 0.99, "epochs": [1, 2]})
    assert path == tmp_path / "deeper" / "w.pt"
    fresh = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert load_weights(fresh, path) is fresh
    for name, value in model.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[name]), name
    assert read_checkpoint(path)["metadata"] == {"accuracy": 0.99, "epochs": [1, 2]}
    torch.save(model.state_dict(), tmp_path / "plain.pt")  # no "model" key
    with pytest.raises(CheckpointError, match="holds no model weights"):
        load_weights(fresh, tmp_path / "plain.pt")


class Payload:
    """Runs os.mkdir(marker) when unpickled: what a malicious (or merely foreign) file can do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def bad_file(kind, folder):
    """A checkpoint path of the given ``kind`` of trouble."""
    path = folder / "last.pt"
    if kind == "missing":
        return path
    if kind == "empty":
        path.write_bytes(b"")  # what a save killed before its first byte, or a failed copy, leaves
    elif kind.startswith("truncated"):
        data = save_weights(nn.Linear(3, 4), path).read_bytes()
        path.write_bytes(
            data[: {"truncated half": len(data) // 2, "truncated 1": 1}.get(kind, len(data) - 10)]
        )
    elif kind == "fifo":
        os.mkfifo(path)  # opening it would wait for a writer, for ever
    elif kind == "folder":
        path.mkdir()
    elif kind == "pickle":
        torch.save(
            {"model": nn.Linear(3, 4).state_dict(), "x": Payload(folder / "ran")}, path, pickle_module=pickle
        )
    elif kind == "whole model":
        torch.save(nn.Linear(3, 4), path)  # torch.save(model) instead of its state_dict: pickled code
    return path


@contextlib.contextmanager
def at_most(seconds):
    """Fail instead of hanging (for the FIFO, should it ever be opened)."""

    def give_up(signum, frame):
        raise TimeoutError(f"still waiting after {seconds} s")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("missing", "no checkpoint at .*: train first"),
        ("empty", "is empty or truncated .*; delete it and train again"),
        ("truncated half", "is empty or truncated"),
        ("truncated 1", "is empty or truncated"),
        ("truncated end", "is empty or truncated"),
        ("fifo", "is not a regular file"),
        ("folder", "is not a regular file"),
        ("pickle", "it holds code or objects, not only tensors"),
        ("whole model", "it holds code or objects, not only tensors"),
    ],
)
def test_a_damaged_or_unsafe_file_gives_a_checkpoint_error_and_runs_nothing(tmp_path, kind, says):
    path = bad_file(kind, tmp_path)
    with at_most(10), pytest.raises(CheckpointError, match=says):
        load_weights(nn.Linear(3, 4), path)
    assert not (tmp_path / "ran").exists()  # the pickled os.mkdir never ran
    if kind not in ("missing", "folder"):
        with at_most(10), pytest.raises(CheckpointError, match=says):  # resuming from it: the same refusal
            data = Batches(torch.randn(8, 3), torch.arange(8) % 4, batch_size=4)
            fit(nn.Linear(3, 4), data, epochs=1, lr=0.1, checkpoint_dir=str(tmp_path), resume=True, **QUIET)
    assert not (tmp_path / "ran").exists()


def test_an_unreadable_checkpoint_is_a_permission_problem_not_damage(tmp_path, monkeypatch):
    import builtins
    import io

    path = save_weights(nn.Linear(3, 4), tmp_path / "w.pt")
    real_open = io.open

    def no_permission(file, *args, **kwargs):  # what open() raises for another user's 0600 file
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_permission)
    monkeypatch.setattr(io, "open", no_permission)  # Path.open's
    with pytest.raises(CheckpointError, match="you may not read .*w.pt: ask its owner") as caught:
        load_weights(nn.Linear(3, 4), path)
    assert "truncated" not in str(caught.value) and "delete" not in str(caught.value)


# --- the loop's lines live in one place ---------------------------------------------------------------


def test_zero_grad_and_backward_appear_in_course_utils_only_in_training():
    having = {
        path.name
        for path in (REPOSITORY / "course_utils").rglob("*.py")
        if "zero_grad" in (text := path.read_text(encoding="utf-8")) or ".backward(" in text
    }
    assert having == {"training.py"}


def test_fit_says_once_early_in_the_first_epoch_how_long_training_will_take(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_PROGRESS", "text")  # a plain text bar, whose messages land on stdout
    config = TrainConfig(epochs=3, lr=0.1, optimizer="sgd", mixed_precision="fp32", log_every=1)
    fit(TinyNet(), blob_batches(n=320, batch_size=16), None, config)  # 20 steps per epoch
    said = [line for line in capsys.readouterr().out.splitlines() if "at this pace" in line]
    assert len(said) == 1, said  # once per run, not once per epoch
    assert "(3 epochs of 20 steps, validation aside)" in said[0]
    assert re.search(r"about (\d+ s|\d+\.\d min) here", said[0])
    fit(TinyNet(), blob_batches(n=320, batch_size=16), None, config, progress=False)
    assert "at this pace" not in capsys.readouterr().out  # without a progress bar, fit stays quiet
