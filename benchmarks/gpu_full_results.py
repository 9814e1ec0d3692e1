"""Full-scale results on one GPU, and time to accuracy.

Runs, end to end, on one CUDA GPU (H100 class), the course's ``full`` recipes and the
comparisons with the source article's way of training:

* ``mnist`` part: LeNet-5 on MNIST (target: >= 99.0 % test accuracy in <= 5 s of
  training), a row-wise LSTM (target >= 98.5 %), and LeNet-5's images/s with this course's
  pipeline against the article's (torchvision transforms, ``DataLoader``, fp32).
* ``pixel`` part: notebook 04's pixel-by-pixel LSTM (784 steps of one pixel), with the
  epochs that fit ``--pixel-budget`` (reference: LSTM 98.9 %, Cooijmans et al. 2016).
* ``cifar`` part: ResNet-20 on CIFAR-10 (target >= 91.25 %, the paper's figure, in
  <= 90 s; stretch >= 92 % in <= 60 s) trained on 45k images with 5k held out for
  validation, bf16 autocast, channels-last, ``torch.compile``, data and augmentation on
  the GPU; then the article's pipeline on the same GPU: its images/s, and the standard
  recipe (SGD 0.1, batch 128, steps at epochs 100 and 150, 200 epochs) run until it
  reaches 91.25 % test accuracy or its time budget ends.

Training time excludes start-up (CUDA initialisation, cuDNN autotuning and
``torch.compile``'s compilation, which happen in an untimed warm-up on a throwaway model).
The test set is evaluated once per trained model, at the end; the epoch count of the
ResNet-20 run is set from the throughput measured in the warm-up and the time budget,
never from test accuracy. The standard-recipe baseline is evaluated on the test set after
every epoch only to time when it crosses 91.25 % (evaluation time is not counted).

Usage (the data directory must hold mnist.npz and cifar10.npz; their SHA-256 is checked)::

    python benchmarks/gpu_full_results.py --data-dir .data --out results --parts mnist,cifar

It prints a table at the end and writes ``gpu_results_<part>.json`` into ``--out``.
Where no GPU is lent, ``--cpu`` runs a part at full size on the CPU instead and writes
``cpu_results_<part>.json``. It is slow: the pixel LSTM trained at 104 images/s on a busy
2-core CPU, about 3 hours for its 20 epochs::

    python benchmarks/gpu_full_results.py --cpu --data-dir data --out benchmarks/results \
        --parts pixel --pixel-budget 7200
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import article_pipeline  # noqa: E402
from benchmarks.article_pipeline import article_test, article_train_epoch, synchronize  # noqa: E402
from course_utils.data import BatchSplits, load_dataset, make_batches  # noqa: E402
from course_utils.environment import cpu_name, seed_everything  # noqa: E402
from course_utils.evaluation import evaluate  # noqa: E402
from course_utils.models import LeNet5, SequenceRNN, resnet20  # noqa: E402
from course_utils.settings import recipe  # noqa: E402
from course_utils.training import TrainConfig, fit  # noqa: E402

START = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - START:6.1f} s] {message}", flush=True)


def check_data(data_dir: Path, name: str) -> str:
    found = article_pipeline.check_data(data_dir, name)
    log(f"{name}: SHA-256 ok")
    return found


#: The most epochs the ResNet-20 run may be given, whatever its budget allows (He et al. trained 182).
EPOCHS_MAX = 100
SMOKE = False  # set by --smoke: a tiny CPU run of every code path, to check the script before a GPU lease


def training_options(settings: dict) -> dict:
    """The recipe settings that are fields of ``TrainConfig`` (``epochs``, ``lr``, ``optimizer``, ...)."""
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    return {name: value for name, value in settings.items() if name in names}


def shrink(settings: dict, **extra) -> dict:
    """In --smoke mode: one epoch on a small subset; otherwise the settings unchanged."""
    settings = dict(settings)
    if SMOKE:
        settings.update(epochs=1, train_subset=1024, test_subset=512, **extra)
    return settings


def article_loader(dataset, train: bool, batch_size: int):
    """The article's DataLoader (4 workers, its default); 1024 images in --smoke mode."""
    limit = 1024 if SMOKE else None
    return article_pipeline.article_loader(dataset, train, batch_size, workers=4, limit=limit)


