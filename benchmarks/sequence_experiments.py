"""Sequence tasks on a CPU: TCN, LSTM, GRU and a plain RNN under one budget rule, over three seeds.

The measurements behind notebook 05 (``notebooks/05_sequences_attention.ipynb``), from its recipe
(``RECIPES["05_sequences_attention"]`` in ``course_utils/settings.py``). One command reproduces them::

    python -m benchmarks.sequence_experiments

It runs, with 2 torch threads in float32 as a notebook does on a 2-core CPU:

* ``adding``, ``copy``, ``mnist``: the quick profile's tasks (``recipe(NOTEBOOK, "quick")[0]["tasks"]``),
  and ``permuted_mnist``: sequential MNIST of the same size with its pixels in a fixed random order
  (measured here only: the notebook's quick profile has no time for it). For each task and model:
  the learning rate with the lowest *validation* loss after the task's optimiser steps, chosen from
  the recipe's ``lr_grid`` with seed 0 (:func:`course_utils.sequences.select_learning_rate`, as the
  notebook's ``full`` profile does), with every rate's validation loss; then seeds 0, 1, 2 at that
  rate, each with its own data and initial weights (``make_sequence_task(settings, mnist, seed=s)``,
  ``torch.manual_seed(s)`` before building), trained afresh as the notebook trains them, and scored
  once on the test split. A chosen rate at an edge of the grid is flagged (``at_grid_edge``): widen
  the grid. Each writes ``results/sequence_<task>.json``; the
  recipe's ``learning_rates`` are the rates chosen here (``tests/test_sequence_records.py``).
* ``quick_timing``, ``smoke_timing``: what the notebook's quick (smoke) profile trains, timed: every
  task x model x seed at the recipe's learning rates, with the load average before and after (other
  jobs slow every timing).

Not run by default (their records were made for notebook 04 and still hold; rerun them by name):

* ``full``: the ``full`` profile's settings, and two longer still (the paper's T = 600 adding
  problem and T = 1000 copy task): a few timed training steps of every model, and the estimated
  time of the whole runs on this CPU.
* ``latency``: one image and a batch of 256 through LeNet-5, the MLP and the row-reading
  ``SequenceRNN`` (RNN, LSTM, GRU), median of repeated forward passes.
* ``gru_vs_lstm``: why the GRU is slower than the LSTM on this CPU although it does fewer
  FLOPs: the operators each one runs (``torch.profiler``), and both timed again with oneDNN off.

Threads: floating-point sums split over another number of threads round differently, and a training
run amplifies that, so the thread count is part of the result: the script uses 2 (``OMP_NUM_THREADS``,
which also stops ``fit`` from adapting it to the load), as a notebook does on an idle 2-core CPU; with
them a run repeats bit for bit (seed 0's run at the chosen rate is the grid's run at that rate).
On a CPU that other jobs share, ``GOMP_SPINCOUNT=10000`` keeps the two threads from spinning against
them (each waiting thread sleeps after a few microseconds; the default spin made a run ten times
slower there), and changes no number; time the quick profile on a quiet CPU::

    GOMP_SPINCOUNT=10000 python -m benchmarks.sequence_experiments --parts adding copy mnist permuted_mnist
    python -m benchmarks.sequence_experiments --parts quick_timing smoke_timing
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")  # before torch starts its threads: see the docstring

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.records import machine_environment  # noqa: E402
from course_utils.data import ImageDataset, load_dataset  # noqa: E402
from course_utils.environment import atomic_write  # noqa: E402
from course_utils.evaluation import count_parameters, evaluate, flops_per_image, measure_latency  # noqa: E402
from course_utils.models import MLP, LeNet5, SequenceRNN  # noqa: E402
from course_utils.sequences import (  # noqa: E402
    SequenceTask,
    gradient_reach,
    make_sequence_task,
    select_learning_rate,
    sequence_model_builders,
)
from course_utils.settings import recipe  # noqa: E402
from course_utils.tables import format_table  # noqa: E402
from course_utils.training import History, TrainConfig, fit, loss_function  # noqa: E402

#: The models compared on every task (sequence_model_builders builds them), in Bai et al.'s order.
SEQUENCE_MODELS = ("TCN", "LSTM", "GRU", "RNN")

RESULTS = Path(__file__).resolve().parent / "results"
NOTEBOOK = "05_sequences_attention"

# --------------------------------------------------------------------------------------
# The budget rule and the tasks, from the recipe
# --------------------------------------------------------------------------------------

QUICK = recipe(NOTEBOOK, "quick")[0]
#: The quick profile's tasks, and permuted sequential MNIST of the same size (measured here only).
TASKS: dict[str, dict[str, Any]] = {
    **QUICK["tasks"],
    "permuted_mnist": {**QUICK["tasks"]["mnist"], "permuted": True},
}
#: Each model's learning rate is chosen from this grid on the validation split, with seed 0.
LR_GRID: tuple[float, ...] = tuple(QUICK["lr_grid"])
#: The TrainConfig fields every model of every task trains with: Adam (AdamW without weight decay) at a
#: constant rate, in float32, the global gradient norm clipped (Pascanu et al., 2013: it bounds the steps
#: of a recurrent network whose gradient explodes, and does nothing for one whose gradient vanishes).
TRAINING: dict[str, Any] = QUICK["training"]
GRAD_CLIP = TRAINING["grad_clip"]
SEEDS = tuple(range(QUICK["seeds"]))  # the notebook's SEED = 0, then 1 and 2
SEED = SEEDS[0]  # the seed of the learning-rate selection

#: The full profile's tasks (for a GPU, or a long CPU run: longer sequences, the paper's 784-step
#: sequential and permuted MNIST), and, for this benchmark only, the paper's T = 600 adding problem
#: and T = 1000 copy task. Bai et al. train far longer still (see the notes).
_FULL_TASKS = recipe(NOTEBOOK, "full")[0]["tasks"]
FULL: dict[str, dict[str, Any]] = {
    "adding_200": _FULL_TASKS["adding"],
    "adding_600": {
        **_FULL_TASKS["adding"],
        "length": 600,
        "train_size": 50_000,
        "epochs": 50,  # 10,000 steps
        "tcn_levels": 8,  # receptive field 1531 >= 600 steps
    },
    "copy_100": _FULL_TASKS["copy"],
    "copy_1000": {
        **_FULL_TASKS["copy"],
        "blank_length": 1000,  # sequences of 1,020 steps
        "epochs": 50,  # 10,000 steps
        "batch_size": 32,
        "tcn_levels": 8,
        "tcn_kernel_size": 6,  # receptive field 2551 >= 1,020 steps
    },
    "mnist_784": _FULL_TASKS["mnist"],
    "permuted_mnist_784": _FULL_TASKS["permuted_mnist"],
}

#: Bai, Kolter & Koltun (2018), Table 1 (T = 600 adding, T = 1000 copy; accuracy in %), with models
#: of about 70,000 parameters (16,000 for the copy task), trained far longer than here.
PAPER_TABLE_1 = {
    # GRU and RNN here as we remember them (5.3e-5, 0.177); the brief quoted 5.3e-4 and
    # 0.167: check the paper before quoting either.
    "adding (T=600), MSE": {"TCN": 5.8e-5, "LSTM": 0.164, "GRU": 5.3e-5, "RNN": 0.177},
    "copy memory (T=1000), loss": {"TCN": 3.5e-5, "LSTM": 0.0204, "GRU": 0.0197, "RNN": 0.0202},
    "sequential MNIST, accuracy %": {"TCN": 99.0, "LSTM": 87.2, "GRU": 96.2, "RNN": 21.5},
    "permuted MNIST, accuracy %": {"TCN": 97.2, "LSTM": 85.7, "GRU": 87.3, "RNN": 25.3},
}


def total_steps(settings: dict[str, Any]) -> int:
    """The optimiser steps of a task entry: ``epochs`` of ``steps_per_epoch``."""
    return settings["epochs"] * settings["steps_per_epoch"]


def describe(task: SequenceTask) -> str:
    """One line about a task: its steps, split sizes, outputs, loss and chance level."""
    chance = f"chance loss {task.chance_loss:.4g}"
    if task.chance_accuracy is not None:
        chance += f", chance accuracy {task.chance_accuracy:.1%}"
    sizes = "/".join(str(split.num_samples) for split in (task.train, task.val, task.test))
    return (
        f"SequenceTask({task.name}: T={task.length} steps of {task.input_size} value(s), {sizes} "
        f"train/val/test sequences, outputs={task.outputs!r}, {task.loss}, {chance})"
    )


def make_task(settings: dict[str, Any], mnist: ImageDataset | None, seed: int) -> SequenceTask:
    """The task of one entry, its data drawn from ``seed`` (MNIST is read only for sequential MNIST)."""
    return make_sequence_task(settings, mnist if settings["task"] == "sequential_mnist" else None, seed=seed)


def builders(task: SequenceTask, settings: dict[str, Any]) -> dict[str, Callable[[], nn.Module]]:
    """The four models of the comparison, with the entry's TCN levels and kernel size."""
    return sequence_model_builders(
        task, tcn_levels=settings["tcn_levels"], tcn_kernel_size=settings["tcn_kernel_size"]
    )


