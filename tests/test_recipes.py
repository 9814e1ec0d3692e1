"""The recipe tables: a base plus what each profile changes, and the checks kept apart."""

import pytest

from course_utils.recipes import CHECKS, CONCRETE_PROFILES, RECIPES, checks, recipe

# Every setting and check as it was before the tables were split into a base and what each
# profile changes (issue 14), as (smoke, quick, full). A value changed on purpose changes here too.
BEFORE_THE_SPLIT = {
    "01_concepts": {
        "hidden_size": (64, 64, 64),
        "gradient_images": (64, 64, 64),
        "shift_images": (1000, 1000, 1000),
    },
    "02_lenet5_mnist": {
        "epochs": (1, 4, 12),
        "batch_size": (64, 128, 512),
        "lr": (0.002, 0.003, 0.006),
        "optimizer": ("adamw", "adamw", "adamw"),
        "weight_decay": (0.01, 0.01, 0.01),
        "schedule": ("onecycle", "onecycle", "onecycle"),
        "val_size": (1000, 5000, 5000),
        "train_subset": (3000, None, None),
        "test_subset": (None, None, None),
        "min_test_accuracy": (0.6, 0.985, 0.99),
        "mlp_min_test_accuracy": (0.6, 0.95, 0.97),
        "lenet_beats_mlp": (False, True, True),
    },
    "03_resnet20_cifar10": {
        "epochs": (2, 10, 74),
        "epochs_max": (2, 10, 100),
        "batch_size": (32, 128, 512),
        "lr": (0.1, 0.2, 0.4),
        "optimizer": ("sgd", "sgd", "sgd"),
        "momentum": (0.9, 0.9, 0.9),
        "nesterov": (True, True, True),
        "weight_decay": (0.0005, 0.0005, 0.0005),
        "schedule": ("onecycle", "onecycle", "onecycle"),
        "label_smoothing": (0.0, 0.0, 0.1),
        "val_size": (500, 5000, 5000),
        "train_subset": (1000, None, None),
        "test_subset": (1000, None, None),
        "resume_epochs": (1, 5, 30),
        "plain_epochs": (1, 3, 60),
        "plain_train_subset": (1000, 10000, None),
        "plain_depths": ([20], [20], [20, 56]),
        "drop_last": (True, True, True),
        "compile": (False, False, True),
        "min_test_accuracy": (0.15, 0.8, 0.9125),
        "min_comparison_val_accuracy": (0.12, 0.35, 0.75),
        "residual_ahead_of_plain": (False, True, True),  # added after the split, with its assertion
    },
    "04_cnn_vs_rnn": {
        # Rewritten with issue 15 (the budget rule, CIFAR-10 under it, the sequence tasks).
        "train_subset": (2000, None, None),
        "test_subset": (1000, None, None),
        "val_size": (500, 5000, 5000),
        "hidden_size": (128, 128, 128),
        "optimizer": ("adamw", "adamw", "adamw"),
        "weight_decay": (0.01, 0.01, 0.01),
        "schedule": ("onecycle", "onecycle", "onecycle"),
        "lr": (0.003, 0.003, 0.003),
        "grad_clip": (1.0, 1.0, 1.0),
        "mixed_precision": ("auto", "auto", "auto"),
        "mlp_lr": (0.004, 0.004, 0.004),
        "lenet5_lr": (0.004, 0.004, 0.004),
        "rnn_lr": (0.002, 0.002, 0.002),
        "lstm_lr": (0.008, 0.008, 0.008),
        "gru_lr": (0.008, 0.008, 0.008),
        "equal_time_reference": ("LeNet-5", "LeNet-5", "LeNet-5"),
        "max_shift": (4, 4, 4),
        "cifar_epochs": (1, 2, 30),
        "cifar_lr": (0.004, 0.004, 0.004),
        "cifar_hidden_size": (128, 128, 128),
        "cifar_train_subset": (1000, 10000, None),
        "cifar_test_subset": (500, None, None),
        "cifar_val_size": (500, 5000, 5000),
        "resnet_optimizer": ("sgd", "sgd", "sgd"),
        "resnet_lr": (0.1, 0.1, 0.1),
        "resnet_weight_decay": (0.0005, 0.0005, 0.0005),
        "resnet_grad_clip": (None, None, None),
        "sequence_lr_grid": (
            (0.001, 0.003, 0.01, 0.03),
            (0.001, 0.003, 0.01, 0.03),
            (0.001, 0.003, 0.01, 0.03),
        ),
        "sequence_select_lr": (False, False, True),
        "epochs": (1, 3, 12),
        "batch_size": (64, 128, 256),
        "latency_repeats": (5, 20, 50),
        "cifar_batch_size": (32, 128, 256),
        "max_mlp_permutation_gap": (0.02, 0.005, 0.005),
        "comparisons": (False, True, True),
        "max_adding_solved_loss_ratio": (100.0, 0.05, 0.05),
        "min_adding_rnn_loss_ratio": (0.0, 0.5, 0.5),
        "min_copy_tcn_accuracy": (0.0, 0.95, 0.95),
        "max_copy_recurrent_accuracy": (1.0, 0.6, 1.0),
        "min_seq_mnist_tcn_accuracy": (0.0, 0.85, 0.95),
        "min_reach_advantage": (0.0, 10.0, 10.0),
        "resnet_wins_cifar_equal_time": (True, False, True),
        "min_lenet5_accuracy": (0.5, 0.985, 0.99),
        "min_mlp_accuracy": (0.5, 0.96, 0.97),
        "min_row_rnn_accuracy": (0.2, 0.9, 0.95),
        "min_row_lstm_accuracy": (0.2, 0.98, 0.985),
        "min_row_gru_accuracy": (0.2, 0.98, 0.985),
        "min_cifar_rnn_accuracy": (0.1, 0.3, 0.5),
        "min_cifar_resnet_accuracy": (0.1, 0.35, 0.85),
    },
}