def article_throughput(model, dataset, batch_size, device, steps=60) -> float:
    steps = 3 if SMOKE else steps
    """Steady-state images/s of the article's pipeline (after 10 warm-up steps)."""
    loader = article_loader(dataset, True, batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    article_train_epoch(model, loader, optimizer, criterion, device, max_steps=3 if SMOKE else 10)
    seen, seconds = article_train_epoch(model, loader, optimizer, criterion, device, max_steps=steps)
    return seen / seconds


# ---------------------------------------------------------------------------------------
# This course's pipeline
# ---------------------------------------------------------------------------------------


def course_run(model, data, settings: dict, device: torch.device, **extra) -> dict:
    """Train with fit() and the recipe's settings on ``device``; evaluate on the test set once."""
    options = training_options(settings)
    # fit decides the device; "auto" would pick a visible GPU even with --cpu, so name it.
    options.update(extra, device=str(device))
    synchronize()
    start = time.perf_counter()
    history = fit(model, data.train, data.val, progress=False, **options)
    synchronize()
    seconds = time.perf_counter() - start
    result = evaluate(model, data.test)
    speeds = [row["images_per_second"] for row in history.rows[1:]] or [history.rows[0]["images_per_second"]]
    return {
        "test_accuracy": result.accuracy,
        "val_accuracy": history.last["val_accuracy"],
        "train_seconds": seconds,
        "epochs": len(history),
        "first_epoch_seconds": history.rows[0]["seconds"],
        "images_per_second": float(np.median(speeds)),
        "history": history.rows,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()},
    }


def warm_up(make_model, data, settings: dict, device: torch.device, steps_epochs: int = 2, **extra) -> dict:
    """Untimed: initialise CUDA/cuDNN and compile, on a throwaway model; measure speed."""
    options = training_options(settings)
    options.update(extra, epochs=steps_epochs, progress=False, device=str(device))
    start = time.perf_counter()
    history = fit(make_model(), data.train, None, **options)
    return {
        "seconds": time.perf_counter() - start,
        "first_epoch_seconds": history.rows[0]["seconds"],
        "steady_images_per_second": history.rows[-1]["images_per_second"],
        "steady_epoch_seconds": history.rows[-1]["seconds"],
    }


# ---------------------------------------------------------------------------------------
# Parts
# ---------------------------------------------------------------------------------------


def recipe_batches(dataset, settings: dict, device: torch.device, prefix: str = "", **options) -> BatchSplits:
    """The batches a notebook's recipe asks for, split and shuffled with seed 0.

    Reads ``{prefix}batch_size``, ``{prefix}train_subset`` and ``{prefix}test_subset`` (e.g.
    ``prefix="pixel_"`` for notebook 04's pixel-by-pixel models) and the recipe's ``val_size``;
    ``options`` go to :func:`make_batches` (``drop_last``). The batches stay plain: ``fit``
    decides the memory layout (channels-last for convolutional models).
    """
    return make_batches(
        dataset,
        batch_size=settings[f"{prefix}batch_size"],
        device=device,
        val_size=settings["val_size"],
        train_subset=settings[f"{prefix}train_subset"],
        test_subset=settings[f"{prefix}test_subset"],
        seed=0,
        **options,
    )


def part_mnist(data_dir: Path, device: torch.device) -> dict:
    check_data(data_dir, "mnist.npz")
    dataset = load_dataset("mnist", data_dir)
    results: dict = {}

    lenet = shrink(recipe("02_lenet5_mnist", "full")[0])
    data = recipe_batches(dataset, lenet, device, drop_last=True)
    seed_everything(1)
    results["lenet5_warmup"] = warm_up(LeNet5, data, lenet, device, steps_epochs=1)
    seed_everything(0)
    results["lenet5"] = course_run(LeNet5(), data, lenet, device)
    log(f"LeNet-5: {results['lenet5']['test_accuracy']:.2%} in {results['lenet5']['train_seconds']:.1f} s")

    rnn = shrink(recipe("04_cnn_vs_rnn", "full")[0])
    rnn_data = recipe_batches(dataset, rnn, device)
    for cell in ("lstm", "gru", "rnn"):
        settings = {**training_options(rnn), "lr": rnn["learning_rates"][f"row {cell.upper()}"]}
        seed_everything(0)
        model = SequenceRNN(input_size=28, hidden_size=rnn["hidden_size"], cell=cell)
        results[f"row_{cell}"] = course_run(model, rnn_data, settings, device)
        log(f"row-wise {cell}: {results[f'row_{cell}']['test_accuracy']:.2%}")

    for batch_size in (128, lenet["batch_size"]):
        seed_everything(0)
        speed = article_throughput(LeNet5().to(device), dataset, batch_size, device)
        results[f"lenet5_article_pipeline_batch{batch_size}_images_per_second"] = speed
        log(f"LeNet-5, article pipeline, batch {batch_size}: {speed:,.0f} images/s")
    return results


