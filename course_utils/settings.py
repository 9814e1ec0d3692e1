"""What each notebook runs with: profiles, recipes, and the checks its claims must pass.

:func:`configure` turns a notebook's ``parameters`` cell into the settings it runs with, read by plain
names as a script reads ``args.epochs`` after argparse::

    run = configure("02_lenet5_mnist", PROFILE, epochs=EPOCHS, lr=LR, seed=SEED, ...)
    history = fit(model, splits.train, splits.val, run.train_config(name="LeNet-5"))
    run.require(accuracy >= run.checks["min_test_accuracy"], "LeNet-5 reaches ...")

The profiles: ``smoke`` (a tiny run, for the tests), ``quick`` (a classroom on laptop CPUs), ``full`` (the
published results, for a GPU), and ``auto`` (``$COURSE_PROFILE`` when set, else ``full`` on a CUDA GPU,
else ``quick``). A parameter set to anything but ``None`` replaces the recipe's value.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from course_utils.data import BatchSplits, ImageDataset, default_data_dir, make_batches
from course_utils.environment import atomic_write, display_path, get_device, project_root, share_cpu_threads
from course_utils.tables import format_table
from course_utils.training import TrainConfig

PROFILES = ("auto", "smoke", "quick", "full")

# Notebook 05's sequence tasks (course_utils.sequences.make_sequence_task). An epoch of a sequence task is
# `steps_per_epoch` optimiser steps, after which the validation split is scored. The TCN's receptive field,
# 1 + 2 (kernel_size - 1) (2**levels - 1) steps, covers each sequence.
_SYNTHETIC = {"train_size": 10_000, "val_size": 500, "test_size": 1_000, "batch_size": 64}
_SMOKE = {"train_size": 256, "val_size": 64, "test_size": 64, "batch_size": 32, "steps_per_epoch": 10,
          "epochs": 2}  # fmt: skip
_MNIST = {"task": "sequential_mnist", "side": 14, "permuted": False}
_TCN = {"tcn_levels": 4, "tcn_kernel_size": 4}
# ResNet-20's optimiser (SGD, Nesterov momentum): notebook 03's recipe, which notebook 04 keeps for ResNet-20.
_RESNET_SGD = {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}
# The one-cycle schedule of notebooks 02-04: a quarter of the steps rise to the peak rate, the rest fall.
_ONECYCLE = {"schedule": "onecycle", "warmup_fraction": 0.25}

# Per notebook: the datasets it loads (the batch runner checks them before anything runs), its settings
# and its checks, each a base plus what each profile changes.
RECIPES: dict[str, dict[str, Any]] = {
    "01_concepts": {
        # Trains nothing and runs in seconds: every profile does the same work, so that its printed checks
        # are the same in every profile. hidden_size: the RNN, LSTM and GRU cells checked against PyTorch;
        # gradient_images: digits in the vanishing-gradient plot; shift_images: the max-pooling experiment.
        "datasets": ["mnist", "cifar10"],
        "settings": {"base": {"hidden_size": 64, "gradient_images": 64, "shift_images": 1000}},
        "checks": {},
    },
    "02_lenet5_mnist": {
        # quick: 4 epochs reached 99.00-99.20 % test accuracy over seeds 0-2 on a 2-core CPU.
        "datasets": ["mnist"],
        "settings": {
            "base": {"optimizer": "adamw", "weight_decay": 0.01, **_ONECYCLE, "val_size": 5000,
                     "train_subset": None, "test_subset": None},
            "smoke": {"epochs": 1, "batch_size": 64, "lr": 2e-3, "val_size": 1000, "train_subset": 3000},
            "quick": {"epochs": 4, "batch_size": 128, "lr": 3e-3},
            "full": {"epochs": 12, "batch_size": 512, "lr": 6e-3},
        },
        # The test accuracies LeNet-5 and the MLP must reach; whether LeNet-5 must beat the MLP (one
        # epoch on 3,000 images is too short for that to be sure). The regularisation experiment (section
        # 9: an MLP on 500 images, the same in every profile): without regularisation, the gap between
        # training and validation accuracy (in points) and the rise of the validation loss after its minimum
        # (last / lowest); weight decay 3's validation loss as a fraction of none's; the validation accuracy
        # the shifts add (a fraction: 0.03 is 3 points).
        "checks": {
            "base": {"lenet_beats_mlp": True, "min_overfit_gap_points": 10.0, "min_val_loss_rise": 1.1,
                     "max_decay_val_loss_ratio": 0.9, "min_shift_val_gain": 0.03},
            "smoke": {"min_test_accuracy": 0.6, "mlp_min_test_accuracy": 0.6, "lenet_beats_mlp": False},
            "quick": {"min_test_accuracy": 0.985, "mlp_min_test_accuracy": 0.95},
            "full": {"min_test_accuracy": 0.99, "mlp_min_test_accuracy": 0.97},
        },
    },
    "03_resnet20_cifar10": {
        # resume_epochs: epochs before the notebook interrupts its main run on purpose, to resume it.
        # plain_*: the plain-vs-residual comparison (He et al. 2016, Figure 6), one plain and one residual
        # net per depth. drop_last: every step sees a full batch. full: what fitted the 80 s budget of the
        # GPU benchmark on an H200 (benchmarks/gpu_full_results.py picks the epochs, at most its EPOCHS_MAX).
        "datasets": ["cifar10"],
        "settings": {
            "base": {**_RESNET_SGD, **_ONECYCLE, "label_smoothing": 0.0, "val_size": 5000,
                     "train_subset": None, "test_subset": None, "plain_depths": [20], "drop_last": True,
                     "compile": False},
            "smoke": {"epochs": 2, "batch_size": 32, "lr": 0.1, "val_size": 500,
                      "train_subset": 1000, "test_subset": 1000, "resume_epochs": 1, "plain_epochs": 1,
                      "plain_train_subset": 1000},
            "quick": {"epochs": 10, "batch_size": 128, "lr": 0.2, "resume_epochs": 5,
                      "plain_epochs": 3, "plain_train_subset": 10000},
            "full": {"epochs": 74, "batch_size": 512, "lr": 0.4, "label_smoothing": 0.1,
                     "resume_epochs": 30, "plain_epochs": 60, "plain_train_subset": None,
                     "plain_depths": [20, 56], "compile": True},
        },
        # Measured (seed 0, 2-core x86-64 CPU, bf16): smoke 20.6-23.5 % test; quick 86.96 % after 10
        # epochs, and plain-20 / ResNet-20 40.70 / 50.18 % validation after 3 epochs on 10k images.
        "checks": {
            "base": {"residual_ahead_of_plain": True},
            "smoke": {"min_test_accuracy": 0.15, "min_comparison_val_accuracy": 0.12,
                      "residual_ahead_of_plain": False},
            "quick": {"min_test_accuracy": 0.80, "min_comparison_val_accuracy": 0.35},
            "full": {"min_test_accuracy": 0.9125, "min_comparison_val_accuracy": 0.75},
        },
    },
    "04_cnn_vs_rnn": {
        # The budget rule, the same for every model of a comparison: the same data, epochs (or optimiser
        # steps), optimiser, schedule, clipping and precision. Each model's peak learning rate is chosen on
        # the validation split by benchmarks/learning_rates.py (learning_rates.json),
        # at quick settings, which full reuses. ResNet-20 keeps
        # the SGD recipe of notebook 03 (resnet_training). equal_time_reference: the model whose training
        # time the second view gives every model. max_shift: test digits shifted by 0..max_shift pixels.
        "datasets": ["mnist", "cifar10"],
        "settings": {
            "base": {
                "val_size": 5000, "train_subset": None, "test_subset": None, "hidden_size": 128,
                "optimizer": "adamw", "weight_decay": 0.01, **_ONECYCLE, "grad_clip": 1.0,
                "mixed_precision": "auto", "equal_time_reference": "LeNet-5", "max_shift": 4,
                "learning_rates": {"MLP": 4e-3, "LeNet-5": 4e-3, "row RNN": 2e-3, "row LSTM": 8e-3,
                                   "row GRU": 8e-3},
                "cifar_epochs": 2, "cifar_hidden_size": 128, "cifar_train_subset": 10000,
                "cifar_val_size": 5000, "cifar_test_subset": None,
                "cifar_learning_rates": {"row LSTM": 4e-3, "ResNet-20": 0.1},
                "resnet_training": {**_RESNET_SGD, "grad_clip": None},
            },
            "smoke": {
                "epochs": 1, "batch_size": 64, "train_subset": 2000, "test_subset": 1000, "val_size": 500,
                "latency_repeats": 5, "cifar_batch_size": 32, "cifar_train_subset": 1000,
                "cifar_test_subset": 500, "cifar_val_size": 500, "cifar_epochs": 1,
            },
            "quick": {"epochs": 3, "batch_size": 128, "latency_repeats": 20, "cifar_batch_size": 128},
            "full": {
                "epochs": 12, "batch_size": 256, "latency_repeats": 50, "cifar_epochs": 30,
                "cifar_batch_size": 256, "cifar_train_subset": None,
            },
        },
        # max_equal_time_overrun: how much longer than the time it was given (LeNet-5's on MNIST, ResNet-20's
        # on CIFAR-10) a model's training may last, as a fraction (timing noise); on MNIST a model that needs
        # longer for one epoch trains one, and is not held to it.
        # min_gru_operator_ratio: the row GRU's operator calls per forward pass / the row LSTM's, on a CPU.
        # min_*: each model's test accuracy. comparisons: whether claims that rank models are enforced
        # (smoke's run is too short for any ranking: there they are printed). resnet_wins_cifar_equal_time:
        # the LSTM led within quick's half minute; ResNet-20 led at 198 s on all images
        # (benchmarks/cifar_budget.py), and so, we expect, in full.
        # seed_spread: each model's test accuracy, max - min over seeds 0-2 at the quick settings (python -m
        # benchmarks.learning_rates --seeds 0 1 2, image_seeds.json): a ranking is claimed only where the gap
        # is larger than both models' spreads.
        "checks": {
            "base": {"max_mlp_permutation_gap": 0.005, "comparisons": True, "max_equal_time_overrun": 0.1,
                     "min_gru_operator_ratio": 10.0,
                     "resnet_wins_cifar_equal_time": True, "seed_spread": {
                         "MNIST": {"MLP": 0.0017, "LeNet-5": 0.0016, "row RNN": 0.0042, "row LSTM": 0.0014,
                                   "row GRU": 0.0017},
                         "MNIST, equal time": {"MLP": 0.0012, "LeNet-5": 0.0016, "row RNN": 0.0092,
                                               "row LSTM": 0.0028, "row GRU": 0.0058},
                         "permuted MNIST": {"MLP": 0.0014, "LeNet-5": 0.0051, "row LSTM": 0.0017},
                         "CIFAR-10": {"row LSTM": 0.0092, "ResNet-20": 0.0262},
                         "CIFAR-10, equal time": {"row LSTM": 0.0175, "ResNet-20": 0.0262}}},
            "smoke": {"min_lenet5_accuracy": 0.5, "min_mlp_accuracy": 0.5, "min_row_rnn_accuracy": 0.2,
                      "min_row_lstm_accuracy": 0.2, "min_row_gru_accuracy": 0.2,
                      "min_cifar_rnn_accuracy": 0.1, "min_cifar_resnet_accuracy": 0.1,
                      "max_mlp_permutation_gap": 0.02, "comparisons": False},
            "quick": {"resnet_wins_cifar_equal_time": False, "min_lenet5_accuracy": 0.985,
                      "min_mlp_accuracy": 0.96, "min_row_rnn_accuracy": 0.9, "min_row_lstm_accuracy": 0.98,
                      "min_row_gru_accuracy": 0.98, "min_cifar_rnn_accuracy": 0.3,
                      "min_cifar_resnet_accuracy": 0.35},
            "full": {"min_lenet5_accuracy": 0.99, "min_mlp_accuracy": 0.97, "min_row_rnn_accuracy": 0.95,
                     "min_row_lstm_accuracy": 0.985, "min_row_gru_accuracy": 0.985,
                     "min_cifar_rnn_accuracy": 0.5, "min_cifar_resnet_accuracy": 0.85},
        },
    },
    "05_sequences_attention": {
        # The budget rule of the sequence tasks, the same for every model of a task: the same sequences,
        # optimiser steps (epochs of steps_per_epoch), optimiser, constant learning rate, batch size,
        # gradient clipping and precision (training); each model's learning rate chosen on the validation
        # split from lr_grid (benchmarks/sequence_experiments.py, sequence_<task>.json) at quick settings,
        # which smoke and full reuse unless select_learning_rates (full: it chooses them as it runs).
        # seeds: every model of every task trains this many times (seeds SEED, SEED + 1, ...); a ranking
        # is claimed only where it holds for every seed.
        "datasets": ["mnist"],
        "settings": {
            "base": {
                "seeds": 3, "select_learning_rates": False,
                "lr_grid": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
                "training": {"optimizer": "adamw", "weight_decay": 0.0, "schedule": "constant",
                             "grad_clip": 1.0, "mixed_precision": "fp32"},
                # Chosen with seed 0 at quick settings (sequence_<task>.json); none at an edge of lr_grid,
                # which reaches 1e-4 because the plain RNN's best rate on the adding problem is 3e-4.
                "learning_rates": {
                    "adding": {"TCN": 1e-2, "LSTM": 1e-2, "GRU": 3e-2, "RNN": 3e-4},
                    "copy": {"TCN": 3e-3, "LSTM": 3e-2, "GRU": 3e-2, "RNN": 3e-3},
                    "mnist": {"TCN": 1e-2, "LSTM": 1e-2, "GRU": 1e-2, "RNN": 1e-3},
                    "permuted_mnist": {"TCN": 1e-2, "LSTM": 1e-2, "GRU": 1e-2, "RNN": 1e-3},
                },
            },
            "smoke": {
                "seeds": 2,
                "tasks": {
                    "adding": {"task": "adding", "length": 20, **_SMOKE, **_TCN, "tcn_levels": 3},  # 43 >= 20
                    "copy": {"task": "copy", "blank_length": 5, **_SMOKE, **_TCN, "tcn_levels": 3,
                             "tcn_kernel_size": 3},  # 29 >= 25 steps (5 + 2 * 10)
                    **{
                        name: {**_MNIST, **_SMOKE, "side": 10, "permuted": permuted, "train_size": 500,
                               "val_size": 100, "test_size": 100, "steps_per_epoch": 5, **_TCN,
                               "tcn_kernel_size": 5}  # 121
                        for name, permuted in (("mnist", False), ("permuted_mnist", True))
                    },
                },
            },
            "quick": {
                # 3 seeds x 4 models x these tasks: about 260 s of training on a 2-core CPU (2 threads).
                "tasks": {
                    "adding": {"task": "adding", "length": 40, **_SYNTHETIC, "steps_per_epoch": 100,
                               "epochs": 8, **_TCN, "tcn_kernel_size": 3},  # receptive field 61 >= 40 steps
                    "copy": {"task": "copy", "blank_length": 20, **_SYNTHETIC, "steps_per_epoch": 100,
                             "epochs": 3, **_TCN, "tcn_kernel_size": 3},  # 61 >= 40 steps (20 + 2 * 10)
                    **{
                        name: {**_MNIST, "side": 10, "permuted": permuted, "train_size": 10_000,
                               "val_size": 1_000, "test_size": 2_000, "batch_size": 64,
                               "steps_per_epoch": 100, "epochs": 3, **_TCN, "tcn_kernel_size": 5}  # 121
                        for name, permuted in (("mnist", False), ("permuted_mnist", True))
                    },
                },
            },
            "full": {
                "select_learning_rates": True,
                # Longer sequences, and the classic 784-step sequential and permuted MNIST (Le, Jaitly &
                # Hinton, 2015; Bai et al., 2018, Table 1): 10 epochs of 55,000 images.
                "tasks": {
                    "adding": {"task": "adding", "length": 200, **_SYNTHETIC, "steps_per_epoch": 200,
                               "epochs": 20, "tcn_levels": 6, "tcn_kernel_size": 4},  # 379 >= 200
                    "copy": {"task": "copy", "blank_length": 100, **_SYNTHETIC, "steps_per_epoch": 200,
                             "epochs": 20, "tcn_levels": 6, "tcn_kernel_size": 3},  # 253 >= 120
                    **{
                        name: {**_MNIST, "side": 28, "permuted": permuted, "train_size": None,
                               "val_size": 5_000, "test_size": None, "batch_size": 64,
                               "steps_per_epoch": 860, "epochs": 10,
                               "tcn_levels": 6, "tcn_kernel_size": 8}  # 883 >= 784
                        for name, permuted in (("mnist", False), ("permuted_mnist", True))
                    },
                },
            },
        },
        # *_loss_ratio: test losses as a fraction of chance; max_copy_recurrent_accuracy: the recalled
        # digits the LSTM, GRU and RNN get right at most within the budget; min_trained_gated_reach: the
        # reach ratio (first half / second half of the steps) the trained LSTM and GRU reach at least;
        # min_attention_reach: the reach ratio an untrained self-attention layer reaches at least.
        # comparisons: whether rankings are enforced (smoke is too short: only printed).
        "checks": {
            "base": {"comparisons": True, "max_adding_solved_loss_ratio": 0.05, "min_attention_reach": 0.5,
                     "min_adding_rnn_loss_ratio": 0.5, "min_copy_tcn_accuracy": 0.75,
                     "max_copy_recurrent_accuracy": 0.6, "min_seq_mnist_tcn_accuracy": 0.85,
                     "min_trained_gated_reach": 0.5},
            "smoke": {"comparisons": False, "max_adding_solved_loss_ratio": 100.0,
                      "min_adding_rnn_loss_ratio": 0.0, "min_copy_tcn_accuracy": 0.0,
                      "max_copy_recurrent_accuracy": 1.0, "min_seq_mnist_tcn_accuracy": 0.0,
                      "min_trained_gated_reach": 0.0},
            # Adding T = 200, copy T = 100, 4,000 steps: the recurrent networks may learn the copy task.
            "full": {"max_copy_recurrent_accuracy": 1.0, "min_seq_mnist_tcn_accuracy": 0.95},
        },
    },
}  # fmt: skip


class SettingsError(ValueError):
    """A profile or parameter value that cannot be used; the message says what is valid."""


def recipe(notebook: str, profile: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(settings, checks)`` of ``notebook`` in a concrete profile: the base, then the profile's changes.

    Fresh copies every time: changing them changes no table.
    """
    if notebook not in RECIPES:
        raise SettingsError(f"no recipe for {notebook!r}; the notebooks are {', '.join(RECIPES)}")
    if profile not in PROFILES[1:]:  # "auto" too: resolve_profile says what it means on this machine
        raise SettingsError(f"no profile {profile!r} in a recipe; the profiles are {', '.join(PROFILES[1:])}")
    tables = RECIPES[notebook]
    merged = [
        {**table.get("base", {}), **table.get(profile, {})}
        for table in (tables["settings"], tables["checks"])
    ]
    return copy.deepcopy(merged[0]), copy.deepcopy(merged[1])


