"""course_utils.training.fit: it trains, it resumes exactly, and it fails clearly."""

import math
import os
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from course_utils.checkpoints import CheckpointError, read_checkpoint
from course_utils.data import Batches, TrainingData, load_dataset, make_batches
from course_utils.environment import seed_everything
from course_utils.evaluation import evaluate
from course_utils.precision import Precision, resolve_precision
from course_utils.training import (
    TrainConfig,
    TrainingDivergedError,
    fit,
    learning_rate_schedule,
    make_config,
    make_optimizer,
)


def blob_batches(n=256, seed=0, batch_size=32, shuffle=True):
    """A learnable toy problem: 4 classes, each a bright square in a different corner of an 8x8 image."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = torch.randint(0, 60, (n, 8, 8), generator=generator, dtype=torch.uint8)
    for index, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        images[index, row * 4 : row * 4 + 4, col * 4 : col * 4 + 4] += 150
    return Batches(images, labels, mean=(0.3,), std=(0.3,), batch_size=batch_size, shuffle=shuffle, seed=seed)


class TinyNet(nn.Module):
    """Conv + dropout: exercises channels-last and the global RNG (dropout masks)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 8 * 8, 4)

    def forward(self, x):
        return self.fc(self.drop(torch.relu(self.conv(x)).flatten(1)))


QUIET = {"progress": False, "mixed_precision": "fp32"}


def test_fit_learns_a_simple_problem_and_records_history():
    seed_everything(0)
    model = TinyNet()
    history = fit(model, blob_batches(), blob_batches(64, seed=1, shuffle=False), epochs=4, lr=0.05, **QUIET)
    assert len(history) == 4
    assert [row["epoch"] for row in history.rows] == [1, 2, 3, 4]
    assert history.last["val_accuracy"] > 0.95
    assert history.column("train_loss")[-1] < history.column("train_loss")[0]
    assert all(row["images_per_second"] > 0 and row["seconds"] > 0 for row in history.rows)
    assert history.rows[0]["lr"] < history.rows[1]["lr"]  # one-cycle warms up


def test_time_budget_stops_between_epochs():
    seed_everything(0)
    history = fit(TinyNet(), blob_batches(), epochs=50, lr=0.05, time_budget=1e-6, **QUIET)
    assert len(history) == 1  # the first epoch always runs; the budget is then spent


class InterruptAt(nn.Module):
    """Wraps a model and raises KeyboardInterrupt at a given training call, like Ctrl-C would."""

    def __init__(self, inner, at_call):
        super().__init__()
        self.inner, self.at_call, self.calls = inner, at_call, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.at_call:
                raise KeyboardInterrupt
        return self.inner(x)


def test_interrupted_and_resumed_run_ends_with_identical_weights(tmp_path):
    settings = dict(epochs=4, lr=0.05, optimizer="sgd", schedule="onecycle", checkpoint_every=1, **QUIET)
    seed_everything(7)
    straight = TinyNet()
    full_history = fit(straight, blob_batches(), epochs=4, lr=0.05, optimizer="sgd", **QUIET)

    seed_everything(7)
    interrupted = InterruptAt(TinyNet(), at_call=2 * 8 + 3)  # 8 steps per epoch: stop inside epoch 3
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, blob_batches(), checkpoint_dir=str(tmp_path), **settings)
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 2

    seed_everything(999)  # a fresh process would have other RNG states: resume must restore them
    resumed = InterruptAt(TinyNet(), at_call=-1)
    history = fit(resumed, blob_batches(), checkpoint_dir=str(tmp_path), resume=True, **settings)
    assert len(history) == 4
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.inner.state_dict()[name]), name
    assert history.column("train_loss") == pytest.approx(full_history.column("train_loss"))


class InterruptAfter:
    """Training data that stop the run like Ctrl-C when epoch `stop_at` (counting from 0) would begin."""

    def __init__(self, batches, stop_at):
        self.batches, self.stop_at = batches, stop_at

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)

    def set_epoch(self, epoch):
        if epoch >= self.stop_at:
            raise KeyboardInterrupt
        self.batches.set_epoch(epoch)


def test_a_training_data_wrapper_interrupts_and_the_run_resumes_exactly(tmp_path, capsys):
    settings = dict(epochs=4, lr=0.05, checkpoint_dir=str(tmp_path), checkpoint_every=1, **QUIET)
    seed_everything(3)
    straight = TinyNet()
    full_history = fit(straight, blob_batches(), epochs=4, lr=0.05, **QUIET)

    wrapper = InterruptAfter(blob_batches(), stop_at=2)
    assert isinstance(wrapper, TrainingData) and isinstance(blob_batches(), TrainingData)
    seed_everything(3)
    with pytest.raises(KeyboardInterrupt):
        fit(TinyNet(), wrapper, **settings)
    assert "training interrupted during epoch 3; the last checkpoint is" in capsys.readouterr().err
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 2

    seed_everything(999)
    resumed = TinyNet()
    history = fit(resumed, blob_batches(), resume=True, **settings)
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert history.column("train_loss") == full_history.column("train_loss")
    assert history.column("lr") == full_history.column("lr")