def part_pixel(data_dir: Path, device: torch.device, budget_s: float) -> dict:
    """Pixel-by-pixel MNIST (784 steps of 1 value) with the LSTM of notebook 04's full recipe.

    The epoch count is the recipe's, or fewer if that many would not fit ``budget_s`` at the
    speed measured on a throwaway model first; it is recorded, never chosen by test accuracy.
    """
    check_data(data_dir, "mnist.npz")
    dataset = load_dataset("mnist", data_dir)
    # --smoke: pixel_epochs too, since the pixel model reads pixel_epochs before epochs.
    full = shrink(
        recipe("04_cnn_vs_rnn", "full")[0], pixel_train_subset=512, pixel_test_subset=256, pixel_epochs=1
    )
    # The pixel model's own pixel_* settings replace the plain ones.
    pixel = {name.removeprefix("pixel_"): value for name, value in full.items() if name.startswith("pixel_")}
    settings = training_options({**full, **pixel})
    data = recipe_batches(dataset, full, device, prefix="pixel_")
    probe_images = 256 if SMOKE else 2560
    probe = make_batches(
        dataset, batch_size=full["pixel_batch_size"], device=device, train_subset=probe_images, seed=1
    )

    def make_model() -> nn.Module:
        return SequenceRNN(
            input_size=1, hidden_size=full["pixel_hidden_size"], cell="lstm", sequence="pixels"
        )

    seed_everything(1)
    warm = warm_up(make_model, probe, settings, device, steps_epochs=2)
    epoch_seconds = data.train.num_samples / warm["steady_images_per_second"] * 1.05
    epochs = int(max(1, min(settings["epochs"], math.floor(budget_s / epoch_seconds))))
    log(f"pixel LSTM: {warm['steady_images_per_second']:,.0f} images/s, {epochs} epochs fit {budget_s:.0f} s")
    seed_everything(0)
    result = course_run(make_model(), data, settings, device, epochs=epochs)
    log(f"pixel LSTM: test {result['test_accuracy']:.2%} in {result['train_seconds']:.1f} s")
    return {"pixel_lstm_warmup": warm, "pixel_lstm": result}


def part_cifar(data_dir: Path, device: torch.device, budget_s: float, deadline: float, save) -> dict:
    check_data(data_dir, "cifar10.npz")
    dataset = load_dataset("cifar10", data_dir)
    results: dict = {}
    full = shrink(recipe("03_resnet20_cifar10", "full")[0])
    epochs_max = 1 if SMOKE else EPOCHS_MAX
    data = recipe_batches(dataset, full, device, drop_last=True)

    seed_everything(1)
    warm = warm_up(resnet20, data, full, device, steps_epochs=2, compile=True)
    results["resnet20_warmup"] = warm
    log(f"ResNet-20 warm-up: {warm}")
    # Epochs that fit the budget at the measured speed (validation included), at most the recipe's.
    epoch_seconds = warm["steady_epoch_seconds"] * 1.03
    epochs = int(min(epochs_max, max(10, math.floor(budget_s / epoch_seconds))))
    results["resnet20_epochs_chosen"] = {
        "epochs": epochs,
        "budget_s": budget_s,
        "epoch_seconds": epoch_seconds,
    }
    log(f"ResNet-20: {epochs} epochs fit the {budget_s:.0f} s budget")
    save(results)
    seed_everything(0)
    model = resnet20()
    results["resnet20"] = course_run(model, data, full, device, epochs=epochs, compile=True)
    flipped = evaluate_flip(model, data.test)
    results["resnet20"]["test_accuracy_with_flip_averaging"] = flipped
    log(
        f"ResNet-20: test {results['resnet20']['test_accuracy']:.2%} (flip-averaged {flipped:.2%}), "
        f"val {results['resnet20']['val_accuracy']:.2%}, {results['resnet20']['train_seconds']:.1f} s"
    )
    save(results)

    # The article's pipeline on the same GPU, same model: images/s at its batch size and ours.
    for batch_size in (128, full["batch_size"]):
        seed_everything(0)
        speed = article_throughput(resnet20().to(device), dataset, batch_size, device)
        results[f"resnet20_article_pipeline_batch{batch_size}_images_per_second"] = speed
        log(f"ResNet-20, article pipeline, batch {batch_size}: {speed:,.0f} images/s")

    # The standard recipe with the article's pipeline, until 91.25 % or the budget ends.
    remaining = deadline - time.perf_counter()
    baseline_budget = 5.0 if SMOKE else max(0.0, min(100.0, remaining - 100.0))
    results["standard_recipe_article_pipeline"] = standard_recipe(dataset, device, baseline_budget)
    save(results)

    # Stretch: the same recipe in a 60 s budget, if there is time left.
    remaining = deadline - time.perf_counter()
    if remaining > 60 + 25:
        stretch_epochs = int(min(epochs_max, max(10, math.floor(57.0 / epoch_seconds))))
        seed_everything(0)
        stretch = course_run(resnet20(), data, full, device, epochs=stretch_epochs, compile=True)
        results["resnet20_stretch_60s"] = stretch
        log(f"ResNet-20 stretch: {stretch['test_accuracy']:.2%} in {stretch['train_seconds']:.1f} s")
    else:
        results["resnet20_stretch_60s"] = {"skipped": f"only {remaining:.0f} s left of the run's deadline"}
    return results