def resolve_profile(profile: str, device: torch.device | None = None) -> str:
    """The concrete profile (``smoke``, ``quick`` or ``full``) that ``profile`` means on ``device``: for
    ``auto``, ``$COURSE_PROFILE`` if set, else ``full`` on a GPU of compute capability 8.0 or later, else
    ``quick``."""
    chosen = str(profile).strip().lower()
    if chosen not in PROFILES:
        raise SettingsError(f"PROFILE must be one of {', '.join(PROFILES)}, got {profile!r}")
    if chosen == "auto":
        chosen = os.environ.get("COURSE_PROFILE", "").strip().lower()
        if chosen and chosen not in PROFILES[1:]:
            raise SettingsError(
                f"COURSE_PROFILE={chosen!r} is not a profile; use smoke, quick or full (or unset it)"
            )
        device = device if device is not None else get_device("auto")
        # full's settings were measured on an H200; a GPU older than compute capability 8.0 (Colab's T4)
        # would take many times as long, so it gets quick, as a CPU does.
        fast_gpu = not chosen and device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)
        chosen = chosen or ("full" if fast_gpu else "quick")
    return chosen


def check_parameters(notebook: str, profile: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Check parameter values of ``notebook`` (``{"EPOCHS": 5, "SEED": 1}``); the one place that does.

    :func:`configure` calls it, and so does the batch runner for ``-p NAME VALUE`` before anything runs.
    A value must be of the kind the profile's own is (a whole number, a finite positive number, True or
    False, a text, a list, a dict; ``None`` keeps the profile's). ``PROFILE`` ``auto`` means the profile of
    the run's ``DEVICE``; ``SEED``, ``DEVICE``, ``DATA_DIR``, ``OUTPUT_DIR`` are checked too.

    Returns:
        ``{setting name: value}`` for the recipe settings given a value (not None).

    Raises:
        SettingsError: an unknown name, a check given as a parameter, or a value that cannot be used.
    """
    try:  # the profile "auto" means on the device the run asks for
        device = get_device(next((v for n, v in parameters.items() if n.lower() == "device"), "auto"))
    except ValueError as error:
        raise SettingsError(f"DEVICE: {error}") from None
    settings, checks = recipe(notebook, resolve_profile(profile, device))
    changed = {}
    for name, value in parameters.items():
        key = name.lower()
        if key == "seed" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise SettingsError(f"SEED must be a whole number >= 0, got {value!r}")
        if key in ("data_dir", "output_dir") and value is not None and not isinstance(value, (str, Path)):
            raise SettingsError(f"{name.upper()} must be the path of a folder (or None), got {value!r}")
        if key in ("seed", "device", "data_dir", "output_dir", "profile"):
            continue
        if key in checks:
            raise SettingsError(
                f"{name.upper()} is what {notebook} checks, not a parameter (RECIPES[...]['checks'])"
            )
        if key not in settings:
            accepted = ", ".join(sorted(n.upper() for n in settings))
            raise SettingsError(f"{notebook} has no parameter {name.upper()}; it accepts {accepted}")
        if value is None:  # the profile's value
            continue
        default, whole = settings[key], isinstance(value, int) and not isinstance(value, bool)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise SettingsError(f"{name.upper()} must be True or False, got {value!r}")
        if (default is None or type(default) is int) and not (whole and value >= 1):
            raise SettingsError(
                f"{name.upper()} must be a whole number >= 1 (None: the profile's), got {value!r}"
            )
        if type(default) is float and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                           and math.isfinite(value) and value > 0):  # fmt: skip
            raise SettingsError(
                f"{name.upper()} must be a finite number > 0, got {value!r} (1e999 reads as inf)"
            )
        kind = {str: "a text", list: "a list", dict: "a dict"}.get(type(default))
        if kind and type(value) is not type(default):
            raise SettingsError(f"{name.upper()} must be {kind} like the profile's {default!r}: {value!r}")
        changed[key] = float(value) if type(default) is float else value
    return changed


def person_name() -> str:
    """The current user's login name, from the user id (``$USER`` can say anything), made safe for a path."""
    try:
        import pwd

        name = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        name = os.environ.get("USERNAME", "") or f"uid{os.getuid() if hasattr(os, 'getuid') else 0}"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip(".") or "user"


def output_root(output_dir: str | Path | None = None) -> Path:
    """Where the notebooks write (each into ``<it>/<notebook>/``), checked before any work.

    ``OUTPUT_DIR`` when given (used as given), else ``$COURSE_OUTPUT_DIR``, else ``outputs/<login name>/`` in
    the repository (made with mode 755), so that people who share one checkout never share files; where you
    may not write ``outputs/``, or others may move what is in it (o+w without the sticky bit: a warning says
    so), ``~/cnn-rnn-course/outputs/<login name>/``. One of someone else's, or a symbolic link, is refused.

    Raises:
        SettingsError: the folder cannot be used (whose it is, and what to do).
    """
    chosen = output_dir if output_dir not in (None, "") else os.environ.get("COURSE_OUTPUT_DIR", "")
    folder = Path(chosen).expanduser().absolute() if chosen else project_root() / "outputs"
    if not chosen:
        mode = folder.stat().st_mode if folder.is_dir() and os.name == "posix" else 0
        if unsafe := mode & 0o1002 == 0o002:  # others may write in it, and without the sticky bit
            import warnings

            why = "others may rename or delete what is in it (o+w without the sticky bit: chmod 1777 or o-w)"
            warnings.warn(f"{folder} is not used: {why}; your outputs go to your home", stacklevel=1)  # once
        home = unsafe or not os.access(folder if folder.exists() else folder.parent, os.W_OK | os.X_OK)
        folder = (Path.home() / "cnn-rnn-course" / "outputs" if home else folder) / person_name()
        try:  # made now, yours (755 whatever the umask: only you write in it), or there and checked next
            folder.mkdir(parents=True)
            folder.chmod(0o755)
        except OSError:
            pass
        theirs = folder.exists() and hasattr(os, "getuid") and folder.stat().st_uid != os.getuid()
        if folder.is_symlink() or theirs:
            raise SettingsError(
                f"{folder} is {'a symbolic link' if folder.is_symlink() else 'another user’s folder'}: your "
                "outputs must be in a folder of your own. Ask whoever made it to remove it, or set "
                "OUTPUT_DIR (or COURSE_OUTPUT_DIR) to a folder in your home."
            )
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p.is_symlink())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise SettingsError(
            f"cannot write into {folder}: {existing} is "
            f"{'not writable' if existing.is_dir() else 'not a folder'}; "
            "set OUTPUT_DIR (or COURSE_OUTPUT_DIR) to a folder you may write"
        )
    return folder


