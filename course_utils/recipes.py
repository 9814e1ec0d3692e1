"""The settings of every notebook in every profile, and the results each one must reach.

Two tables, both written as a base plus what each profile changes::

    RECIPES["02_lenet5_mnist"] = {
        "base": {"optimizer": "adamw", "val_size": 5000, ...},   # every profile
        "smoke": {"epochs": 1, "val_size": 1000, ...},           # what smoke changes
        "quick": {...},
        "full": {...},
    }

* :data:`RECIPES`: how a notebook trains. Names that are fields of
  :class:`course_utils.training.TrainConfig` (``epochs``, ``lr``, ``schedule``, …) go to
  :func:`course_utils.training.fit`; ``batch_size``, ``val_size``, ``train_subset``,
  ``test_subset`` and ``drop_last`` go to :func:`course_utils.data.make_batches`; the rest
  are the notebook's own. A prefixed name such as ``mlp_lr`` is the MLP's own value of ``lr``
  (see :meth:`course_utils.profiles.RunSettings.train_config`). ``None`` for a subset means
  "all of it". A notebook's parameters cell may override any of them.
* :data:`CHECKS`: what a notebook asserts at the end (``min_*`` accuracies, ``max_*`` gaps,
  ``lenet_beats_mlp``). They are not parameters: a run with other settings is checked
  against the same numbers, and a failed check says the claim no longer holds.

A profile left out of an entry changes nothing; a profile may only change names the base
has or add names, and after merging every profile has the same names
(:func:`recipe` and :func:`checks` merge; the tests check the shape).

The ``full`` settings are the ones the GPU benchmark (``benchmarks/gpu_full_results.py``)
ran to reach the published accuracies; the README's results table gives the figures.
"""

from __future__ import annotations

import copy
from typing import Any

#: The concrete profiles, from the smallest run to the real one.
CONCRETE_PROFILES = ("smoke", "quick", "full")

# Split sizes and step counts the sequence tasks of notebook 04 share (see its "sequence_tasks").
# The adding and copy tasks draw every split fresh, so their sizes are the same in quick and full.
_SYNTHETIC_SPLITS = {"train_size": 10_000, "val_size": 500, "test_size": 1_000, "batch_size": 64}
_QUICK_STEPS = {"steps": 800, "eval_every": 100}
_FULL_STEPS = {"steps": 4_000, "eval_every": 200}
_SMOKE_SEQUENCES = {
    "train_size": 256,
    "val_size": 64,
    "test_size": 64,
    "batch_size": 32,
    "steps": 20,
    "eval_every": 10,
}
# The classic 784-step sequential MNIST: all 55,000 training images, 10 epochs of them.
_FULL_SEQUENTIAL_MNIST = {
    "task": "sequential_mnist",
    "side": 28,  # 784 steps
    "train_size": None,
    "val_size": 5_000,
    "test_size": None,
    "batch_size": 64,
    "steps": 8_600,  # 10 epochs of the 55,000 training images
    "eval_every": 860,
    "tcn_levels": 6,
    "tcn_kernel_size": 8,  # receptive field 883 >= 784
}

RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "01_concepts": {
        # Notebook 01 trains nothing and runs in well under two minutes on any CPU, so every
        # profile does the same work: its printed checks are then the same in every profile,
        # and the test suite (smoke) compares them with the stored outputs (quick) exactly.
        # hidden_size: units of the RNN, LSTM and GRU cells checked against PyTorch;
        # gradient_images: digits averaged in the vanishing-gradient plot;
        # shift_images: test digits in the max-pooling shift experiment.
        "base": {"hidden_size": 64, "gradient_images": 64, "shift_images": 1000},
    },
    "02_lenet5_mnist": {
        # quick: 4 epochs reached 99.00-99.20 % test over seeds 0-2 on a 2-core CPU.
        "base": {
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "schedule": "onecycle",
            "val_size": 5000,
            "train_subset": None,
            "test_subset": None,
        },
        "smoke": {"epochs": 1, "batch_size": 64, "lr": 2e-3, "val_size": 1000, "train_subset": 3000},
        "quick": {"epochs": 4, "batch_size": 128, "lr": 3e-3},
        "full": {"epochs": 12, "batch_size": 512, "lr": 6e-3},
    },
    "03_resnet20_cifar10": {
        # resume_epochs: epochs before the notebook interrupts the main run on purpose; a new
        # model and optimiser then resume from the checkpoint to the same total (one schedule).
        # plain_epochs / plain_train_subset / plain_depths: the plain-vs-residual comparison
        # (He et al. 2016, Figure 6), one plain and one residual net per depth, same settings.
        # drop_last: every training step sees a full batch (as in the GPU benchmark).
        "base": {
            "optimizer": "sgd",
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 5e-4,
            "schedule": "onecycle",
            "label_smoothing": 0.0,
            "val_size": 5000,
            "train_subset": None,
            "test_subset": None,
            "plain_depths": [20],
            "drop_last": True,
            "compile": False,
        },
        "smoke": {
            "epochs": 2,
            "epochs_max": 2,
            "batch_size": 32,
            "lr": 0.1,
            "val_size": 500,
            "train_subset": 1000,
            "test_subset": 1000,
            "resume_epochs": 1,
            "plain_epochs": 1,
            "plain_train_subset": 1000,
        },
        "quick": {
            "epochs": 10,
            "epochs_max": 10,
            "batch_size": 128,
            "lr": 0.2,
            "resume_epochs": 5,
            "plain_epochs": 3,
            "plain_train_subset": 10000,
        },
        "full": {
            # epochs: what fitted the 80 s budget of the GPU benchmark on an H200 (1.07 s per epoch);
            # benchmarks/gpu_full_results.py picks it from the measured speed, at most epochs_max.
            "epochs": 74,
            "epochs_max": 100,
            "batch_size": 512,
            "lr": 0.4,
            "label_smoothing": 0.1,
            "resume_epochs": 30,
            "plain_epochs": 60,
            "plain_train_subset": None,
            "plain_depths": [20, 56],
            "compile": True,
        },
    },
    "04_cnn_vs_rnn": {
        # The budget rule, the same for every model of a comparison: the same data, the same
        # number of epochs (or optimiser steps, for the sequence tasks), the same optimiser,
        # schedule, clipping and precision; only the peak learning rate is each model's own, chosen
        # on the validation split (never the test set) from a grid by benchmarks/learning_rates.py
        # (MNIST and CIFAR-10 models, quick settings) and benchmarks/sequence_experiments.py
        # (sequence tasks). Their records: benchmarks/results/learning_rates.json and
        # sequence_*.json; the full profile reuses the rates chosen at quick settings, except the
        # sequence tasks, which choose theirs on the validation split as they run
        # (sequence_select_lr). A second view gives every model the same training time
        # (equal_time_reference: the model whose time for `epochs` epochs sets it).
        # hidden_size: the row RNNs. max_shift: test digits shifted by 0..max_shift pixels;
        # latency_repeats: timed forward passes per latency. cifar_*: the row LSTM on CIFAR-10
        # (32 steps of 96 values); resnet_*: ResNet-20's own settings, trained here under the same
        # rule (notebook 03's run had its own recipe, so it is not reused).
        # sequence_tasks: name -> settings of a sequence task (course_utils.sequences.make_sequence_task);
        # sequence_lrs: task -> model -> learning rate; sequence_lr_grid: the grid they come from.
        "base": {
            "train_subset": None,
            "test_subset": None,
            "val_size": 5000,
            "hidden_size": 128,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "schedule": "onecycle",
            "lr": 3e-3,
            "grad_clip": 1.0,
            "mixed_precision": "auto",
            "mlp_lr": 4e-3,
            "lenet5_lr": 4e-3,
            "rnn_lr": 2e-3,
            "lstm_lr": 8e-3,
            "gru_lr": 8e-3,
            "equal_time_reference": "LeNet-5",
            "max_shift": 4,
            "cifar_epochs": 2,
            "cifar_lr": 4e-3,
            "cifar_hidden_size": 128,
            "cifar_train_subset": 10000,
            "cifar_test_subset": None,
            "cifar_val_size": 5000,
            "resnet_optimizer": "sgd",
            "resnet_lr": 0.1,
            "resnet_weight_decay": 5e-4,
            "resnet_grad_clip": None,
            "sequence_tasks": {
                "adding": {
                    "task": "adding",
                    "length": 50,
                    **_SYNTHETIC_SPLITS,
                    **_QUICK_STEPS,
                    "tcn_levels": 4,
                    "tcn_kernel_size": 4,  # receptive field 91 >= 50 steps
                },
                "copy": {
                    "task": "copy",
                    "blank_length": 20,  # sequences of 20 + 2 * 10 = 40 steps
                    **_SYNTHETIC_SPLITS,
                    **_QUICK_STEPS,
                    "tcn_levels": 4,
                    "tcn_kernel_size": 3,  # receptive field 61 >= 40 steps
                },
                "mnist": {
                    "task": "sequential_mnist",
                    "side": 14,  # 196 steps
                    "permuted": False,
                    "train_size": 10_000,
                    "val_size": 1_000,
                    "test_size": 2_000,
                    "batch_size": 64,
                    "steps": 400,
                    "eval_every": 100,
                    "tcn_levels": 5,
                    "tcn_kernel_size": 7,  # receptive field 373 >= 196 steps
                },
            },
            # Chosen on the validation split at the quick settings above (sequence_adding.json,
            # sequence_copy.json, sequence_mnist.json), from sequence_lr_grid.
            "sequence_lrs": {
                "adding": {"TCN": 1e-2, "LSTM": 1e-2, "GRU": 1e-2, "RNN": 1e-3},
                "copy": {"TCN": 1e-2, "LSTM": 3e-3, "GRU": 3e-2, "RNN": 3e-3},
                "mnist": {"TCN": 1e-2, "LSTM": 3e-3, "GRU": 3e-2, "RNN": 1e-3},
            },
            "sequence_lr_grid": (1e-3, 3e-3, 1e-2, 3e-2),
            "sequence_select_lr": False,
        },
        "smoke": {
            "epochs": 1,
            "batch_size": 64,
            "train_subset": 2000,
            "test_subset": 1000,
            "val_size": 500,
            "latency_repeats": 5,
            "cifar_batch_size": 32,
            "cifar_train_subset": 1000,
            "cifar_test_subset": 500,
            "cifar_val_size": 500,
            "cifar_epochs": 1,
            "sequence_tasks": {
                "adding": {
                    "task": "adding",
                    "length": 20,
                    **_SMOKE_SEQUENCES,
                    "tcn_levels": 3,
                    "tcn_kernel_size": 4,
                },
                "copy": {
                    "task": "copy",
                    "blank_length": 5,
                    **_SMOKE_SEQUENCES,
                    "tcn_levels": 3,
                    "tcn_kernel_size": 3,
                },
                "mnist": {
                    "task": "sequential_mnist",
                    "side": 14,
                    "permuted": False,
                    "train_size": 500,
                    "val_size": 100,
                    "test_size": 100,
                    "batch_size": 32,
                    "steps": 10,
                    "eval_every": 5,
                    "tcn_levels": 5,
                    "tcn_kernel_size": 7,
                },
            },
        },
        "quick": {"epochs": 3, "batch_size": 128, "latency_repeats": 20, "cifar_batch_size": 128},
        "full": {
            "epochs": 12,
            "batch_size": 256,
            "latency_repeats": 50,
            "cifar_epochs": 30,
            "cifar_batch_size": 256,
            "cifar_train_subset": None,
            # Longer sequences, and the classic 784-step sequential and permuted MNIST
            # (Le, Jaitly & Hinton, 2015; Bai et al., 2018, Table 1), for a GPU.
            "sequence_tasks": {
                "adding": {
                    "task": "adding",
                    "length": 200,
                    **_SYNTHETIC_SPLITS,
                    **_FULL_STEPS,
                    "tcn_levels": 6,
                    "tcn_kernel_size": 4,  # receptive field 379 >= 200
                },
                "copy": {
                    "task": "copy",
                    "blank_length": 100,
                    **_SYNTHETIC_SPLITS,
                    **_FULL_STEPS,
                    "tcn_levels": 6,
                    "tcn_kernel_size": 3,  # receptive field 253 >= 120
                },
                "mnist": {**_FULL_SEQUENTIAL_MNIST, "permuted": False},
                "permuted_mnist": {**_FULL_SEQUENTIAL_MNIST, "permuted": True},
            },
            "sequence_select_lr": True,
        },
    },
}

