"""Notebook 04's CIFAR-10 comparison at a larger budget: does the equal-time result hold?

In the ``quick`` profile, notebook 04 trains ResNet-20 and the row LSTM on 10,000 CIFAR-10
images for 2 epochs each, and then gives the row LSTM as much training time as ResNet-20
took. At that tiny budget (under half a minute) the fast LSTM, with many more epochs, comes
out ahead. This script repeats both views under the same rule with a larger budget: all
45,000 training images (5,000 held out for validation), ResNet-20 for ``--epochs`` epochs,
the row LSTM for the same epochs and then for ResNet-20's training time, at the learning
rates the recipe chose on the validation split (``benchmarks/learning_rates.py``). Test
accuracy is measured once per run, at the end.

Usage (about 10 minutes on a 2-core CPU with the default 4 epochs)::

    OMP_NUM_THREADS=2 COURSE_DATA_DIR=.data python -m benchmarks.cifar_budget

The record: ``benchmarks/results/cifar_budget.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.records import machine_environment  # noqa: E402
from course_utils.data import load_dataset  # noqa: E402
from course_utils.environment import atomic_write, display_path, seed_everything  # noqa: E402
from course_utils.evaluation import evaluate  # noqa: E402
from course_utils.models import SequenceRNN, resnet20  # noqa: E402
from course_utils.settings import configure  # noqa: E402
from course_utils.tables import format_table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def train(run, name: str, epochs: int, cifar) -> dict[str, Any]:
    """Train one model from the run's seed for `epochs` epochs; test it once at the end."""
    seed_everything(run.seed)
    if name == "ResNet-20":
        model = resnet20()
    else:
        model = SequenceRNN(input_size=3 * 32, hidden_size=run.cifar_hidden_size, cell="lstm")
    own = run.resnet_training if name == "ResNet-20" else {}  # ResNet-20 keeps notebook 03's optimiser
    lr = run.cifar_learning_rates[name]
    config = run.train_config(**own, lr=lr, epochs=epochs, progress=False, name=name)
    history = fit_and_report(model, cifar, config)
    test = evaluate(model, cifar.test, mixed_precision=config.mixed_precision)
    return {
        "model": name,
        "epochs": epochs,
        "lr": config.lr,
        "optimizer": config.optimizer,
        "train_seconds": history.total_seconds,
        "val_accuracy_per_epoch": history.column("val_accuracy"),
        "test_accuracy": test.accuracy,
    }


def fit_and_report(model, cifar, config):
    from course_utils.training import fit

    history = fit(model, cifar.train, cifar.val, config)
    print(f"{config.name}: {config.epochs} epochs in {history.total_seconds:.0f} s", flush=True)
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="ResNet-20's epochs (default 4)")
    parser.add_argument("--data-dir", default=os.environ.get("COURSE_DATA_DIR"))
    parser.add_argument("--out", type=Path, default=RESULTS / "cifar_budget.json")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")

    # The quick profile's settings, on all the training images.
    run = configure("04_cnn_vs_rnn", "quick", device="cpu", data_dir=args.data_dir, cifar_epochs=args.epochs)
    cifar = run.batches(
        load_dataset("cifar10", run.data_dir),
        batch_size=run.cifar_batch_size,
        val_size=run.cifar_val_size,
        train_subset=None,
        test_subset=run.cifar_test_subset,
    )
    print(f"CIFAR-10: {cifar.train.num_samples:,} training, {cifar.val.num_samples:,} validation images")

    resnet = train(run, "ResNet-20", args.epochs, cifar)
    lstm = train(run, "row LSTM", args.epochs, cifar)
    pace = lstm["train_seconds"] / args.epochs
    lstm_long = train(run, "row LSTM", max(1, round(resnet["train_seconds"] / pace)), cifar)
    rows = [
        {**resnet, "view": "equal epochs and time"},
        {**lstm, "view": "equal epochs"},
        {**lstm_long, "view": "equal time"},
    ]
    print(
        format_table(
            [(r["model"], r["view"], r["epochs"], r["train_seconds"], r["test_accuracy"]) for r in rows],
            headers=("model", "view", "epochs", "seconds", "test acc"),
            formats=(None, None, "d", ".0f", ".2%"),
        )
    )
    record = {
        "environment": machine_environment(),
        "settings": {
            "train_images": cifar.train.num_samples,
            "val_images": cifar.val.num_samples,
            "test_images": cifar.test.num_samples,
            "batch_size": run.cifar_batch_size,
            "resnet_epochs": args.epochs,
        },
        "rows": rows,
    }
    atomic_write(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {display_path(args.out)}")


if __name__ == "__main__":
    main()