@dataclass(frozen=True)
class RunSettings:
    """What a notebook runs with. Every recipe setting is an attribute: ``run.epochs``, ``run.lr``.

    Attributes:
        notebook, profile (concrete), requested_profile (what the parameters cell asked for).
        device, seed, data_dir, output_dir: where it computes, reads and writes (``output_dir`` is this
            notebook's own folder).
        values: every setting of the recipe; checks: what the notebook asserts about its results.
        overridden: the settings that a parameter changed; while there are any, :meth:`require`
            reports a claim that fails as a note (the recipe's floors were never meant for them).
    """

    notebook: str
    profile: str
    requested_profile: str
    device: torch.device
    seed: int
    data_dir: Path
    output_dir: Path
    values: dict[str, Any]
    checks: dict[str, Any]
    overridden: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values")  # only reached when ordinary lookup fails
        if values is not None and name in values:
            return values[name]
        known = ", ".join(values or ())
        raise AttributeError(
            f"{self.__dict__.get('notebook')} has no setting {name!r}; its settings: {known}"
        )

    def train_config(self, **changes: Any) -> TrainConfig:
        """A :class:`~course_utils.training.TrainConfig` from the settings that are its fields, on this
        run's device; ``changes`` replace some (``lr=``, ``name=``, ``checkpoint_dir=``, ...)."""
        names = {f.name for f in fields(TrainConfig)}
        chosen = {name: value for name, value in self.values.items() if name in names}
        return TrainConfig(**{**chosen, "device": str(self.device), **changes})

    def batches(self, dataset: ImageDataset, **changes: Any) -> BatchSplits:
        """``make_batches(dataset, ...)`` with this run's batch size, split sizes, device and seed;
        ``changes`` replace some (``train_subset=``, ``batch_size=``, ...)."""
        names = ("batch_size", "val_size", "train_subset", "test_subset", "drop_last")
        chosen = {name: self.values[name] for name in names if name in self.values}
        return make_batches(dataset, **{**chosen, "device": self.device, "seed": self.seed, **changes})

    def require(self, condition: bool, claim: str, *, enforce: bool = True) -> None:
        """Check a claim the notebook makes about its results, and print it: strict with the profile's own
        settings (a claim that does not hold stops the notebook with an ``AssertionError``).

        With training parameters changed (``-p EPOCHS 1``), a claim that does not hold is printed as a
        note instead of stopping the notebook; with ``enforce=False`` (a ranking, in a profile whose run
        is too short to rank anything) it is only printed, with whether it held.
        """
        if not enforce:
            print(f"not checked in {self.profile}: {claim} ({'holds' if condition else 'does not hold'})")
        elif condition:
            print(f"checked: {claim}")
        elif not self.overridden:
            raise AssertionError(claim)
        else:
            changed = ", ".join(name.upper() for name in self.overridden)
            print(f"note: {claim} — not enforced, because parameters were changed ({changed})")

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """Write ``metrics.json`` into the output folder, where a batch run collects it (with the notebook,
        profile, device and seed). ``model``, ``test_accuracy`` and ``parameters`` go into its summary."""
        record = {"notebook": self.notebook, "profile": self.profile, "device": str(self.device),
                  "seed": self.seed, "written": time.strftime("%Y-%m-%d %H:%M:%S"), **metrics}  # fmt: skip
        return atomic_write(self.output_dir / "metrics.json", json.dumps(record, indent=2, default=str))

    def new_checkpoint_dir(self, name: str) -> Path:
        """A new, empty folder for this run's checkpoints, ``checkpoints/<name>-<time>-<pid>``: starting
        afresh deletes only what killed runs half wrote; resuming finds only this run's ``last.pt``."""
        stem = self.output_dir / "checkpoints" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        for left in stem.parent.glob("*/.*.tmp"):  # atomic_write's, of runs killed while saving (an hour ago)
            if time.time() - left.stat().st_mtime > 3600:
                left.unlink(missing_ok=True)
        for attempt in range(1, 1000):
            folder = stem.with_name(f"{stem.name}-{attempt}") if attempt > 1 else stem
            try:
                folder.mkdir(parents=True)  # never exist_ok: a folder that is there is another run's
                return folder
            except FileExistsError:
                continue
        raise FileExistsError(f"could not create a new folder {stem}-N")

    def __str__(self) -> str:
        asked = f" (from {self.requested_profile!r})" if self.requested_profile != self.profile else ""
        rows = [("profile", self.profile + asked, ""), ("device", self.device, ""), ("seed", self.seed, "")]
        rows += [
            ("data dir", display_path(self.data_dir), ""),
            ("output dir", display_path(self.output_dir), ""),
        ]
        rows += [(n, v, "(set by parameter)" if n in self.overridden else "") for n, v in self.values.items()]
        rows += [(n, v, "(check)") for n, v in self.checks.items()]
        shown = [(name, str(value) if len(str(value)) <= 60 else f"{str(value)[:56]} ...", note)
                 for name, value, note in rows]  # a table of tables in full is for run.<name>  # fmt: skip
        return format_table(shown, align="lll")