# Settings that are tables themselves, checked against their benchmark records instead
# (tests/test_sequence_records.py, tests/test_sequences.py).
NESTED = {"04_cnn_vs_rnn": ("sequence_tasks", "sequence_lrs")}


# --- the tables ------------------------------------------------------------------------------------


def test_recipes_and_checks_keep_every_value_of_the_flat_tables():
    assert set(RECIPES) == set(CHECKS) == set(BEFORE_THE_SPLIT)
    for notebook, table in BEFORE_THE_SPLIT.items():
        for index, profile in enumerate(CONCRETE_PROFILES):
            settings, thresholds = recipe(notebook, profile), checks(notebook, profile)
            assert not set(settings) & set(thresholds), f"{notebook}: a name is both a setting and a check"
            merged = {**settings, **thresholds}
            merged = {name: value for name, value in merged.items() if name not in NESTED.get(notebook, ())}
            expected = {name: values[index] for name, values in table.items()}
            assert merged == expected, (notebook, profile)
            # == alone would let 1 stand for True or 1.0: the types must be the same too.
            assert {n: type(v) for n, v in merged.items()} == {n: type(v) for n, v in expected.items()}


BOOLEAN_CHECKS = ("lenet_beats_mlp", "residual_ahead_of_plain", "comparisons", "resnet_wins_cifar_equal_time")


def test_checks_are_what_the_notebooks_assert_and_nothing_else():
    for notebook in RECIPES:
        for profile in CONCRETE_PROFILES:
            for name in checks(notebook, profile):
                assert name.startswith(("min_", "max_")) or "_min_" in name or name in BOOLEAN_CHECKS, name
            for name in recipe(notebook, profile):
                assert not name.startswith("min_") and "_min_" not in name, f"{name} looks like a check"


@pytest.mark.parametrize("table", [RECIPES, CHECKS], ids=["RECIPES", "CHECKS"])
def test_every_entry_is_a_base_plus_changes_that_give_every_profile_the_same_names(table):
    for notebook, entry in table.items():
        assert set(entry) <= {"base", *CONCRETE_PROFILES}, f"{notebook}: {sorted(entry)}"
        base = entry.get("base", {})
        names = [set(base) | set(entry.get(profile, {})) for profile in CONCRETE_PROFILES]
        assert names[0] == names[1] == names[2], f"{notebook}: the profiles set different names"
        for profile in CONCRETE_PROFILES:
            for name, value in entry.get(profile, {}).items():
                if name in base:
                    assert value != base[name] or type(value) is not type(base[name]), (
                        f"{notebook}/{profile}: {name} repeats the base's value"
                    )


def test_recipe_returns_a_copy_and_names_what_is_unknown():
    depths = recipe("03_resnet20_cifar10", "quick")["plain_depths"]
    depths.append(110)
    assert recipe("03_resnet20_cifar10", "quick")["plain_depths"] == [20]
    with pytest.raises(KeyError, match="no recipe for notebook 'lenet'; known: 01_concepts"):
        recipe("lenet", "quick")
    with pytest.raises(KeyError, match="no profile 'auto'; the profiles are smoke, quick, full"):
        checks("02_lenet5_mnist", "auto")


def test_a_recipe_is_a_fresh_copy_nested_tables_included():
    settings = recipe("04_cnn_vs_rnn", "quick")
    settings["sequence_tasks"]["adding"]["steps"] = 1
    settings["sequence_lrs"]["adding"]["TCN"] = 99.0
    again = recipe("04_cnn_vs_rnn", "quick")
    assert again["sequence_tasks"]["adding"]["steps"] == 800
    assert again["sequence_lrs"]["adding"]["TCN"] == 1e-2
    # The tasks that share split sizes (course_utils.recipes._SYNTHETIC_SPLITS) do not share a dict.
    assert again["sequence_tasks"]["adding"] is not again["sequence_tasks"]["copy"]