def train_config(settings: dict[str, Any], task: SequenceTask, lr: float) -> TrainConfig:
    """The budget rule as a TrainConfig: the entry's epochs, the shared training settings, on the CPU."""
    return TrainConfig(
        epochs=settings["epochs"], lr=lr, loss=task.loss, **TRAINING, device="cpu", progress=False
    )


def scored_row(model: nn.Module, task: SequenceTask, history: History, seed: int) -> dict[str, Any]:
    """One trained model of one seed: its test score (the test split, once) against chance, its time and
    its validation curve (after each epoch; the copy task's accuracy there counts every step).

    On the adding problem also how far back its gradient reaches: ``||dL/dx_t||`` for each step of the
    first test batch (:func:`course_utils.sequences.gradient_reach`), and the share of it that falls on
    the first half of the sequence.
    """
    test = evaluate(model, task.test, loss=task.loss, mixed_precision=TRAINING["mixed_precision"])
    row = {
        "seed": seed,
        "val_loss": history.last["val_loss"],
        "test_loss": test.loss,
        "loss_over_chance": test.loss / task.chance_loss,
        "test_accuracy": task.accuracy(test),  # the recalled digits only, for the copy task; None: regression
        "seconds": history.total_seconds,
        "val_loss_curve": history.column("val_loss"),
    }
    if task.name == "adding":
        reach = gradient_reach(model, task, *next(iter(task.test)))
        row["gradient_reach"] = reach.tolist()
        row["first_half_share"] = float(reach[: task.length // 2].sum() / reach.sum())
    return row


def print_seed_row(task: SequenceTask, model_name: str, lr: float, row: dict[str, Any]) -> None:
    accuracy = "" if row["test_accuracy"] is None else f", test accuracy {row['test_accuracy']:.1%}"
    print(
        f"  {task.name} seed {row['seed']} {model_name} (lr {lr:g}): test loss {row['test_loss']:.4g} "
        f"({row['loss_over_chance']:.3f} of chance){accuracy}, {row['seconds']:.1f} s",
        flush=True,
    )


# --------------------------------------------------------------------------------------
# Each task: the learning rate of each model on the grid (seed 0), then three seeds at it
# --------------------------------------------------------------------------------------


def run_task(name: str, mnist: ImageDataset | None, models: tuple[str, ...]) -> dict[str, Any]:
    settings = TASKS[name]
    tasks = {seed: make_task(settings, mnist, seed) for seed in SEEDS}
    print(f"\n=== {name}: {describe(tasks[SEED])}, {total_steps(settings)} steps", flush=True)
    rows = []
    for model_name in models:
        build = builders(tasks[SEED], settings)[model_name]
        start = time.perf_counter()
        config = train_config(settings, tasks[SEED], LR_GRID[0])
        _, _, val_losses = select_learning_rate(build, tasks[SEED], LR_GRID, config, SEED)
        grid_seconds = time.perf_counter() - start
        lr = min(val_losses, key=val_losses.__getitem__)  # the first of equal losses, as select_learning_rate
        edge = lr in (LR_GRID[0], LR_GRID[-1])
        print(
            f"{model_name}: {count_parameters(build()):,} parameters; validation loss per rate "
            f"{', '.join(f'{rate:g}: {loss:.4g}' for rate, loss in val_losses.items())} -> lr {lr:g}"
            f"{'  AT THE EDGE OF THE GRID: widen it' if edge else ''} ({grid_seconds:.0f} s for the grid)",
            flush=True,
        )
        seeds = []
        for seed in SEEDS:  # seed 0 too: afresh, as the notebook trains it, not the grid's run
            build = builders(tasks[seed], settings)[model_name]  # builds models to count their parameters
            torch.manual_seed(seed)  # so the seed comes after, just before the model is built
            model = build()
            history = fit(model, tasks[seed].train, tasks[seed].val, train_config(settings, tasks[seed], lr))
            seeds.append(scored_row(model, tasks[seed], history, seed))
            print_seed_row(tasks[seed], model_name, lr, seeds[-1])
        rows.append(
            {
                "model": model_name,
                "parameters": count_parameters(model),
                "receptive_field": getattr(model, "receptive_field", None),
                "lr_chosen": lr,
                "at_grid_edge": edge,
                "val_loss_per_lr": {f"{rate:g}": loss for rate, loss in val_losses.items()},
                "grid_seconds": grid_seconds,
                "seeds": seeds,
            }
        )
    print_task_table(tasks[SEED], rows)
    return {
        "task_name": name,
        "settings": settings,
        "steps": total_steps(settings),
        "task": describe(tasks[SEED]),
        "chance_loss": tasks[SEED].chance_loss,
        "chance_accuracy": tasks[SEED].chance_accuracy,
        "budget_rule": {
            "training": TRAINING,
            "lr_grid": list(LR_GRID),
            "selection": f"lowest validation loss after {total_steps(settings)} steps, seed {SEED}; "
            "the test split scored once per seed, at the chosen rate only",
            "seeds": list(SEEDS),
        },
        "rows": rows,
        "paper_table_1": PAPER_TABLE_1,
    }


def print_task_table(task: SequenceTask, rows: list[dict[str, Any]]) -> None:
    """Per model: the chosen rate and each seed's test loss over chance (and accuracy)."""

    def scores(row: dict[str, Any]) -> str:
        return "  ".join(
            f"{s['loss_over_chance']:.3f}"
            + ("" if s["test_accuracy"] is None else f" ({s['test_accuracy']:.1%})")
            for s in row["seeds"]
        )

    table = [(r["model"], r["parameters"], r["lr_chosen"], scores(r)) for r in rows]
    headers = ("model", "params", "lr", f"test loss / chance ({task.chance_loss:.4g}), per seed")
    print(format_table(table, headers, formats=(None, ",d", "g", None)))


# --------------------------------------------------------------------------------------
# The notebook's quick profile, timed
# --------------------------------------------------------------------------------------


def profile_timing(profile: str, mnist: ImageDataset, models: tuple[str, ...]) -> dict[str, Any]:
    """Train what a profile of the notebook trains (every task x model x seed at its rates), timed.

    ``seconds`` is the training time ``fit`` measures (validation included); the data, models and test
    scores around it cost a few seconds more (``wall_seconds``).
    """
    values = recipe(NOTEBOOK, profile)[0]
    load_before, start, rows = os.getloadavg(), time.perf_counter(), []
    for name, settings in values["tasks"].items():
        for seed in range(values["seeds"]):
            task = make_task(settings, mnist, seed)
            build = builders(task, settings)  # first: it builds models to count their parameters
            for model_name in models:
                lr = values["learning_rates"][name][model_name]
                torch.manual_seed(seed)
                model = build[model_name]()
                history = fit(model, task.train, task.val, train_config(settings, task, lr))
                rows.append(
                    {"task": name, "model": model_name, "lr": lr, **scored_row(model, task, history, seed)}
                )
                print_seed_row(task, model_name, lr, rows[-1])
    wall = time.perf_counter() - start
    training = sum(row["seconds"] for row in rows)
    per_task = {name: sum(r["seconds"] for r in rows if r["task"] == name) for name in values["tasks"]}
    print(
        f"{profile} profile, {len(rows)} trainings: {training:.0f} s of training ({wall:.0f} s in all); "
        f"per task {', '.join(f'{n} {s:.0f} s' for n, s in per_task.items())}; load average "
        f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after",
        flush=True,
    )
    return {
        "profile": profile,
        "training_seconds": training,
        "training_seconds_per_task": per_task,
        "wall_seconds": wall,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rows": rows,
    }


# --------------------------------------------------------------------------------------
# Full profile: settings, and the time they would take, from a few timed steps
# --------------------------------------------------------------------------------------


def seconds_per_step(model: nn.Module, task: SequenceTask, steps: int = 5) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    task_loss = loss_function(task.loss)
    x, y = next(iter(task.train))
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        loss = task_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        if step > 0:  # the first step allocates memory and picks kernels
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def estimate_full(mnist: ImageDataset) -> dict:
    rows = []
    for name, settings in FULL.items():
        task = make_task(settings, mnist, SEED)
        print(f"\n=== full: {describe(task)}", flush=True)
        for model_name, build in builders(task, settings).items():
            torch.manual_seed(SEED)
            model = build()
            per_step = seconds_per_step(model, task)
            estimate = per_step * total_steps(settings)
            rows.append(
                {
                    "setting": name,
                    "task": task.name,
                    "T": task.length,
                    "model": model_name,
                    "parameters": count_parameters(model),
                    "receptive_field": getattr(model, "receptive_field", None),
                    "steps": total_steps(settings),
                    "batch_size": settings["batch_size"],
                    "seconds_per_step_cpu": per_step,
                    "estimated_hours_cpu_one_lr": estimate / 3600,
                    "estimated_hours_cpu_grid": estimate * len(LR_GRID) / 3600,
                }
            )
            print(
                f"{model_name}: {rows[-1]['parameters']:,} parameters, {per_step * 1e3:.0f} ms per step -> "
                f"{estimate / 3600:.2f} h for {total_steps(settings)} steps at one learning rate",
                flush=True,
            )
    return {
        "settings": FULL,
        "rows": rows,
        "note": "not trained to the end on this CPU: seconds per step timed over a few steps of each "
        "model, multiplied by the steps; a GPU with cuDNN runs the recurrent layers far faster",
    }


# --------------------------------------------------------------------------------------
# Latency on MNIST rows
# --------------------------------------------------------------------------------------

LATENCY_MODELS: dict[str, Callable[[], nn.Module]] = {
    "LeNet-5": LeNet5,
    "MLP": MLP,
    "row RNN": lambda: SequenceRNN(hidden_size=128, cell="rnn"),
    "row LSTM": lambda: SequenceRNN(hidden_size=128, cell="lstm"),
    "row GRU": lambda: SequenceRNN(hidden_size=128, cell="gru"),
}


def measure_latencies(repeats: int) -> dict:
    torch.manual_seed(SEED)
    rows = []
    for name, build in LATENCY_MODELS.items():
        model = build().eval()
        row = {
            "model": name,
            "parameters": count_parameters(model),
            "flops": flops_per_image(model, (1, 28, 28)),
        }
        for batch in (1, 256):
            latency = measure_latency(model, torch.randn(batch, 1, 28, 28), warmup=10, repeats=repeats)
            row[f"latency_{batch}_ms"] = latency.median * 1e3
            row[f"latency_{batch}_min_ms"] = latency.low * 1e3
            row[f"latency_{batch}_max_ms"] = latency.high * 1e3
        rows.append(row)
    table = [
        (
            r["model"],
            r["parameters"],
            r["flops"],
            r["latency_1_ms"],
            r["latency_256_ms"],
            r["latency_256_ms"] / 256,
        )
        for r in rows
    ]
    headers = ("model", "params", "FLOPs/image", "1 image (ms)", "256 images (ms)", "ms/image at 256")
    print(format_table(table, headers, formats=(None, ",d", ",d", ".3f", ".2f", ".4f")))
    return {"repeats": repeats, "hidden_size": 128, "rows": rows}


# --------------------------------------------------------------------------------------
# Why the GRU is slower than the LSTM on this CPU
# --------------------------------------------------------------------------------------


def top_operators(model: nn.Module, x: torch.Tensor, backward: bool, passes: int = 5, limit: int = 8) -> dict:
    """The ATen operators with the most self CPU time in a forward (and backward) pass.

    Averaged over ``passes`` profiled passes. Returns ``{"operator_calls_per_pass": ..., "top":
    [...]}``: how many ATen operators one pass calls (each call costs some microseconds of
    dispatch, whatever its size), and the operators that take the most time, with their calls
    and milliseconds per pass.
    """
    from torch.profiler import ProfilerActivity, profile

    def run() -> None:
        if backward:
            F.cross_entropy(model(x), torch.zeros(len(x), dtype=torch.int64)).backward()
        else:
            with torch.no_grad():
                model(x)

    for _ in range(3):
        run()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(passes):
            run()
    events = [e for e in profiler.key_averages() if e.key.startswith("aten::")]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return {
        "operator_calls_per_pass": sum(e.count for e in events) / passes,
        "top": [
            {
                "operator": e.key,
                "calls_per_pass": e.count / passes,
                "self_ms_per_pass": e.self_cpu_time_total / 1e3 / passes,
                "share": e.self_cpu_time_total / total,
            }
            for e in events[:limit]
        ],
    }


def training_step_ms(model: nn.Module, x: torch.Tensor, repeats: int) -> float:
    y = torch.zeros(len(x), dtype=torch.int64)
    times = []
    for step in range(repeats + 3):
        start = time.perf_counter()
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        if step >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def gru_vs_lstm(repeats: int) -> dict:
    torch.manual_seed(SEED)
    rows, operators = [], {}
    for cell in ("lstm", "gru", "rnn"):
        model = SequenceRNN(hidden_size=128, cell=cell)
        row = {
            "cell": cell,
            "parameters": count_parameters(model),
            "flops": flops_per_image(model, (1, 28, 28)),
        }
        for onednn in (True, False):
            label = "onednn_on" if onednn else "onednn_off"
            with torch.backends.mkldnn.flags(enabled=onednn):
                model.eval()
                for batch in (1, 256):
                    x = torch.randn(batch, 1, 28, 28)
                    latency = measure_latency(model, x, warmup=10, repeats=repeats)
                    row[f"latency_{batch}_ms_{label}"] = latency.median * 1e3
                model.train()
                row[f"train_step_128_ms_{label}"] = training_step_ms(
                    model, torch.randn(128, 1, 28, 28), repeats
                )
                for batch in (1, 256):
                    operators[f"{cell}_{label}_forward_{batch}"] = top_operators(
                        model.eval(), torch.randn(batch, 1, 28, 28), backward=False
                    )
                operators[f"{cell}_{label}_train_128"] = top_operators(
                    model.train(), torch.randn(128, 1, 28, 28), backward=True
                )
                for key in ("forward_1", "forward_256", "train_128"):
                    calls = operators[f"{cell}_{label}_{key}"]["operator_calls_per_pass"]
                    row[f"operator_calls_{key}_{label}"] = calls
        rows.append(row)
    table = [
        (
            r["cell"],
            r["parameters"],
            r["flops"],
            r["latency_1_ms_onednn_on"],
            r["latency_1_ms_onednn_off"],
            r["latency_256_ms_onednn_on"],
            r["latency_256_ms_onednn_off"],
            r["train_step_128_ms_onednn_on"],
            r["train_step_128_ms_onednn_off"],
        )
        for r in rows
    ]
    headers = (
        "cell",
        "params",
        "FLOPs/image",
        "1 img on",
        "1 img off",
        "256 on",
        "256 off",
        "train 128 on",
        "train 128 off",
    )
    print("milliseconds, oneDNN on / off (torch.backends.mkldnn.flags):")
    print(format_table(table, headers, formats=(None, ",d", ",d", ".3f", ".3f", ".2f", ".2f", ".1f", ".1f")))
    print("\nATen operator calls per pass, oneDNN on / off:")
    keys = [(key, label) for key in ("forward_1", "train_128") for label in ("onednn_on", "onednn_off")]
    calls = [(r["cell"], *(r[f"operator_calls_{key}_{label}"] for key, label in keys)) for r in rows]
    headers = ("cell", "forward on", "forward off", "train on", "train off")
    print(format_table(calls, headers, formats=(None, ".0f", ".0f", ".0f", ".0f")))
    for cell in ("lstm", "gru"):
        for key in ("forward_1", "train_128"):
            name = f"{cell}_onednn_on_{key}"
            print(f"\n{name}: the operators with the most self CPU time, per pass")
            top = [
                (o["operator"], o["calls_per_pass"], o["self_ms_per_pass"], o["share"])
                for o in operators[name]["top"]
            ]
            print(
                format_table(
                    top, ("operator", "calls", "self ms", "share"), formats=(None, ".0f", ".3f", ".1%")
                )
            )
    return {
        "hidden_size": 128,
        "sequence": "rows (28 steps of 28 values)",
        "rows": rows,
        "operators": operators,
    }


# --------------------------------------------------------------------------------------


def environment() -> dict:
    return machine_environment(
        onednn=torch.backends.mkldnn.is_available(), GOMP_SPINCOUNT=os.environ.get("GOMP_SPINCOUNT")
    )


def write(part: str, result: dict, out: Path, command: str) -> None:
    result = {
        "part": part,
        "notebook": NOTEBOOK,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": command,
        "environment": environment(),
        **result,
    }
    path = atomic_write(out / f"sequence_{part}.json", json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = [*TASKS, "quick_timing", "smoke_timing"]
    parser.add_argument(
        "--parts", nargs="+", choices=[*default, "full", "latency", "gru_vs_lstm"], default=default
    )
    parser.add_argument("--models", nargs="+", choices=SEQUENCE_MODELS, default=list(SEQUENCE_MODELS))
    parser.add_argument("--data-dir", default=None, help="folder with mnist.npz (default: $COURSE_DATA_DIR)")
    parser.add_argument("--repeats", type=int, default=50, help="timed repeats per latency")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    command = shlex.join(["python", "-m", "benchmarks.sequence_experiments", *sys.argv[1:]])
    print(f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()}", flush=True)
    mnist = load_dataset("mnist", args.data_dir)
    for part in args.parts:
        start = time.perf_counter()
        if part in TASKS:
            result = run_task(part, mnist, tuple(args.models))
        elif part.endswith("_timing"):
            result = profile_timing(part.removesuffix("_timing"), mnist, tuple(args.models))
        elif part == "full":
            result = estimate_full(mnist)
        elif part == "latency":
            result = measure_latencies(args.repeats)
        else:
            result = gru_vs_lstm(args.repeats)
        result["part_seconds"] = time.perf_counter() - start
        write(part, result, args.out, command)


if __name__ == "__main__":
    main()
