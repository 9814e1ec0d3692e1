"""Each model's peak learning rate for notebook 04, chosen on the validation split.

Notebook 04 compares a CNN, an MLP and recurrent networks under one budget rule: the same
data, epochs, optimiser, schedule, clipping and precision for every model, and only the peak
learning rate each model's own, "chosen on the validation split (never the test set)". This
script is that choice, and its JSON record is what the recipe's ``learning_rates`` and
``cifar_learning_rates`` rest on.

What it measures, with the settings of ``course_utils.settings.RECIPES["04_cnn_vs_rnn"]`` in the
``quick`` profile (read from the recipe here, never copied):

* MNIST: the MLP, LeNet-5 and the row-reading RNN, LSTM and GRU (``SequenceRNN``, 28 steps
  of 28 values), batches from ``run.batches(mnist)``, ``run.epochs`` epochs each.
* CIFAR-10: the row LSTM (32 steps of 96 values) and ResNet-20 (with its own optimiser,
  ``run.resnet_training``), batches of the recipe's ``cifar_*`` sizes, ``run.cifar_epochs`` epochs each.

Each model is trained once per learning rate of a grid that depends on its optimiser
(:data:`GRIDS`: AdamW or SGD), starting every time from the same initial weights
(``seed_everything(run.seed)`` before building it). The rate with the highest final
validation accuracy wins (a tie goes to the smaller rate). The test split is never
evaluated. The record, ``benchmarks/results/learning_rates.json``, holds the environment,
the settings, the grids, one row per (model, learning rate) and the chosen rates; the
script ends with the recipe lines to paste. ``tests/test_learning_rates.py`` checks that
the recipe still has the settings recorded here and uses the rates chosen here.

Usage (about 6 to 10 minutes on a 2-core CPU; a notebook run has 2 threads)::

    OMP_NUM_THREADS=2 COURSE_DATA_DIR=.data python -m benchmarks.learning_rates
    OMP_NUM_THREADS=2 python -m benchmarks.learning_rates --profile smoke --out /tmp/lr_smoke.json

``--only mnist`` or ``--only cifar`` trains one group (for debugging: the record is then
incomplete and the test asks for a full run).

The seed spread (``--seeds 0 1 2``): how far the notebook's numbers move from one seed to the
next, at the same quick settings and each model's recipe learning rate (chosen above; nothing
is chosen here, so the test split may be scored). The notebook trains seed 0 only: it may claim
that one model ranks above another only where the gap is larger than their spread over seeds.
With each seed (it draws the split, the batch order, the initial weights and the permutation,
as ``configure(..., seed=s)`` and ``seed_everything(s)`` do in the notebook), it records the
test and validation accuracy, seconds and images per second of

* MNIST at equal epochs: the five models above;
* MNIST at equal time: each model in the whole epochs, at its own pace, that fit in LeNet-5's
  training time, rounded down (at least 1);
* permuted MNIST (one fixed permutation drawn from the seed): the MLP, LeNet-5 and row LSTM;
* CIFAR-10 at equal epochs (the row LSTM, ResNet-20) and at equal time (the row LSTM in
  ResNet-20's time, rounded down in the same way).

The record, ``benchmarks/results/image_seeds.json``, holds every run (with the load average when
it finished: the load slows the timings, never the accuracies), each model's mean, min, max
and spread per view, and every pairwise ranking with whether it holds beyond the spread::

    OMP_NUM_THREADS=1 python -m benchmarks.learning_rates --seeds 0 1 2  # about 7 minutes a seed

One thread where another job keeps a CPU busy (as ``share_cpu_threads`` would choose in the
notebook): two threads on a shared 2-core CPU trained 14 to 50 times slower. The equal-time
views depend on the load (a model's pace sets its epochs); the equal-epoch ones do not.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.records import machine_environment  # noqa: E402
from course_utils.data import BatchSplits, ImageDataset, load_dataset, permute_pixels  # noqa: E402
from course_utils.environment import atomic_write, choose_precision, display_path, seed_everything  # noqa: E402
from course_utils.evaluation import evaluate  # noqa: E402
from course_utils.models import MLP, LeNet5, SequenceRNN, resnet20  # noqa: E402
from course_utils.settings import RunSettings, configure  # noqa: E402
from course_utils.tables import format_table  # noqa: E402
from course_utils.training import TrainConfig, TrainingDivergedError, fit  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NOTEBOOK = "04_cnn_vs_rnn"

#: The peak learning rates tried, by optimiser: factors of 2 around the usual values (AdamW
#: near 3e-3 with a one-cycle schedule; SGD with momentum near 0.1 for a ResNet).
GRIDS: dict[str, tuple[float, ...]] = {
    "adamw": (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2),
    "sgd": (0.05, 0.1, 0.2, 0.4),
}

#: Settings of make_batches that shape the training and validation data (test_subset does not).
BATCH_SETTINGS = ("batch_size", "val_size", "train_subset", "drop_last")
#: TrainConfig fields that say how or where a run is done, not what it learns.
BOOKKEEPING_FIELDS = ("device", "progress", "live_plot", "log_every", "name", "checkpoint_dir", "resume")


@dataclass(frozen=True)
class Model:
    """One model of notebook 04 whose learning rate is chosen here.

    Attributes:
        name: as the record names it (``"row LSTM"``, ``"row LSTM (CIFAR-10)"``).
        dataset: ``"mnist"`` or ``"cifar10"``; CIFAR-10 models read the recipe's ``cifar_*`` batch
            sizes and ``cifar_epochs`` (the same epochs for every model of a dataset: the budget rule).
        rates: the recipe table of its peak learning rate, ``"learning_rates"`` or
            ``"cifar_learning_rates"``; key: its name in that table (``"row LSTM"``).
        build: makes the model from the run's settings (hidden sizes).
        training: the recipe setting with its own optimiser settings (``"resnet_training"``), or None.
    """

    name: str
    dataset: str
    rates: str
    key: str
    build: Callable[[RunSettings], nn.Module]
    training: str | None = None

    @property
    def recipe_name(self) -> str:
        """Where the recipe holds this model's peak learning rate: ``learning_rates["MLP"]``."""
        return f'{self.rates}["{self.key}"]'


