"""The settings of every notebook in every profile, in one place.

Each entry is ``RECIPES[notebook][profile] -> {setting: value}``. Names that are fields of
:class:`course_utils.training.TrainConfig` (``epochs``, ``lr``, ``schedule``, …) go to
:func:`course_utils.training.fit`; the rest (``batch_size``, ``val_size``,
``train_subset``, …) go to :func:`course_utils.data.make_batches` or the notebook itself.
A prefixed name such as ``mlp_lr`` is the MLP's own value of ``lr``
(see :meth:`course_utils.profiles.RunSettings.train_config`). ``None`` for a subset
means "all of it".

The ``full`` settings are the ones the GPU benchmark (``benchmarks/gpu_full_results.py``)
ran to reach the published accuracies; the README's results table gives the figures.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "01_concepts": {
        # Notebook 01 trains nothing large; the profile only sets how long the
        # vanishing-gradient demonstration runs.
        "smoke": {"sequence_length": 28},
        "quick": {"sequence_length": 28},
        "full": {"sequence_length": 28},
    },
    "02_lenet5_mnist": {
        "smoke": {
            "epochs": 1,
            "batch_size": 64,
            "lr": 2e-3,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "schedule": "onecycle",
            "val_size": 1000,
            "train_subset": 3000,
            "test_subset": None,
        },
        "quick": {
            "epochs": 3,
            "batch_size": 128,
            "lr": 3e-3,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "schedule": "onecycle",
            "val_size": 5000,
            "train_subset": None,
            "test_subset": None,
        },
        "full": {
            "epochs": 12,
            "batch_size": 512,
            "lr": 6e-3,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "schedule": "onecycle",
            "val_size": 5000,
            "train_subset": None,
            "test_subset": None,
        },
    },
    "03_resnet20_cifar10": {
        "smoke": {
            "epochs": 1,
            "epochs_max": 1,
            "batch_size": 64,
            "lr": 0.05,
            "optimizer": "sgd",
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 5e-4,
            "schedule": "onecycle",
            "label_smoothing": 0.0,
            "val_size": 500,
            "train_subset": 1000,
            "test_subset": 1000,
            "resume_epochs": 1,
            "plain_epochs": 1,
            "compile": False,
        },
        "quick": {
            "epochs": 8,
            "epochs_max": 8,
            "batch_size": 128,
            "lr": 0.2,
            "optimizer": "sgd",
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 5e-4,
            "schedule": "onecycle",
            "label_smoothing": 0.0,
            "val_size": 5000,
            "train_subset": None,
            "test_subset": None,
            "resume_epochs": 4,
            "plain_epochs": 2,
            "compile": False,
        },
        "full": {
            # epochs: what fitted the 80 s budget of the GPU benchmark on an H200 (1.07 s per epoch);
            # benchmarks/gpu_full_results.py picks it from the measured speed, at most epochs_max.
            "epochs": 74,
            "epochs_max": 100,
            "batch_size": 512,
            "lr": 0.4,
            "optimizer": "sgd",
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 5e-4,
            "schedule": "onecycle",
            "label_smoothing": 0.1,
            "val_size": 5000,
            "train_subset": None,
            "test_subset": None,
            "resume_epochs": 30,
            "plain_epochs": 60,
            "compile": True,
        },
    },
    "04_cnn_vs_rnn": {
        "smoke": {
            "epochs": 1,
            "batch_size": 128,
            "train_subset": 2000,
            "test_subset": 1000,
            "val_size": 500,
            "hidden_size": 64,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "schedule": "onecycle",
            "lr": 3e-3,
            "grad_clip": 1.0,
            "lstm_lr": 3e-3,
            "gru_lr": 3e-3,
            "rnn_lr": 1e-3,
        },
        "quick": {
            "epochs": 2,
            "batch_size": 128,
            "train_subset": None,
            "test_subset": None,
            "val_size": 5000,
            "hidden_size": 128,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "schedule": "onecycle",
            "lr": 3e-3,
            "grad_clip": 1.0,
            "lstm_lr": 3e-3,
            "gru_lr": 3e-3,
            "rnn_lr": 1e-3,
        },
        "full": {
            "epochs": 12,
            "batch_size": 256,
            "train_subset": None,
            "test_subset": None,
            "val_size": 5000,
            "hidden_size": 128,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "schedule": "onecycle",
            "lr": 3e-3,
            "grad_clip": 1.0,
            "lstm_lr": 3e-3,
            "gru_lr": 3e-3,
            "rnn_lr": 1e-3,
        },
    },
}


def training_options(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The settings in ``values`` that :func:`course_utils.training.fit` takes.

    Args:
        values: one profile's settings, e.g. ``RECIPES["04_cnn_vs_rnn"]["full"]``.
        prefix: a model's own values first: with ``prefix="lstm_"``, ``lstm_lr`` wins over ``lr``.

    Returns:
        ``{name: value}`` for the names that are fields of ``TrainConfig``.
    """
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