CHECKS: dict[str, dict[str, dict[str, Any]]] = {
    # Notebook 01 compares its own layers with PyTorch's to 1e-10 in the cells themselves;
    # no threshold depends on the profile.
    "01_concepts": {},
    "02_lenet5_mnist": {
        # min_test_accuracy / mlp_min_test_accuracy: the test accuracy LeNet-5 / the MLP must reach;
        # lenet_beats_mlp: whether the notebook also asserts that LeNet-5 beats the article's MLP
        # (a one-epoch run on 3,000 images is too short for that to be sure).
        "base": {"lenet_beats_mlp": True},
        "smoke": {"min_test_accuracy": 0.6, "mlp_min_test_accuracy": 0.6, "lenet_beats_mlp": False},
        "quick": {"min_test_accuracy": 0.985, "mlp_min_test_accuracy": 0.95},
        "full": {"min_test_accuracy": 0.99, "mlp_min_test_accuracy": 0.97},
    },
    "03_resnet20_cifar10": {
        # min_test_accuracy: ResNet-20's test accuracy; min_comparison_val_accuracy: the validation
        # accuracy every net of the plain-vs-residual comparison must reach; residual_ahead_of_plain:
        # whether each ResNet must end that comparison ahead of its plain twin (smoke's one epoch on
        # 1,000 images is too short to separate them).
        # Measured (seed 0, 2-core x86-64 CPU, bf16): smoke 20.6-23.5 % test (plain-20 / ResNet-20
        # 17-19 / 16-17 % val); quick 86.96 % test (87.81 % flip-averaged) after 10 epochs, and
        # plain-20 / ResNet-20 40.70 / 50.18 % val after 3 epochs on 10k images. The thresholds leave
        # room for other CPUs (fp32 where there is no bf16) and other seeds.
        "base": {"residual_ahead_of_plain": True},
        "smoke": {
            "min_test_accuracy": 0.15,
            "min_comparison_val_accuracy": 0.12,
            "residual_ahead_of_plain": False,
        },
        "quick": {"min_test_accuracy": 0.80, "min_comparison_val_accuracy": 0.35},
        "full": {"min_test_accuracy": 0.9125, "min_comparison_val_accuracy": 0.75},
    },
    "04_cnn_vs_rnn": {
        # min_*: the test accuracy of each model; max_mlp_permutation_gap: how far apart the MLP's
        # accuracies on original and permuted pixels may be (the MLP does not see the pixel order,
        # so only noise separates them). comparisons: whether the claims that rank models are
        # enforced (smoke's run is too short for any ranking: there they are only printed).
        # Sequence tasks: *_loss_ratio are test losses as a fraction of the task's chance loss;
        # max_adding_solved_loss_ratio for the LSTM, GRU and TCN, min_adding_rnn_loss_ratio for
        # the plain RNN; max_copy_recurrent_accuracy: the recalled digits the LSTM, GRU and RNN get
        # right at most within the budget; min_reach_advantage: how many times more of the gradient
        # reaches the first half of the sequence (relative to the last step) in the trained LSTM than in
        # the trained RNN (adding problem).
        # resnet_wins_cifar_equal_time: which model leads on CIFAR-10 when the row LSTM gets
        # ResNet-20's training time; it depends on the budget: the LSTM within quick's half minute,
        # ResNet-20 at 198 s on all images (benchmarks/cifar_budget.py) and so, we expect, in full.
        "base": {
            "max_mlp_permutation_gap": 0.005,
            "comparisons": True,
            "max_adding_solved_loss_ratio": 0.05,
            "min_adding_rnn_loss_ratio": 0.5,
            "min_copy_tcn_accuracy": 0.95,
            "max_copy_recurrent_accuracy": 0.6,
            "min_seq_mnist_tcn_accuracy": 0.85,
            "min_reach_advantage": 10.0,
            "resnet_wins_cifar_equal_time": True,
        },
        "smoke": {
            "min_lenet5_accuracy": 0.5,
            "min_mlp_accuracy": 0.5,
            "min_row_rnn_accuracy": 0.2,
            "min_row_lstm_accuracy": 0.2,
            "min_row_gru_accuracy": 0.2,
            "min_cifar_rnn_accuracy": 0.1,
            "min_cifar_resnet_accuracy": 0.1,
            "max_mlp_permutation_gap": 0.02,
            "comparisons": False,
            "max_adding_solved_loss_ratio": 100.0,
            "min_adding_rnn_loss_ratio": 0.0,
            "min_copy_tcn_accuracy": 0.0,
            "max_copy_recurrent_accuracy": 1.0,
            "min_seq_mnist_tcn_accuracy": 0.0,
            "min_reach_advantage": 0.0,
        },
        "quick": {
            "resnet_wins_cifar_equal_time": False,
            "min_lenet5_accuracy": 0.985,
            "min_mlp_accuracy": 0.96,
            "min_row_rnn_accuracy": 0.9,
            "min_row_lstm_accuracy": 0.98,
            "min_row_gru_accuracy": 0.98,
            "min_cifar_rnn_accuracy": 0.3,
            "min_cifar_resnet_accuracy": 0.35,
        },
        "full": {
            "min_lenet5_accuracy": 0.99,
            "min_mlp_accuracy": 0.97,
            "min_row_rnn_accuracy": 0.95,
            "min_row_lstm_accuracy": 0.985,
            "min_row_gru_accuracy": 0.985,
            "min_cifar_rnn_accuracy": 0.5,
            "min_cifar_resnet_accuracy": 0.85,
            # Longer sequences (adding T = 200, copy T = 100, 784-step MNIST): the recurrent
            # networks may learn the copy task given 4,000 steps, so no ceiling is claimed there.
            "max_copy_recurrent_accuracy": 1.0,
            "min_seq_mnist_tcn_accuracy": 0.95,
        },
    },
}