MODELS: tuple[Model, ...] = (
    Model("MLP", "mnist", "learning_rates", "MLP", lambda run: MLP()),
    Model("LeNet-5", "mnist", "learning_rates", "LeNet-5", lambda run: LeNet5()),
    Model(
        "row RNN",
        "mnist",
        "learning_rates",
        "row RNN",
        lambda run: SequenceRNN(input_size=28, hidden_size=run.hidden_size, cell="rnn"),
    ),
    Model(
        "row LSTM",
        "mnist",
        "learning_rates",
        "row LSTM",
        lambda run: SequenceRNN(input_size=28, hidden_size=run.hidden_size, cell="lstm"),
    ),
    Model(
        "row GRU",
        "mnist",
        "learning_rates",
        "row GRU",
        lambda run: SequenceRNN(input_size=28, hidden_size=run.hidden_size, cell="gru"),
    ),
    Model(
        "row LSTM (CIFAR-10)",
        "cifar10",
        "cifar_learning_rates",
        "row LSTM",
        # 32 steps of 3 * 32 = 96 values: a row of all three channels per step.
        lambda run: SequenceRNN(input_size=96, hidden_size=run.cifar_hidden_size, cell="lstm"),
    ),
    Model(
        "ResNet-20", "cifar10", "cifar_learning_rates", "ResNet-20", lambda run: resnet20(), "resnet_training"
    ),
)
GROUPS = {"mnist": ("mnist",), "cifar": ("cifar10",), "all": ("mnist", "cifar10")}


def settings_that_matter(values: dict[str, Any]) -> dict[str, Any]:
    """The recipe settings that can change which learning rate wins, as JSON values.

    Every setting the runs here read: the training settings (``TrainConfig`` fields, plain or
    ``cifar_``), the batch settings of each dataset, the hidden sizes and the epochs, and a
    model's own optimiser settings as ``resnet_<field>`` (from ``resnet_training``); the
    learning rates themselves are left out (they are what is chosen).

    Args:
        values: one profile's settings, ``recipe("04_cnn_vs_rnn", profile)[0]``.

    Returns:
        ``{setting: value}`` in the recipe's order, tuples as lists (as JSON stores them).
    """
    fields = set(TrainConfig.__dataclass_fields__) - {"lr", *BOOKKEEPING_FIELDS}
    names = {f"{p}{n}" for p in ("", "cifar_") for n in (*fields, *BATCH_SETTINGS, "hidden_size")}
    chosen = {name: value for name, value in values.items() if name in names}
    chosen.update({f"resnet_{name}": value for name, value in values["resnet_training"].items()})
    return json.loads(json.dumps(chosen))


