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

from typing import Any

#: The concrete profiles, from the smallest run to the real one.
CONCRETE_PROFILES = ("smoke", "quick", "full")

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
        # Every MNIST model trains with the same data, epochs, batch size, optimiser, schedule,
        # clipping and precision; only the peak learning rate is its own (lenet5_lr, mlp_lr,
        # rnn_lr, lstm_lr, gru_lr, chosen on the validation set). hidden_size: the row RNNs.
        # max_shift: test digits shifted by 0..max_shift pixels; latency_repeats: timed forward
        # passes per latency. pixel_*: the 784-step pixel-by-pixel RNN and LSTM, trained only where
        # pixel_train is True (full, on a GPU); smoke and quick only measure the gradient at
        # initialisation on reach_images digits and time one step. cifar_*: the row LSTM on
        # CIFAR-10 (32 steps of 96 values); resnet_*: ResNet-20's own settings when notebook 03
        # left no checkpoint and it is trained here for cifar_epochs.
        # The full values of the row RNNs reached LSTM 99.00 %, GRU 99.09 %, RNN 97.14 % on an H200;
        # lenet5_lr / mlp_lr at full settings reached 99.24 % / 98.09 % on a CPU, the CIFAR-10 row
        # LSTM 62.58 % in 30 epochs. The pixel_* full values have not run on a GPU yet: on a CPU a
        # 3-epoch pixel LSTM collapsed to chance at a peak lr of 1e-3 and did not at 5e-4 (46 %).
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
            "lstm_lr": 3e-3,
            "gru_lr": 3e-3,
            "rnn_lr": 2e-3,
            "lenet5_lr": 6e-3,
            "mlp_lr": 4e-3,
            "max_shift": 4,
            "pixel_train": False,
            "pixel_epochs": 20,
            "pixel_batch_size": 128,
            "pixel_lr": 5e-4,
            "pixel_hidden_size": 128,
            "pixel_train_subset": None,
            "pixel_test_subset": None,
            "pixel_mixed_precision": "fp32",
            "reach_images": 64,
            "cifar_epochs": 2,
            "cifar_lr": 3e-3,
            "cifar_hidden_size": 128,
            "cifar_train_subset": None,
            "cifar_test_subset": None,
            "cifar_val_size": 5000,
            "resnet_optimizer": "sgd",
            "resnet_lr": 0.2,
            "resnet_weight_decay": 5e-4,
            "resnet_grad_clip": None,
        },
        "smoke": {
            "epochs": 1,
            "batch_size": 64,
            "train_subset": 2000,
            "test_subset": 1000,
            "val_size": 500,
            "latency_repeats": 5,
            "pixel_epochs": 1,
            "pixel_batch_size": 32,
            "pixel_train_subset": 1000,
            "pixel_test_subset": 500,
            "reach_images": 32,
            "cifar_batch_size": 32,
            "cifar_train_subset": 1000,
            "cifar_test_subset": 500,
            "cifar_val_size": 500,
            "resnet_lr": 0.05,
        },
        "quick": {"epochs": 3, "batch_size": 128, "latency_repeats": 20, "cifar_batch_size": 128},
        "full": {
            "epochs": 12,
            "batch_size": 256,
            "rnn_lr": 1e-3,
            "latency_repeats": 50,
            "pixel_train": True,
            "cifar_epochs": 30,
            "cifar_batch_size": 256,
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
        # min_*: the test accuracy of each model (min_cifar_resnet_accuracy only for a ResNet-20
        # trained here, min_pixel_lstm_accuracy only where the pixel LSTM trains);
        # max_mlp_permutation_gap: how far apart the MLP's accuracies on original and permuted
        # pixels may be (the MLP does not see the pixel order, so only noise separates them).
        "base": {"min_pixel_lstm_accuracy": 0.8, "max_mlp_permutation_gap": 0.005},
        "smoke": {
            "min_lenet5_accuracy": 0.5,
            "min_mlp_accuracy": 0.5,
            "min_row_rnn_accuracy": 0.2,
            "min_row_lstm_accuracy": 0.2,
            "min_row_gru_accuracy": 0.2,
            "min_pixel_lstm_accuracy": 0.0,
            "min_cifar_rnn_accuracy": 0.15,
            "min_cifar_resnet_accuracy": 0.15,
            "max_mlp_permutation_gap": 0.02,
        },
        "quick": {
            "min_lenet5_accuracy": 0.985,
            "min_mlp_accuracy": 0.96,
            "min_row_rnn_accuracy": 0.9,
            "min_row_lstm_accuracy": 0.98,
            "min_row_gru_accuracy": 0.98,
            "min_cifar_rnn_accuracy": 0.35,
            "min_cifar_resnet_accuracy": 0.45,
        },
        "full": {
            "min_lenet5_accuracy": 0.99,
            "min_mlp_accuracy": 0.97,
            "min_row_rnn_accuracy": 0.95,
            "min_row_lstm_accuracy": 0.985,
            "min_row_gru_accuracy": 0.985,
            "min_cifar_rnn_accuracy": 0.5,
            "min_cifar_resnet_accuracy": 0.85,
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
    # A fresh dict (and fresh lists) every time: a caller that changes it changes no table.
    merged = {**entry.get("base", {}), **entry.get(profile, {})}
    return {name: list(value) if isinstance(value, list) else value for name, value in merged.items()}


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
