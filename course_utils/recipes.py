"""The settings of every notebook in every profile, in one place.

Each entry is ``RECIPES[notebook][profile] -> {setting: value}``. Names that are fields of
:class:`course_utils.training.TrainConfig` (``epochs``, ``lr``, ``schedule``, …) go to
:func:`course_utils.training.fit`; the rest (``batch_size``, ``val_size``,
``train_subset``, …) go to :func:`course_utils.data.make_batches` or the notebook itself.
A prefixed name such as ``mlp_lr`` is the MLP's own value of ``lr``
(see :meth:`course_utils.profiles.RunSettings.train_config`).

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
            "epochs": 1, "batch_size": 64, "lr": 2e-3, "optimizer": "adamw", "weight_decay": 0.01,
            "schedule": "onecycle", "val_size": 1000, "train_subset": 3000, "test_subset": 0,
        },
        "quick": {
            "epochs": 3, "batch_size": 128, "lr": 3e-3, "optimizer": "adamw", "weight_decay": 0.01,
            "schedule": "onecycle", "val_size": 5000, "train_subset": 0, "test_subset": 0,
        },
        "full": {
            "epochs": 12, "batch_size": 512, "lr": 6e-3, "optimizer": "adamw", "weight_decay": 0.01,
            "schedule": "onecycle", "val_size": 5000, "train_subset": 0, "test_subset": 0,
        },
    },
    "03_resnet20_cifar10": {
        "smoke": {
            "epochs": 1, "batch_size": 64, "lr": 0.05, "optimizer": "sgd", "weight_decay": 5e-4,
            "schedule": "onecycle", "label_smoothing": 0.0, "val_size": 500, "train_subset": 1000,
            "test_subset": 1000, "resume_epochs": 1, "plain_epochs": 1,
        },
        "quick": {
            "epochs": 8, "batch_size": 128, "lr": 0.2, "optimizer": "sgd", "weight_decay": 5e-4,
            "schedule": "onecycle", "label_smoothing": 0.0, "val_size": 5000, "train_subset": 0,
            "test_subset": 0, "resume_epochs": 4, "plain_epochs": 2,
        },
        "full": {
            "epochs": 60, "batch_size": 512, "lr": 0.8, "optimizer": "sgd", "weight_decay": 5e-4,
            "schedule": "onecycle", "label_smoothing": 0.1, "val_size": 5000, "train_subset": 0,
            "test_subset": 0, "resume_epochs": 30, "plain_epochs": 60,
        },
    },
    "04_cnn_vs_rnn": {
        "smoke": {"epochs": 1, "batch_size": 128, "train_subset": 2000, "test_subset": 1000, "val_size": 0},
        "quick": {"epochs": 2, "batch_size": 128, "train_subset": 0, "test_subset": 0, "val_size": 0},
        "full": {"epochs": 10, "batch_size": 256, "train_subset": 0, "test_subset": 0, "val_size": 0},
    },
}