def batches_of(run: RunSettings, images: ImageDataset) -> BatchSplits:
    """The batches notebook 04 makes of ``images``: with the recipe's ``cifar_*`` sizes for CIFAR-10."""
    own = "cifar_" if images.name == "cifar10" else ""  # CIFAR-10's batch settings are cifar_batch_size, ...
    sizes = ("batch_size", "val_size", "train_subset", "test_subset")
    return run.batches(images, **{name: getattr(run, own + name) for name in sizes})


def train_config(run: RunSettings, model: Model, lr: float) -> TrainConfig:
    """The configuration ``model`` trains with at peak learning rate ``lr``, as the notebook builds it."""
    epochs = run.cifar_epochs if model.dataset == "cifar10" else run.epochs
    own = getattr(run, model.training) if model.training else {}  # ResNet-20 keeps notebook 03's optimiser
    return run.train_config(**own, epochs=epochs, lr=lr, progress=False, name=f"{model.name}, lr {lr:g}")


def what_config_sets(config: TrainConfig) -> dict[str, Any]:
    """The fields of ``config`` that shape the training, as JSON values (no lr, no bookkeeping)."""
    fields = {
        name: value
        for name, value in dataclasses.asdict(config).items()
        if name not in ("lr", *BOOKKEEPING_FIELDS)
    }
    return json.loads(json.dumps(fields))


def grid_for(run: RunSettings, model: Model) -> tuple[float, ...]:
    """The learning rates tried for ``model``: the grid of the optimiser its recipe gives it."""
    optimizer = train_config(run, model, 1.0).optimizer
    if optimizer not in GRIDS:
        raise ValueError(
            f"{model.name} trains with optimizer {optimizer!r}, which has no learning-rate grid; "
            f"add one to GRIDS in {Path(__file__).name} (grids exist for {', '.join(GRIDS)})"
        )
    return GRIDS[optimizer]


def try_learning_rate(run: RunSettings, model: Model, batches: BatchSplits, lr: float) -> dict[str, Any]:
    """Train ``model`` from its seeded initial weights at peak rate ``lr``; score it on the validation split.

    Returns:
        One row of the record: the final validation accuracy and loss, the validation
        accuracy after each epoch, the final training loss, and the seconds ``fit`` took
        (training and the validation after each epoch). A run whose loss became NaN or
        infinite has ``None`` for its scores and the reason in ``diverged``.
    """
    seed_everything(run.seed)  # the same initial weights for every learning rate
    network = model.build(run)
    config = train_config(run, model, lr)
    row: dict[str, Any] = {
        "model": model.name,
        "recipe_name": model.recipe_name,
        "lr": lr,
        "epochs": config.epochs,
        "diverged": None,
    }
    start = time.perf_counter()
    try:
        history = fit(network, batches.train, batches.val, config)
    except TrainingDivergedError as error:
        row.update(val_accuracy=None, val_loss=None, val_accuracy_per_epoch=None, train_loss=None)
        row["diverged"] = str(error)
    else:
        row.update(
            val_accuracy=history.last["val_accuracy"],
            val_loss=history.last["val_loss"],
            val_accuracy_per_epoch=history.column("val_accuracy"),
            train_loss=history.last["train_loss"],
        )
    row["seconds"] = time.perf_counter() - start
    return row