def test_training_data_without_set_epoch_is_refused_clearly():
    batches = list(blob_batches())
    with pytest.raises(TypeError, match="set_epoch.*TrainingData.*got list"):
        fit(TinyNet(), batches, epochs=1, **QUIET)


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    seed_everything(0)
    fit(TinyNet(), blob_batches(), epochs=1, lr=0.05, checkpoint_dir=str(tmp_path), **QUIET)
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    with pytest.raises(CheckpointError, match="belongs to another model.*TinyNet"):
        fit(other, blob_batches(), epochs=2, lr=0.05, checkpoint_dir=str(tmp_path), resume=True, **QUIET)


def test_resume_with_other_epoch_count_is_refused(tmp_path):
    seed_everything(0)
    fit(TinyNet(), blob_batches(), epochs=1, lr=0.05, checkpoint_dir=str(tmp_path), **QUIET)
    with pytest.raises(CheckpointError, match="resume with epochs=1"):
        fit(TinyNet(), blob_batches(), epochs=3, lr=0.05, checkpoint_dir=str(tmp_path), resume=True, **QUIET)


class ExplodesAt(TinyNet):
    """Its output becomes NaN from the `at_call`-th call on."""

    def __init__(self, at_call):
        super().__init__()
        self.at_call, self.calls = at_call, 0

    def forward(self, x):
        self.calls += 1
        scale = float("nan") if self.calls >= self.at_call else 1.0
        return super().forward(x) * scale


def test_nan_loss_names_epoch_and_steps_and_suggests_lower_lr():
    # The check reads the running loss every log_every steps (8 steps per epoch here).
    advice = r" \(learning rate 0.05\)\. Try a lower learning rate .*grad_clip=1.0"
    with pytest.raises(TrainingDivergedError, match=r"in epoch 1, at one of steps 1 to 8" + advice):
        fit(ExplodesAt(1), blob_batches(), epochs=1, lr=0.05, **QUIET)
    with pytest.raises(TrainingDivergedError, match=r"in epoch 2, at one of steps 1 to 4" + advice):
        fit(ExplodesAt(8 + 3), blob_batches(), epochs=3, lr=0.05, log_every=4, **QUIET)
    with pytest.raises(TrainingDivergedError, match=r"in epoch 1, at step 5" + advice):
        fit(ExplodesAt(5), blob_batches(), epochs=1, lr=0.05, log_every=1, **QUIET)


def test_out_of_memory_is_explained(monkeypatch):
    class OutOfMemory(TinyNet):
        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="ran out of memory with batch size 32.*smaller batch"):
        fit(OutOfMemory(), blob_batches(), epochs=1, lr=0.05, **QUIET)


def test_bad_settings_are_refused_with_all_problems_listed():
    with pytest.raises(ValueError, match="epochs must be a positive integer(.|\n)*schedule must be one of"):
        make_config(epochs=0, schedule="triangular")
    with pytest.raises(TypeError, match="unknown training option.*'learning_rate'"):
        make_config(learning_rate=0.1)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        make_config(resume=True)
    with pytest.raises(ValueError, match="log_every must be a positive integer"):
        make_config(log_every=0)


def test_the_device_is_fits_decision_and_a_missing_one_is_explained(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="cuda was requested but no CUDA GPU is visible"):
        fit(TinyNet(), blob_batches(), epochs=1, device="cuda", **QUIET)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        fit(TinyNet(), blob_batches(), epochs=1, device="tpu", **QUIET)