def configure(
    notebook: str,
    profile: str = "auto",
    *,
    device: str = "auto",
    seed: int = 0,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    **overrides: Any,
) -> RunSettings:
    """Turn a notebook's parameters cell into its :class:`RunSettings`.

    ``profile``, ``device``, ``seed``, ``data_dir`` and ``output_dir`` are ``PROFILE``, ``DEVICE``, ``SEED``,
    ``DATA_DIR`` and ``OUTPUT_DIR``; ``overrides`` are settings such as ``epochs=EPOCHS``. It checks where
    the outputs will go before any work (:func:`output_root`), and gives torch the CPU cores that other
    runs leave free (:func:`course_utils.environment.share_cpu_threads`). Raises :class:`SettingsError`.
    """
    parameters = {"seed": seed, "device": device, "data_dir": data_dir, "output_dir": output_dir, **overrides}
    changed = check_parameters(notebook, profile, parameters)
    chosen_device = get_device(device)
    concrete = resolve_profile(profile, chosen_device)
    values, checks = recipe(notebook, concrete)
    values.update(changed)
    share_cpu_threads()
    return RunSettings(
        notebook=notebook,
        profile=concrete,
        requested_profile=str(profile).strip().lower(),
        device=chosen_device,
        seed=seed,
        data_dir=default_data_dir(data_dir),
        output_dir=output_root(output_dir) / notebook,
        values=values,
        checks=checks,
        overridden=tuple(changed),
    )