def best_learning_rate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row with the highest final validation accuracy (a tie: the smaller learning rate).

    Raises:
        ValueError: every run diverged, so there is nothing to choose from.
    """
    finished = [row for row in rows if row["val_accuracy"] is not None]
    if not finished:
        raise ValueError(f"{rows[0]['model']}: every learning rate diverged; try a grid of smaller rates")
    return max(finished, key=lambda row: (row["val_accuracy"], -row["lr"]))


def recipe_literal(lr: float) -> str:
    """``lr`` as the recipe writes it: ``4e-3`` below 0.01, else ``0.1``."""
    if lr >= 0.01:
        return f"{lr:g}"
    mantissa, exponent = f"{lr:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def environment() -> dict[str, Any]:
    return machine_environment(precision=choose_precision("auto", torch.device("cpu")).name)


def print_rows(rows: list[dict[str, Any]], chosen: dict[str, dict[str, Any]]) -> None:
    table = []
    for row in rows:
        marks = []
        if chosen.get(row["model"], {}).get("lr") == row["lr"]:
            marks.append("chosen")
        if chosen.get(row["model"], {}).get("recipe_lr_when_run") == row["lr"]:
            marks.append("recipe")
        accuracy = math.nan if row["val_accuracy"] is None else row["val_accuracy"]
        loss = math.nan if row["val_loss"] is None else row["val_loss"]
        table.append((row["model"], row["lr"], accuracy, loss, row["seconds"], ", ".join(marks)))
    headers = ("model", "peak lr", "val accuracy", "val loss", "seconds", "")
    print(format_table(table, headers, formats=(None, "g", ".2%", ".4f", ".1f", None)))


def choose_learning_rates(args: argparse.Namespace) -> None:
    """Try every rate of each model's grid, choose the best on the validation split, write the record."""
    run = configure(NOTEBOOK, args.profile, device="cpu", data_dir=args.data_dir)
    models = [m for m in MODELS if m.dataset in GROUPS[args.only]]
    grids = {m.name: grid_for(run, m) for m in models}  # every grid checked before any training
    rows: list[dict[str, Any]] = []
    chosen: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    for dataset in GROUPS[args.only]:
        batches = batches_of(run, load_dataset(dataset, run.data_dir))
        group = [m for m in models if m.dataset == dataset]
        print(
            f"=== {dataset}: {batches.train.num_samples:,} training and {batches.val.num_samples:,} "
            f"validation images, batch {batches.train.batch_size}",
            flush=True,
        )
        for model in group:
            model_rows = []
            for lr in grids[model.name]:
                row = try_learning_rate(run, model, batches, lr)
                model_rows.append(row)
                outcome = f"diverged ({row['diverged']})" if row["diverged"] else f"{row['val_accuracy']:.2%}"
                print(
                    f"{model.name}, lr {lr:g}: validation accuracy {outcome}, {row['seconds']:.1f} s",
                    flush=True,
                )
            best = best_learning_rate(model_rows)
            recipe_lr = getattr(run, model.rates)[model.key]
            chosen[model.name] = {
                "recipe_name": model.recipe_name,
                "lr": best["lr"],
                "val_accuracy": best["val_accuracy"],
                "recipe_lr_when_run": recipe_lr,
                "recipe_agrees": recipe_lr == best["lr"],
                # The best rate at an end of the grid may not be the best rate: widen the grid.
                "at_grid_edge": best["lr"] in (min(grids[model.name]), max(grids[model.name])),
            }
            rows.extend(model_rows)
    total = time.perf_counter() - start

    record = {
        "notebook": NOTEBOOK,
        "profile": run.profile,
        "only": args.only,
        "environment": environment(),
        "seed": run.seed,
        "selection": "highest final validation accuracy (ties: the smaller rate); test split never used",
        "settings": settings_that_matter(run.values),
        "train_configs": {m.name: what_config_sets(train_config(run, m, grids[m.name][0])) for m in models},
        "grids": grids,
        "rows": rows,
        "chosen": chosen,
        "total_seconds": total,
    }
    path = atomic_write(args.out, json.dumps(record, indent=1) + "\n")

    print()
    print_rows(rows, chosen)
    summary = [
        (name, c["recipe_name"], c["recipe_lr_when_run"], c["lr"], c["val_accuracy"], c["recipe_agrees"])
        for name, c in chosen.items()
    ]
    headers = ("model", "setting", "recipe lr", "chosen lr", "val accuracy", "same")
    print()
    print(format_table(summary, headers, formats=(None, None, "g", "g", ".2%", None)))
    print(f"\n{len(rows)} runs in {total:.0f} s; wrote {display_path(path)}")
    for name, c in chosen.items():
        if c["at_grid_edge"]:
            print(f"note: {name}'s best rate {c['lr']:g} is at an end of its grid; a wider one may do better")
    print(f"\nThe recipe lines ({NOTEBOOK}, base):")
    for table in dict.fromkeys(m.rates for m in models):
        rates = ", ".join(
            f'"{m.key}": {recipe_literal(chosen[m.name]["lr"])}' for m in models if m.rates == table
        )
        print(f'    "{table}": {{{rates}}},')


# --- The seed spread: how far notebook 04's numbers move from one seed to the next ---------------

