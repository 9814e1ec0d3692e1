"""course_utils.training.fit: it trains, it resumes exactly, and it fails clearly."""

import math
import os

import pytest
import torch
from torch import nn

from course_utils.checkpoints import CheckpointError, read_checkpoint
from course_utils.data import Batches, load_dataset, make_batches
from course_utils.environment import seed_everything
from course_utils.evaluation import evaluate
from course_utils.precision import Precision, resolve_precision
from course_utils.training import TrainConfig, TrainingDivergedError, fit, make_config, make_scheduler


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


def test_nan_loss_names_epoch_and_step_and_suggests_lower_lr():
    class Explodes(TinyNet):
        def forward(self, x):
            return super().forward(x) * float("nan")

    with pytest.raises(TrainingDivergedError, match=r"epoch 1, step 1 .*lower learning rate"):
        fit(Explodes(), blob_batches(), epochs=1, lr=0.05, **QUIET)


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


def test_device_mismatch_is_explained(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match="training batches are on cpu.*make_batches"):
        fit(TinyNet(), blob_batches(), epochs=1, device="cuda", **QUIET)


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "multistep", "constant"])
def test_schedules_have_the_documented_shape(schedule):
    model = nn.Linear(2, 2)
    config = make_config(epochs=10, lr=0.1, schedule=schedule, milestones=(5, 8), warmup_epochs=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch=10)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    if schedule == "onecycle":
        assert lrs[0] == pytest.approx(0.1 / 25)
    if schedule == "constant":
        assert lrs == [0.1] * 100
    elif schedule == "multistep":
        assert (
            lrs[49] == pytest.approx(0.1)
            and lrs[50] == pytest.approx(0.01)
            and lrs[80] == pytest.approx(0.001)
        )
    else:
        peak = max(lrs)
        assert peak == pytest.approx(0.1, rel=1e-2)
        assert lrs[0] < 0.02 and lrs[-1] < 0.01
        assert lrs.index(peak) == (25 if schedule == "onecycle" else 9)


def test_onecycle_works_for_runs_of_a_few_steps():
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    scheduler = make_scheduler(optimizer, make_config(epochs=1, schedule="onecycle"), steps_per_epoch=2)
    lrs = []
    for _ in range(2):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] < lrs[1] == pytest.approx(0.1)


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