class RecordsInputs(TinyNet):
    """Remembers the device and memory layout of every training input."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x):
        if self.training:
            self.inputs.append((x.device.type, x.is_contiguous(memory_format=torch.channels_last)))
        return super().forward(x)


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


def colour_batches(n, batch_size):
    images = torch.randint(0, 255, (n, 8, 8, 3), dtype=torch.uint8)
    return Batches(images, torch.arange(n) % 4, mean=(0.5,) * 3, std=(0.25,) * 3, batch_size=batch_size)


@pytest.mark.parametrize(("setting", "expected"), [("auto", True), (True, True), (False, False)])
def test_fit_decides_the_memory_layout_of_model_and_inputs(setting, expected):
    model = ColourNet()
    fit(model, colour_batches(64, 16), colour_batches(32, 32), epochs=1, channels_last=setting, **QUIET)
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last) == expected
    # 4 training steps, then 1 validation batch: evaluate follows the model's layout.
    assert model.channels_last_inputs == [expected] * 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_fit_moves_cpu_batches_to_its_device():
    seed_everything(0)
    model = RecordsInputs()
    cpu_batches = blob_batches()
    history = fit(
        model, cpu_batches, blob_batches(64, seed=1, shuffle=False), epochs=2, device="cuda", **QUIET
    )
    assert cpu_batches.device.type == "cpu"  # the data stay where they are stored
    assert next(model.parameters()).device.type == "cuda"
    assert {device for device, _ in model.inputs} == {"cuda"}
    assert math.isfinite(history.last["val_loss"])


# The learning-rate factors of the LambdaLR schedules that fit used before the schedules
# became plain functions, copied unchanged: the new schedules must give the very same
# rates, step for step, or seeded results (the notebooks' accuracies) would move.
@dataclass
class OldOneCycle:
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
class OldWarmupCosine:
    warmup_steps: int
    total_steps: int

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def old_scheduler(optimizer, config, steps_per_epoch):
    """The old make_scheduler, stepped once per optimiser step."""
    total_steps = config.epochs * steps_per_epoch
    if config.schedule == "onecycle":
        warmup = max(1, round(config.warmup_fraction * total_steps))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, OldOneCycle(warmup, total_steps))
    if config.schedule == "cosine":
        warmup = int(round(config.warmup_epochs * steps_per_epoch))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, OldWarmupCosine(max(1, warmup), total_steps))
    if config.schedule == "multistep":
        milestones = [m * steps_per_epoch for m in config.milestones]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=config.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def old_rates(config, steps_per_epoch):
    """The rate of each step of a run under the old scheduler (read before each step, as fit did)."""
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=config.lr)
    scheduler = old_scheduler(optimizer, config, steps_per_epoch)
    rates = []
    for _ in range(config.epochs * steps_per_epoch):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize(
    "settings",
    [
        dict(schedule="onecycle", epochs=10, lr=0.1),
        dict(schedule="onecycle", epochs=3, lr=0.05, warmup_fraction=0.3),
        dict(schedule="onecycle", epochs=30, lr=3e-3),  # the quick profile's LeNet-5 run length
        dict(schedule="onecycle", epochs=1, lr=0.4),
        dict(schedule="cosine", epochs=10, lr=0.1, warmup_epochs=1),
        dict(schedule="cosine", epochs=4, lr=0.02, warmup_epochs=0.5),
        dict(schedule="multistep", epochs=10, lr=0.1, milestones=(5, 8)),
        dict(schedule="multistep", epochs=6, lr=0.017, milestones=(1, 3), gamma=0.2),
        dict(schedule="constant", epochs=3, lr=0.03),
    ],
    ids=lambda settings: "-".join(str(v) for v in settings.values()),
)
@pytest.mark.parametrize("steps_per_epoch", [1, 7, 391])
def test_schedules_give_the_old_schedulers_rates_exactly(settings, steps_per_epoch):
    config = make_config(**settings)
    lr_at = learning_rate_schedule(config, steps_per_epoch)
    new = [lr_at(step) for step in range(config.epochs * steps_per_epoch)]
    assert new == old_rates(config, steps_per_epoch)  # equal floats, not approximately


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "multistep", "constant"])
def test_schedules_have_the_documented_shape(schedule):
    config = make_config(epochs=10, lr=0.1, schedule=schedule, milestones=(5, 8), warmup_epochs=1)
    lr_at = learning_rate_schedule(config, steps_per_epoch=10)
    lrs = [lr_at(step) for step in range(100)]
    if schedule == "onecycle":
        assert lrs[0] == pytest.approx(0.1 / 25)
        assert lrs[25] == 0.1  # the peak, after warmup_fraction = 0.25 of the 100 steps
        assert lr_at(100) == pytest.approx(0.1 / 25000)  # where the line ends
        assert lrs[30] > lrs[60] > lrs[99]
    if schedule == "constant":
        assert lrs == [0.1] * 100
    elif schedule == "multistep":
        assert lrs[49] == 0.1 and lrs[50] == pytest.approx(0.01) and lrs[80] == pytest.approx(0.001)
        assert len(set(lrs)) == 3
    else:
        peak = max(lrs)
        assert peak == pytest.approx(0.1, rel=1e-2)
        assert lrs[0] < 0.02 and lrs[-1] < 0.01
        assert lrs.index(peak) == (25 if schedule == "onecycle" else 9)
    if schedule == "cosine":
        assert lrs[0] == pytest.approx(0.1 / 10)  # warm-up over 10 steps, from lr/10
        assert lrs[10 + 45] == pytest.approx(0.05)  # half way down the cosine (steps 10 to 100)


def test_onecycle_works_for_runs_of_a_few_steps():
    lr_at = learning_rate_schedule(make_config(epochs=1, schedule="onecycle", lr=0.1), steps_per_epoch=2)
    assert lr_at(0) < lr_at(1) == pytest.approx(0.1)


def test_fit_records_the_rate_of_each_epochs_first_step():
    history = fit(TinyNet(), blob_batches(), epochs=3, lr=0.05, **QUIET)
    lr_at = learning_rate_schedule(make_config(epochs=3, lr=0.05), steps_per_epoch=8)
    assert history.column("lr") == [lr_at(0), lr_at(8), lr_at(16)]


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
def test_fit_in_fp32_is_exactly_the_plain_notebook_loop(grad_clip, monkeypatch):
    """In float32 fit's GradScaler is built with enabled=False and passes everything through."""
    scalers = []

    class RecordingScaler(torch.amp.GradScaler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.steps = 0
            scalers.append(self)

        def step(self, optimizer, *args, **kwargs):
            self.steps += 1
            return super().step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp, "GradScaler", RecordingScaler)
    # fit adapts torch's CPU threads to the machine's load before each epoch; the hand-written
    # loop does not. Under load the two would then sum in different orders, and "bit for bit"
    # would fail for a reason that has nothing to do with the loop: keep the threads fixed here.
    monkeypatch.setattr("course_utils.training.adapt_cpu_threads", lambda *args, **kwargs: None)
    config = make_config(epochs=3, lr=0.05, channels_last=False, grad_clip=grad_clip, **QUIET)
    seed_everything(5)
    by_fit, by_hand = TinyNet(), TinyNet()
    by_hand.load_state_dict(by_fit.state_dict())
    random_state = torch.get_rng_state()  # so that both runs draw the same dropout masks
    history = fit(by_fit, blob_batches(), config=config)
    assert len(scalers) == 1 and not scalers[0].is_enabled() and scalers[0].steps == 3 * 8

    torch.set_rng_state(random_state)
    optimizer = make_optimizer(by_hand, config)
    if grad_clip is not None:
        optimizer = ClippingOptimizer(optimizer, by_hand, grad_clip)
    lr_at = learning_rate_schedule(config, steps_per_epoch=8)
    batches = blob_batches()
    rows = []
    for epoch in range(3):
        batches.set_epoch(epoch)
        rows.append(
            train_one_epoch_as_in_notebook_02(
                by_hand, batches, optimizer, nn.CrossEntropyLoss(), lr_at, first_step=epoch * 8
            )
        )
    for name, value in by_fit.state_dict().items():
        assert torch.equal(value, by_hand.state_dict()[name]), name
    assert history.column("train_loss") == [loss for loss, _ in rows]
    assert history.column("train_accuracy") == [accuracy for _, accuracy in rows]