def _merged(
    table: dict[str, dict[str, dict[str, Any]]], what: str, notebook: str, profile: str
) -> dict[str, Any]:
    if notebook not in table:
        raise KeyError(f"no {what} for notebook {notebook!r}; known: {', '.join(sorted(table))}")
    if profile not in CONCRETE_PROFILES:
        raise KeyError(f"no profile {profile!r}; the profiles are {', '.join(CONCRETE_PROFILES)}")
    entry = table[notebook]
    # A fresh copy every time, nested dicts and lists included (notebook 04's sequence_tasks):
    # a caller that changes it changes no table.
    return copy.deepcopy({**entry.get("base", {}), **entry.get(profile, {})})


def recipe(notebook: str, profile: str) -> dict[str, Any]:
    """The settings ``notebook`` runs with in ``profile``: the base, then what the profile changes.

    Args:
        notebook: a key of :data:`RECIPES`, e.g. ``"02_lenet5_mnist"``.
        profile: ``"smoke"``, ``"quick"`` or ``"full"`` (resolve ``"auto"`` first, with
            :func:`course_utils.profiles.resolve_profile`).

    Returns:
        A new ``{setting: value}`` dict, the base's names first.

    Raises:
        KeyError: an unknown notebook or profile (the message lists the known ones).
    """
    return _merged(RECIPES, "recipe", notebook, profile)


def checks(notebook: str, profile: str) -> dict[str, Any]:
    """What ``notebook`` asserts in ``profile``: the base of :data:`CHECKS`, then the profile's changes.

    Args and Raises: as for :func:`recipe`.

    Returns:
        A new ``{check: threshold}`` dict (empty for a notebook without thresholds).
    """
    return _merged(CHECKS, "checks", notebook, profile)


def training_options(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The settings in ``values`` that :func:`course_utils.training.fit` takes.

    Args:
        values: one profile's settings, e.g. ``recipe("04_cnn_vs_rnn", "full")``.
        prefix: a model's own values first: with ``prefix="lstm_"``, ``lstm_lr`` wins over ``lr``.

    Returns:
        ``{name: value}`` for the names that are fields of ``TrainConfig``.
    """
    # Imported here, not at the top: reading the tables (the runner does) then needs no torch.
    from course_utils.training import TrainConfig

    chosen = {}
    for name in TrainConfig.__dataclass_fields__:
        if prefix and f"{prefix}{name}" in values:
            chosen[name] = values[f"{prefix}{name}"]
        elif name in values:
            chosen[name] = values[name]
    if "milestones" in chosen:
        chosen["milestones"] = tuple(chosen["milestones"])
    return chosen
