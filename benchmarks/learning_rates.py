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
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
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
from course_utils.data import BatchSplits, load_dataset  # noqa: E402
from course_utils.environment import atomic_write, choose_precision, display_path, seed_everything  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=tuple(GROUPS), default="all", help="which models to train")
    parser.add_argument("--profile", choices=("smoke", "quick"), default="quick")
    parser.add_argument(
        "--data-dir", default=None, help="folder with mnist.npz, cifar10.npz ($COURSE_DATA_DIR)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "learning_rates.json", help="the JSON record")
    args = parser.parse_args()

    run = configure(NOTEBOOK, args.profile, device="cpu", data_dir=args.data_dir)
    models = [m for m in MODELS if m.dataset in GROUPS[args.only]]
    grids = {m.name: grid_for(run, m) for m in models}  # every grid checked before any training
    rows: list[dict[str, Any]] = []
    chosen: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    for dataset in GROUPS[args.only]:
        images = load_dataset(dataset, run.data_dir)
        group = [m for m in models if m.dataset == dataset]
        own = "cifar_" if dataset == "cifar10" else ""  # CIFAR-10's batch settings are cifar_batch_size, ...
        sizes = ("batch_size", "val_size", "train_subset", "test_subset")
        batches = run.batches(images, **{name: getattr(run, own + name) for name in sizes})
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


if __name__ == "__main__":
    main()