#: The views of the seed spread, in the order they are measured and printed.
VIEWS = (
    "MNIST, equal epochs",
    "MNIST, equal time",
    "permuted MNIST",
    "CIFAR-10, equal epochs",
    "CIFAR-10, equal time",
)
#: The models notebook 04 trains on permuted pixels.
PERMUTED_MODELS = ("MLP", "LeNet-5", "row LSTM")
#: (view, the view it changes): one model's accuracy in both, compared as two models are.
CHANGES = (
    ("MNIST, equal time", "MNIST, equal epochs"),
    ("permuted MNIST", "MNIST, equal epochs"),
    ("CIFAR-10, equal time", "CIFAR-10, equal epochs"),
)
#: The recipe settings the seed spread reads besides those that shape the training.
RATE_SETTINGS = ("learning_rates", "cifar_learning_rates", "equal_time_reference")
#: What the summary gives the mean, min, max and spread of, for each model and view.
MEASURES = ("test_accuracy", "val_accuracy", "epochs", "seconds", "images_per_second")


def train_and_test(
    run: RunSettings,
    model: Model,
    batches: BatchSplits,
    *,
    epochs: int | None = None,
    prepare: Callable[[nn.Module], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` as notebook 04 does, at its recipe learning rate, and score it on the test split.

    The seed is ``run.seed``: it made ``batches`` (the split and the order), and ``seed_everything``
    draws the initial weights from it here, as the notebook does before building each model.

    Args:
        epochs: how many (None: the recipe's, ``epochs`` or ``cifar_epochs``).
        prepare: changes the initial weights before training (the MLP on permuted pixels starts
            from its weights rearranged by the same permutation, as in the notebook).

    Returns:
        One row: the epochs; ``seconds``, ``fit``'s wall time with the validation after each epoch
        (what the notebook's equal-time budget counts); the median ``images_per_second`` of the
        epochs; the final validation and the test accuracy; the load average when it finished
        (other jobs on the CPU slow the timings, not the accuracies).
    """
    seed_everything(run.seed)
    network = model.build(run)
    if prepare is not None:
        prepare(network)
    lr = getattr(run, model.rates)[model.key]
    config = train_config(run, model, lr)
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    history = fit(network, batches.train, batches.val, config)
    return {
        "model": model.key,
        "lr": lr,
        "epochs": config.epochs,
        "seconds": history.total_seconds,
        "images_per_second": statistics.median(history.column("images_per_second")),
        "val_accuracy": history.last["val_accuracy"],
        "test_accuracy": evaluate(network, batches.test, mixed_precision=config.mixed_precision).accuracy,
        "load_average": list(os.getloadavg()),
    }


def epochs_within(budget: float, row: dict[str, Any]) -> int:
    """The whole epochs at the pace of ``row`` (its seconds per epoch) that fit in ``budget`` seconds,
    at least 1: rounded down, so that a model does not train longer than the reference did (unless
    the load slows it down meanwhile)."""
    return max(1, math.floor(budget / row["seconds"] * row["epochs"]))


def measure_one_seed(run: RunSettings, groups: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every run of the seed spread with ``run.seed``: one row per (view, model), as notebook 04 trains.

    A model whose equal-time epochs equal its equal-epochs ones is not trained again (the notebook
    reuses that run too): its equal-time row is a copy, marked ``reused``.
    """
    rows: list[dict[str, Any]] = []

    def keep(view: str, row: dict[str, Any], reused: bool = False) -> dict[str, Any]:
        rows.append({"seed": run.seed, "view": view, **row, "reused": reused})
        load = ", ".join(f"{value:.2f}" for value in row["load_average"])
        print(
            f"seed {run.seed}, {view}, {row['model']}: test {row['test_accuracy']:.2%}, "
            f"{row['epochs']} epochs, {row['seconds']:.1f} s{' (reused)' if reused else ''}, load {load}",
            flush=True,
        )
        return row

    def keep_at_equal_time(
        view: str, model: Model, batches: BatchSplits, budget: float, same_epochs: dict[str, Any]
    ) -> None:
        """``model`` in ``budget`` seconds, at the pace of its run at equal epochs (``same_epochs``)."""
        epochs = epochs_within(budget, same_epochs)
        if epochs == same_epochs["epochs"]:
            keep(view, same_epochs, reused=True)
        else:
            keep(view, train_and_test(run, model, batches, epochs=epochs))

    if "mnist" in groups:
        mnist = load_dataset("mnist", run.data_dir)
        batches = run.batches(mnist)
        models = [m for m in MODELS if m.dataset == "mnist"]
        same_epochs = {m.key: keep("MNIST, equal epochs", train_and_test(run, m, batches)) for m in models}
        budget = same_epochs[run.equal_time_reference]["seconds"]
        for model in models:
            keep_at_equal_time("MNIST, equal time", model, batches, budget, same_epochs[model.key])

        permutation = torch.randperm(28 * 28, generator=torch.Generator().manual_seed(run.seed))
        permuted = run.batches(
            dataclasses.replace(
                mnist,
                x_train=permute_pixels(mnist.x_train, permutation),
                x_test=permute_pixels(mnist.x_test, permutation),
            )
        )

        def rearrange(mlp: nn.Module) -> None:  # W' = W[:, permutation]: the MLP's start, permuted
            with torch.no_grad():
                mlp.fc1.weight.copy_(mlp.fc1.weight[:, permutation])

        for model in models:
            if model.key in PERMUTED_MODELS:
                prepare = rearrange if model.key == "MLP" else None
                keep("permuted MNIST", train_and_test(run, model, permuted, prepare=prepare))

    if "cifar10" in groups:
        cifar = batches_of(run, load_dataset("cifar10", run.data_dir))
        lstm, resnet = (m for m in MODELS if m.dataset == "cifar10")
        lstm_row = keep("CIFAR-10, equal epochs", train_and_test(run, lstm, cifar))
        resnet_row = keep("CIFAR-10, equal epochs", train_and_test(run, resnet, cifar))
        for model, row in ((resnet, resnet_row), (lstm, lstm_row)):  # the row LSTM in ResNet-20's time
            keep_at_equal_time("CIFAR-10, equal time", model, cifar, resnet_row["seconds"], row)
    return rows


def spread_of(values: list[float]) -> dict[str, Any]:
    """The values over the seeds, their mean, min, max and spread (max - min)."""
    return {
        "values": values,
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "spread": max(values) - min(values),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{view: {model: {measure: spread_of(its values, seed by seed)}}}`` for every measure of MEASURES."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for view in VIEWS:
        for model in dict.fromkeys(row["model"] for row in rows if row["view"] == view):
            mine = [row for row in rows if (row["view"], row["model"]) == (view, model)]  # in seed order
            summary.setdefault(view, {})[model] = {k: spread_of([row[k] for row in mine]) for k in MEASURES}
    return summary


def compare(
    first: tuple[str, str], second: tuple[str, str], summary: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    """Whether one (view, model) ranks above another in test accuracy beyond the seed spread.

    The one with the higher mean leads. ``gaps``: the leader's accuracy minus the other's, seed by
    seed. ``holds``: the leader is ahead in every seed by more than either one's spread (the
    largest minus the smallest accuracy over the seeds) — the condition for the notebook, which
    trains seed 0 only, to claim the ranking.
    """
    a, b = (summary[view][model]["test_accuracy"] for view, model in (first, second))
    if a["mean"] < b["mean"]:
        (first, a), (second, b) = (second, b), (first, a)
    gaps = [x - y for x, y in zip(a["values"], b["values"])]
    larger_spread = max(a["spread"], b["spread"])
    return {
        "leader": list(first),
        "other": list(second),
        "gaps": gaps,
        "mean_gap": statistics.fmean(gaps),
        "smallest_gap": min(gaps),
        "spreads": [a["spread"], b["spread"]],
        "ahead_in_every_seed": min(gaps) > 0,
        "holds": min(gaps) > larger_spread,
    }


def comparisons(summary: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every pair of models within a view, then each model against itself in the view it changes
    (CHANGES; not where the two runs are one and the same)."""
    pairs = [((view, a), (view, b)) for view in summary for a, b in itertools.combinations(summary[view], 2)]
    pairs += [
        ((view, model), (base, model))
        for view, base in CHANGES
        for model in summary.get(view, {})
        if model in summary.get(base, {})
        and summary[view][model]["test_accuracy"]["values"] != summary[base][model]["test_accuracy"]["values"]
    ]
    return [compare(first, second, summary) for first, second in pairs]


def print_seed_spread(
    seeds: list[int], summary: dict[str, dict[str, dict[str, Any]]], ranks: list[dict[str, Any]]
) -> None:
    table = []
    for view, models in summary.items():
        for model, measured in models.items():
            test, epochs, seconds = (measured[k] for k in ("test_accuracy", "epochs", "seconds"))
            by_seed = [f"{value:.2%}" for value in test["values"]]
            epochs_by_seed = "/".join(str(e) for e in epochs["values"])
            table.append((view, model, *by_seed, test["mean"], test["spread"] * 100, epochs_by_seed,
                          seconds["mean"], seconds["spread"]))  # fmt: skip
    headers = ("view", "model", *(f"seed {s}" for s in seeds), "mean", "spread (pts)", "epochs", "mean s",
               "spread s")  # fmt: skip
    formats = (None, None, *[None] * len(seeds), ".2%", ".2f", None, ".1f", ".1f")
    print(format_table(table, headers, formats=formats, align="ll" + "r" * (len(headers) - 2)))
    print()

    def named(view: str, model: str, beside: str) -> str:  # the view only where the two differ
        return model if view == beside else f"{model} ({view})"

    table = [
        (
            r["leader"][0],
            named(*r["leader"], r["other"][0]),
            named(*r["other"], r["leader"][0]),
            " ".join(f"{gap * 100:+.2f}" for gap in r["gaps"]),
            " / ".join(f"{spread * 100:.2f}" for spread in r["spreads"]),
            "holds" if r["holds"] else "every seed, within spread" if r["ahead_in_every_seed"] else "no",
        )
        for r in ranks
    ]
    headers = ("view", "ahead", "of", "gaps by seed (pts)", "spreads (pts)", "ranking")
    print(format_table(table, headers, align="lllrrl"))


def measure_seed_spread(args: argparse.Namespace) -> None:
    """Train notebook 04's image models with each seed of ``args.seeds``; write and print the spread."""
    groups = GROUPS[args.only]
    command = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python -m benchmarks.learning_rates"
    record: dict[str, Any] = {
        "notebook": NOTEBOOK,
        "part": "seed spread",
        "profile": args.profile,
        "only": args.only,
        "seeds": args.seeds,
        "command": " ".join([command, *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_at_start": list(os.getloadavg()),
        "what": (
            "notebook 04's image models at its recipe settings and learning rates, once per seed (the seed "
            "draws the split, the batch order, the initial weights and the pixel permutation); the spread "
            "of a model in a view is the largest minus the smallest value over the seeds; a ranking "
            "'holds' where the leader is ahead in every seed by more than either model's spread; the "
            "equal-time views give each model floor(reference seconds / its seconds per epoch) epochs, at "
            "least 1 (MNIST: LeNet-5's time; CIFAR-10: ResNet-20's); seconds are fit's wall time, the "
            "validation after each epoch included"
        ),
    }
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for seed in args.seeds:
        run = configure(NOTEBOOK, args.profile, device="cpu", data_dir=args.data_dir, seed=seed)
        rows += measure_one_seed(run, groups)
        summary = summarise(rows)
        record.update(
            settings={**settings_that_matter(run.values), **{k: run.values[k] for k in RATE_SETTINGS}},
            train_configs={m.name: what_config_sets(train_config(run, m, 1.0)) for m in MODELS},
            environment=environment(),
            seeds_done=sorted({row["seed"] for row in rows}),
            total_seconds=time.perf_counter() - start,
            rows=rows,
            summary=summary,
            comparisons=comparisons(summary),
        )
        path = atomic_write(args.out, json.dumps(record, indent=1) + "\n")  # after every seed
    print()
    print_seed_spread(record["seeds_done"], record["summary"], record["comparisons"])
    load = ", ".join(f"{value:.2f}" for value in record["environment"]["load_average_when_written"])
    print(f"\n{len(rows)} rows in {record['total_seconds']:.0f} s, load {load}; wrote {display_path(path)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=tuple(GROUPS), default="all", help="which models to train")
    parser.add_argument("--profile", choices=("smoke", "quick"), default="quick")
    parser.add_argument(
        "--data-dir", default=None, help="folder with mnist.npz, cifar10.npz ($COURSE_DATA_DIR)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="measure the seed spread with these seeds instead"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="the JSON record (learning_rates.json, or image_seeds.json)"
    )
    args = parser.parse_args()
    if args.seeds is None:
        args.out = args.out or RESULTS / "learning_rates.json"
        choose_learning_rates(args)
    else:
        args.out = args.out or RESULTS / "image_seeds.json"
        measure_seed_spread(args)


if __name__ == "__main__":
    main()