@torch.no_grad()
def evaluate_flip(model: nn.Module, test_batches) -> float:
    """Accuracy when each test image's logits are averaged with its mirror image's."""
    model.eval()
    correct = total = 0
    for x, y in test_batches:
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            logits = model(x).float() + model(x.flip(3)).float()
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    return correct / total


def standard_recipe(dataset, device, budget_s: float) -> dict:
    """He et al.'s schedule with the article's pipeline; stop at 91.25 % or the budget."""
    seed_everything(0)
    model = resnet20().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[100, 150], gamma=0.1)
    criterion = nn.CrossEntropyLoss()
    train_loader = article_loader(dataset, True, 128)
    test_loader = article_loader(dataset, False, 100)
    clock = 0.0
    rows = []
    reached = None
    for epoch in range(200):
        if clock >= budget_s:
            break
        seen, seconds = article_train_epoch(model, train_loader, optimizer, criterion, device)
        scheduler.step()
        clock += seconds
        accuracy = article_test(model, test_loader, device)
        rows.append(
            {
                "epoch": epoch + 1,
                "train_seconds_total": clock,
                "test_accuracy": accuracy,
                "images_per_second": seen / seconds,
            }
        )
        if accuracy >= 0.9125:
            reached = clock
            break
    log(
        f"standard recipe: {len(rows)} epochs, {clock:.0f} s, "
        f"last test accuracy {rows[-1]['test_accuracy']:.2%}"
        if rows
        else "standard recipe: no time left"
    )
    return {
        "budget_s": budget_s,
        "reached_91_25_after_s": reached,
        "epochs_run": len(rows),
        "train_seconds": clock,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(".data"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--parts", default="mnist,cifar")
    parser.add_argument("--resnet-budget", type=float, default=80.0, help="seconds of ResNet-20 training")
    parser.add_argument("--deadline", type=float, default=450.0, help="seconds for the whole run")
    parser.add_argument("--pixel-budget", type=float, default=150.0, help="seconds of pixel-LSTM training")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU run of every code path (no figures)")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="run the parts at full size on the CPU (slow: checks a recipe where no GPU is lent; "
        "writes cpu_results_<part>.json)",
    )
    args = parser.parse_args()
    global SMOKE
    SMOKE = args.smoke
    if not torch.cuda.is_available() and not (SMOKE or args.cpu):
        sys.exit("this benchmark needs a CUDA GPU and none is visible; add --cpu to run it slowly on the CPU")
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    prefix = "cpu" if device.type == "cpu" and not SMOKE else "gpu"
    torch.backends.cudnn.benchmark = True
    deadline = START + args.deadline
    info = {
        "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else "none (run on the CPU)",
        "cpu": f"{cpu_name()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(sys.argv),
    }
    log(f"environment: {info}")
    args.out.mkdir(parents=True, exist_ok=True)
    for part in args.parts.split(","):
        if part == "mnist":
            results = part_mnist(args.data_dir, device)
        elif part == "cifar":

            def save(partial: dict) -> None:
                path = args.out / "gpu_results_cifar.json"
                path.write_text(json.dumps({"environment": info, **partial}, indent=1))

            results = part_cifar(args.data_dir, device, args.resnet_budget, deadline, save)
        elif part == "pixel":
            results = part_pixel(args.data_dir, device, args.pixel_budget)
        else:
            sys.exit(f"unknown part {part!r}; use mnist, cifar and/or pixel")
        (args.out / f"{prefix}_results_{part}.json").write_text(
            json.dumps({"environment": info, **results}, indent=1)
        )
        print_table(part, results)


def print_table(part: str, results: dict) -> None:
    print(f"\n== {part} ==")
    for key, value in results.items():
        if isinstance(value, dict) and "test_accuracy" in value:
            print(
                f"{key:<28} test {value['test_accuracy']:.2%}  val {value['val_accuracy']:.2%}  "
                f"train {value['train_seconds']:.1f} s  epochs {value['epochs']}  "
                f"{value['images_per_second']:,.0f} img/s  first epoch {value['first_epoch_seconds']:.1f} s"
            )
        elif isinstance(value, float):
            print(f"{key:<28} {value:,.1f}")
        elif isinstance(value, dict):
            print(f"{key:<28} {json.dumps({k: v for k, v in value.items() if k != 'rows'})[:300]}")


if __name__ == "__main__":
    main()