def test_precision_choices():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == Precision(None, False)
    assert resolve_precision(False, cpu).name == "fp32"
    assert resolve_precision("bf16", cpu).dtype is torch.bfloat16
    with pytest.raises(ValueError, match="float16 training on the CPU"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        resolve_precision("half", cpu)


def test_bf16_training_runs_on_cpu():
    seed_everything(0)
    history = fit(TinyNet(), blob_batches(), epochs=2, lr=0.05, progress=False, mixed_precision="bf16")
    assert math.isfinite(history.last["train_loss"])


@pytest.mark.skipif(
    not os.environ.get("COURSE_DATA_DIR"), reason="COURSE_DATA_DIR is not set: no real MNIST here"
)
def test_lenet5_reaches_97_percent_on_real_mnist_in_one_cpu_epoch():
    from course_utils.models import LeNet5

    seed_everything(0)
    data = make_batches(load_dataset("mnist"), batch_size=128, device="cpu", seed=0)
    model = LeNet5()
    history = fit(model, data.train, epochs=1, optimizer="adamw", lr=3e-3, weight_decay=0.01, progress=False)
    result = evaluate(model, data.test)
    print(
        f"LeNet-5, 1 epoch on the CPU: test accuracy {result.accuracy:.2%}, {history.last['seconds']:.1f} s"
    )
    assert result.accuracy >= 0.97
    assert result.num_samples == 10000


def test_train_config_defaults_are_valid():
    TrainConfig().validate()
