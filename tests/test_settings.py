"""course_utils.settings: profiles, the recipes, the one check of parameters, and where a run writes."""

import copy
import encodings.ascii  # noqa: F401  (for the children of as_user, who may not read Python's own library)
import json
import math
import os
import pickle
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from course_utils import settings
from course_utils.data import CIFAR10_CLASSES, ImageDataset
from course_utils.models import TCN
from course_utils.sequences import COPY_MEMORY_LENGTH
from course_utils.settings import (
    PROFILES,
    RECIPES,
    RunSettings,
    SettingsError,
    check_parameters,
    configure,
    output_root,
    person_name,
    recipe,
    resolve_profile,
)
from course_utils.training import TrainConfig

CONCRETE = ("smoke", "quick", "full")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No profile from the environment, and no run writes into the checkout's outputs/."""
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path / "outputs"))


def no_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


# --- profiles ----------------------------------------------------------------------------------------


def test_the_profiles():
    assert list(PROFILES) == ["auto", "smoke", "quick", "full"]


def test_an_explicit_profile_wins_and_auto_reads_course_profile(monkeypatch):
    assert resolve_profile(" Quick ") == "quick"
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert resolve_profile("quick") == "quick" and resolve_profile("full") == "full"
    assert resolve_profile("auto") == "smoke"
    assert resolve_profile("auto", torch.device("cuda")) == "smoke"  # the environment wins over the device


def gpu(monkeypatch, capability: tuple[int, int]) -> None:
    """Pretend this machine has a CUDA GPU of the given compute capability."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)


@pytest.mark.parametrize(
    ("capability", "profile"), [((7, 5), "quick"), ((7, 0), "quick"), ((8, 0), "full"), ((9, 0), "full")]
)  # T4, V100: quick, full's settings would take many times longer; A100, H100: full
def test_auto_means_full_on_a_recent_gpu_and_quick_elsewhere(monkeypatch, capability, profile):
    assert resolve_profile("auto", torch.device("cpu")) == "quick"
    assert resolve_profile("auto", torch.device("mps")) == "quick"
    gpu(monkeypatch, capability)
    assert resolve_profile("auto", torch.device("cuda")) == profile
    assert resolve_profile("auto") == profile  # no device given: the one auto picks
    no_cuda(monkeypatch)
    assert resolve_profile("auto") == "quick"


def test_auto_follows_the_device_the_run_asked_for(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine, a run on its CPU
    run = configure("02_lenet5_mnist", "auto", device="cpu")
    assert (run.profile, run.requested_profile) == ("quick", "auto")
    assert run.epochs == recipe("02_lenet5_mnist", "quick")[0]["epochs"]
    assert "quick (from 'auto')" in str(run)


@pytest.mark.parametrize("environment", ["huge", "auto", "Quick!"])
def test_bad_profiles_are_refused(monkeypatch, environment):
    with pytest.raises(SettingsError, match="PROFILE must be one of auto, smoke, quick, full, got 'fast'"):
        resolve_profile("fast")
    monkeypatch.setenv("COURSE_PROFILE", environment)
    assert resolve_profile("quick") == "quick"  # only auto reads it
    with pytest.raises(SettingsError, match="COURSE_PROFILE=.* is not a profile; use smoke, quick or full"):
        resolve_profile("auto")
    with pytest.raises(SettingsError, match="COURSE_PROFILE"):
        configure("02_lenet5_mnist", "auto", device="cpu")


# --- the recipes ---------------------------------------------------------------------------------------


def nested_items(value: Any, path: tuple = ()):
    """Every leaf of nested dicts and lists, as (path of keys, value)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from nested_items(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from nested_items(item, (*path, index))
    else:
        yield path, value


def test_every_notebook_has_its_datasets_settings_and_checks():
    notebooks = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert set(notebooks) <= set(RECIPES), f"notebooks without a recipe: {set(notebooks) - set(RECIPES)}"
    for notebook, entry in RECIPES.items():
        assert set(entry) == {"datasets", "settings", "checks"}, notebook
        assert entry["datasets"] and set(entry["datasets"]) <= {"mnist", "cifar10"}, notebook
        for table in (entry["settings"], entry["checks"]):
            assert set(table) <= {"base", *CONCRETE}, f"{notebook}: {sorted(table)}"


@pytest.mark.parametrize("notebook", RECIPES)
def test_every_profile_has_the_same_names_and_no_setting_is_also_a_check(notebook):
    merged = {profile: recipe(notebook, profile) for profile in CONCRETE}
    for part, kind in enumerate(("settings", "checks")):
        names = {profile: set(merged[profile][part]) for profile in CONCRETE}
        assert names["smoke"] == names["quick"] == names["full"], f"{notebook}: the profiles set other {kind}"
    for profile, (values, checks) in merged.items():
        assert not set(values) & set(checks), f"{notebook}/{profile}: a name is a setting and a check"


@pytest.mark.parametrize("notebook", RECIPES)
def test_a_profile_changes_only_what_differs_from_the_base(notebook):
    for kind in ("settings", "checks"):
        table = RECIPES[notebook][kind]
        base = table.get("base", {})
        for profile in CONCRETE:
            for name, value in table.get(profile, {}).items():
                if name in base:
                    assert value != base[name] or type(value) is not type(base[name]), (
                        f"{notebook}/{profile}: {name} repeats the base's value"
                    )


def test_no_setting_is_hidden_behind_an_attribute_of_run_settings():
    own = {name for name in dir(RunSettings) if not name.startswith("_")} | set(
        RunSettings.__dataclass_fields__
    )
    for notebook in RECIPES:
        for profile in CONCRETE:
            hidden = own & set(recipe(notebook, profile)[0])
            assert not hidden, f"{notebook}: run.{hidden.pop()} would not read the setting"


@pytest.mark.parametrize("notebook", RECIPES)
def test_checks_are_floors_ceilings_or_claims_and_settings_are_none_of_them(notebook):
    for profile in CONCRETE:
        values, checks = recipe(notebook, profile)
        for name, value in checks.items():
            if isinstance(value, bool):
                continue  # whether a claim (a ranking) is enforced
            if name == "seed_spread":  # per comparison and model: the margin a ranking must exceed
                spreads = [v for models in value.values() for v in models.values()]
                assert all(isinstance(v, float) and 0 <= v < 0.1 for v in spreads), (notebook, spreads)
                continue
            assert "min_" in name or "max_" in name, f"{notebook}: the check {name} is no floor or ceiling"
            assert isinstance(value, float) and math.isfinite(value) and value >= 0, (notebook, name, value)
        assert not [name for name in values if name.startswith("min_")], f"{notebook}: a check among settings"


@pytest.mark.parametrize("profile", CONCRETE)
@pytest.mark.parametrize("notebook", RECIPES)
def test_counts_are_positive_and_rates_positive_finite_numbers(notebook, profile):
    values, _ = recipe(notebook, profile)
    for path, value in nested_items(values):
        where = f"{notebook}/{profile}: {'.'.join(map(str, path))} = {value!r}"
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if isinstance(value, int):  # epochs, sizes, steps, levels, repeats: counts
            assert value >= 1, where
        else:
            assert isinstance(value, float) and math.isfinite(value) and value >= 0, where
        rate = path[-1] == "lr" or str(path[0]).endswith(("learning_rates", "lr_grid"))
        assert not rate or (isinstance(value, float) and value > 0), where


def test_notebook_03_interrupts_its_run_before_the_end():
    for profile in CONCRETE:
        values, _ = recipe("03_resnet20_cifar10", profile)
        assert 1 <= values["resume_epochs"] < values["epochs"], profile
        assert values["plain_depths"][0] == 20, profile  # the comparison's first depth is ResNet-20's


def test_the_full_resnet20_recipe_is_the_run_the_gpu_benchmark_recorded():
    # benchmarks/gpu_full_results.py chose the full epochs that fit its time budget; the notebook's full
    # floor (the paper's 91.25 %) must be what that recorded run reached.
    record = json.loads((ROOT / "benchmarks" / "results" / "gpu_results_cifar.json").read_text())
    values, checks = recipe("03_resnet20_cifar10", "full")
    assert values["epochs"] == record["resnet20_epochs_chosen"]["epochs"] == record["resnet20"]["epochs"]
    assert record["resnet20"]["test_accuracy"] >= checks["min_test_accuracy"]


def test_notebook_04_has_a_rate_for_each_model_and_its_other_training_recipes_are_train_configs():
    values, _ = recipe("04_cnn_vs_rnn", "quick")
    assert set(values["learning_rates"]) == {"MLP", "LeNet-5", "row RNN", "row LSTM", "row GRU"}
    assert values["equal_time_reference"] in values["learning_rates"]
    assert set(values["cifar_learning_rates"]) == {"row LSTM", "ResNet-20"}
    config = TrainConfig(**{"epochs": 1, "lr": 0.1, **values["resnet_training"]})  # only TrainConfig fields
    assert config.optimizer == "sgd"
    sequences, _ = recipe("05_sequences_attention", "quick")
    assert TrainConfig(**{"epochs": 1, "lr": 0.1, **sequences["training"]}).optimizer == "adamw"


def sequence_length(task: dict[str, Any]) -> int:
    """The number of steps T of a sequence task, from its recipe."""
    if task["task"] == "adding":
        return task["length"]
    if task["task"] == "copy":
        return task["blank_length"] + 2 * COPY_MEMORY_LENGTH
    return task["side"] ** 2


@pytest.mark.parametrize("profile", CONCRETE)
def test_each_sequence_task_is_within_the_receptive_field_of_its_tcn(profile):
    tasks = recipe("05_sequences_attention", profile)[0]["tasks"]
    assert {"adding", "copy", "mnist"} <= set(tasks), profile
    for name, task in tasks.items():
        levels, k = task["tcn_levels"], task["tcn_kernel_size"]
        field = 1 + 2 * (k - 1) * (2**levels - 1)
        assert TCN(1, 1, [2] * levels, k).receptive_field == field
        assert field >= sequence_length(task), (
            f"{profile}/{name}: the TCN sees {field} of {sequence_length(task)} steps"
        )


@pytest.mark.parametrize("profile", CONCRETE)
def test_the_sequence_learning_rates_come_from_the_grid_unless_chosen_as_the_notebook_runs(profile):
    values, _ = recipe("05_sequences_attention", profile)
    grid = values["lr_grid"]
    assert grid == sorted(set(grid)) and len(grid) >= 2
    if values["select_learning_rates"]:
        return
    assert set(values["learning_rates"]) == set(values["tasks"]), profile
    for task, rates in values["learning_rates"].items():
        assert set(rates) == {"TCN", "LSTM", "GRU", "RNN"}, task
        assert set(rates.values()) <= set(grid), f"{task}: a rate off the grid {grid}: {rates}"


def test_only_full_chooses_its_sequence_learning_rates_as_it_runs():
    chosen = {p: recipe("05_sequences_attention", p)[0]["select_learning_rates"] for p in CONCRETE}
    assert chosen == {"smoke": False, "quick": False, "full": True}


def test_a_recipe_is_a_fresh_copy_nested_tables_included():
    values, checks = recipe("05_sequences_attention", "quick")
    values["tasks"]["adding"]["epochs"] = 1
    values["learning_rates"]["adding"]["TCN"] = 99.0
    checks["min_trained_gated_reach"] = 0.0
    again, checks_again = recipe("05_sequences_attention", "quick")
    assert again["tasks"]["adding"]["epochs"] != 1
    assert again["learning_rates"]["adding"]["TCN"] != 99.0
    assert checks_again["min_trained_gated_reach"] > 0
    # Tasks that share their split sizes (settings._SYNTHETIC) do not share a dict.
    assert again["tasks"]["adding"] is not again["tasks"]["copy"]


def test_recipe_names_what_is_unknown():
    with pytest.raises(SettingsError, match="no recipe for 'lenet'; the notebooks are 01_concepts, "):
        recipe("lenet", "quick")
    for profile in ("auto", "fast"):
        with pytest.raises(SettingsError, match=f"no profile {profile!r}.*smoke, quick, full"):
            recipe("02_lenet5_mnist", profile)


# --- check_parameters: the one check of a parameter's value --------------------------------------------


@pytest.mark.parametrize(
    ("notebook", "parameters", "message"),
    [
        (
            "02_lenet5_mnist",
            {"EPOCHS": 0},
            r"EPOCHS must be a whole number >= 1 \(None: the profile's\), got 0",
        ),
        ("02_lenet5_mnist", {"EPOCHS": 2.5}, "EPOCHS must be a whole number >= 1"),
        ("02_lenet5_mnist", {"EPOCHS": True}, "EPOCHS must be a whole number >= 1 .*got True"),
        ("02_lenet5_mnist", {"BATCH_SIZE": "64"}, "BATCH_SIZE must be a whole number >= 1"),
        ("02_lenet5_mnist", {"TRAIN_SUBSET": -5}, "TRAIN_SUBSET must be a whole number >= 1"),
        ("02_lenet5_mnist", {"LR": -1.0}, "LR must be a finite number > 0, got -1.0"),
        ("02_lenet5_mnist", {"LR": 0}, "LR must be a finite number > 0, got 0"),
        ("02_lenet5_mnist", {"LR": float("1e999")}, r"LR must be a finite number > 0, got inf \(1e999 reads"),
        ("02_lenet5_mnist", {"LR": float("nan")}, "LR must be a finite number > 0, got nan"),
        ("02_lenet5_mnist", {"LR": True}, "LR must be a finite number > 0, got True"),
        ("02_lenet5_mnist", {"LR": "0.1"}, "LR must be a finite number > 0, got '0.1'"),
        ("02_lenet5_mnist", {"WEIGHT_DECAY": float("-inf")}, "WEIGHT_DECAY must be a finite number > 0"),
        ("02_lenet5_mnist", {"OPTIMIZER": 3}, "OPTIMIZER must be a text like the profile's 'adamw': 3"),
        ("03_resnet20_cifar10", {"COMPILE": 1}, "COMPILE must be True or False, got 1"),
        ("03_resnet20_cifar10", {"DROP_LAST": "yes"}, "DROP_LAST must be True or False"),
        (
            "03_resnet20_cifar10",
            {"PLAIN_DEPTHS": 20},
            r"PLAIN_DEPTHS must be a list like the profile's \[20\]",
        ),
        ("04_cnn_vs_rnn", {"LEARNING_RATES": 0.01}, "LEARNING_RATES must be a dict like the profile's"),
        ("02_lenet5_mnist", {"SEED": -3}, "SEED must be a whole number >= 0, got -3"),
        ("02_lenet5_mnist", {"SEED": 1.5}, "SEED must be a whole number >= 0"),
        ("02_lenet5_mnist", {"SEED": True}, "SEED must be a whole number >= 0"),
        ("02_lenet5_mnist", {"SEED": None}, "SEED must be a whole number >= 0"),
        ("02_lenet5_mnist", {"DEVICE": "tpu"}, "DEVICE: unknown device 'tpu'"),
        ("02_lenet5_mnist", {"DATA_DIR": 3}, "DATA_DIR must be the path of a folder"),
        ("02_lenet5_mnist", {"OUTPUT_DIR": ["a"]}, "OUTPUT_DIR must be the path of a folder"),
    ],
)
def test_a_value_that_cannot_be_used_is_refused_naming_the_parameter(notebook, parameters, message):
    with pytest.raises(SettingsError, match=message):
        check_parameters(notebook, "quick", parameters)


@pytest.mark.parametrize("value", [0.1, None])
def test_an_unknown_name_is_refused_with_what_is_accepted(value):
    with pytest.raises(
        SettingsError,
        match=r"02_lenet5_mnist has no parameter LEARNING_RATE; it accepts BATCH_SIZE, EPOCHS, .*LR, ",
    ):
        check_parameters("02_lenet5_mnist", "quick", {"LEARNING_RATE": value})
    with pytest.raises(SettingsError, match="has no parameter EPOCH; "):
        configure("02_lenet5_mnist", "quick", device="cpu", epoch=value)  # a misspelt keyword, even unset


@pytest.mark.parametrize("value", [0.5, None])
def test_a_check_given_as_a_parameter_is_refused(value):
    with pytest.raises(
        SettingsError, match="MIN_TEST_ACCURACY is what 02_lenet5_mnist checks, not a parameter"
    ):
        check_parameters("02_lenet5_mnist", "quick", {"MIN_TEST_ACCURACY": value})
    with pytest.raises(SettingsError, match="MIN_LENET5_ACCURACY is what 04_cnn_vs_rnn checks"):
        configure("04_cnn_vs_rnn", "quick", device="cpu", min_lenet5_accuracy=value)


def test_good_values_come_back_by_setting_name_and_none_keeps_the_profile_value(tmp_path):
    changed = check_parameters(
        "03_resnet20_cifar10",
        "quick",
        {"EPOCHS": 3, "lr": 1, "BATCH_SIZE": None, "Compile": True, "PLAIN_DEPTHS": [20, 32],
         "SEED": 7, "DEVICE": "cpu", "DATA_DIR": tmp_path, "OUTPUT_DIR": str(tmp_path), "PROFILE": "quick"},
    )  # fmt: skip
    assert changed == {"epochs": 3, "lr": 1.0, "compile": True, "plain_depths": [20, 32]}
    assert type(changed["lr"]) is float  # -p LR 1 is the number 1.0
    assert check_parameters("02_lenet5_mnist", "auto", {"TRAIN_SUBSET": 100}) == {"train_subset": 100}


def test_auto_is_the_profile_of_the_device_the_parameters_ask_for(monkeypatch):
    # A recipe whose full profile reads LR as a count: which profile was checked shows in the answer.
    toy = {"datasets": ["mnist"], "settings": {"base": {"lr": 0.1}, "full": {"lr": None}}, "checks": {}}
    monkeypatch.setitem(RECIPES, "toy", toy)
    gpu(monkeypatch, (9, 0))
    assert check_parameters("toy", "auto", {"DEVICE": "cpu", "LR": 0.5}) == {"lr": 0.5}  # quick on the CPU
    with pytest.raises(SettingsError, match="LR must be a whole number"):
        check_parameters("toy", "auto", {"LR": 0.5})  # full: the GPU that auto picks


def test_a_device_the_machine_lacks_is_refused(monkeypatch):
    no_cuda(monkeypatch)
    with pytest.raises(SettingsError, match="DEVICE: .*cuda"):
        check_parameters("02_lenet5_mnist", "quick", {"DEVICE": "cuda"})
    with pytest.raises(SettingsError, match="DEVICE: .*cuda"):
        configure("02_lenet5_mnist", "quick", device="cuda")


def test_configure_checks_its_parameters_before_anything():
    with pytest.raises(SettingsError, match="EPOCHS must be a whole number >= 1"):
        configure("02_lenet5_mnist", "quick", device="cpu", epochs=0)
    with pytest.raises(SettingsError, match="SEED must be"):
        configure("02_lenet5_mnist", "quick", device="cpu", seed=-1)
    with pytest.raises(SettingsError, match="no recipe for 'lenet'"):
        configure("lenet", "quick", device="cpu")


# --- configure and the settings as attributes -------------------------------------------------------------


def test_the_profile_gives_the_settings_and_a_parameter_replaces_one(tmp_path):
    run = configure("02_lenet5_mnist", "quick", device="cpu", seed=5, output_dir=tmp_path, epochs=7, lr=None)
    values, checks = recipe("02_lenet5_mnist", "quick")
    assert run.values == {**values, "epochs": 7} and run.overridden == ("epochs",)
    assert run.epochs == 7 and run.batch_size == values["batch_size"] and run.lr == values["lr"]
    assert run.checks == checks and isinstance(run.checks, dict)
    assert (run.notebook, run.profile, run.device, run.seed) == (
        "02_lenet5_mnist",
        "quick",
        torch.device("cpu"),
        5,
    )
    assert run.output_dir == tmp_path / "02_lenet5_mnist"


def test_none_keeps_the_profile_value():
    run = configure("02_lenet5_mnist", "smoke", device="cpu", epochs=None, lr=None, train_subset=None)
    assert run.values == recipe("02_lenet5_mnist", "smoke")[0] and run.overridden == ()


def test_the_data_folder_is_the_parameter_else_course_data_dir(monkeypatch, tmp_path):
    assert configure("01_concepts", "smoke", device="cpu", data_dir=tmp_path).data_dir == tmp_path
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    assert configure("01_concepts", "smoke", device="cpu").data_dir == tmp_path / "data"


def test_settings_are_attributes_and_an_unknown_name_lists_the_settings():
    run = configure("03_resnet20_cifar10", "smoke", device="cpu")
    assert run.plain_depths == [20] and run.drop_last is True and run.values["epochs"] == run.epochs
    with pytest.raises(
        AttributeError, match=r"03_resnet20_cifar10 has no setting 'epoch'; its settings: .*epochs"
    ):
        run.epoch  # noqa: B018
    with pytest.raises(AttributeError):
        run.epochs = 3  # frozen: a setting changes through a parameter, and is then marked


def test_run_settings_survive_copy_and_pickle():
    run = configure("02_lenet5_mnist", "smoke", device="cpu", lr=0.01)
    for twin in (copy.deepcopy(run), pickle.loads(pickle.dumps(run))):
        assert twin == run and twin.lr == 0.01 and twin.overridden == ("lr",)
        assert twin.checks["min_test_accuracy"] == run.checks["min_test_accuracy"]


# --- claims: strict for the profile's settings, notes when parameters were changed -------------------------


def test_a_claim_that_fails_with_the_profile_settings_stops_the_notebook(tmp_path, capsys):
    run = configure("02_lenet5_mnist", "quick", device="cpu", seed=3, data_dir=tmp_path, output_dir=tmp_path)
    assert run.overridden == ()  # seed, device and folders are not training settings
    run.require(True, "LeNet-5 reaches 98.5 %")
    assert capsys.readouterr().out == "checked: LeNet-5 reaches 98.5 %\n"
    with pytest.raises(AssertionError) as caught:
        run.require(False, "LeNet-5 reaches 98.5 % on the test set")
    assert str(caught.value) == "LeNet-5 reaches 98.5 % on the test set"
    assert capsys.readouterr().out == ""


def test_a_claim_that_fails_after_a_parameter_changed_is_a_note(capsys):
    run = configure("02_lenet5_mnist", "quick", device="cpu", epochs=1, lr=1e-4)
    run.require(False, "LeNet-5 reaches 98.5 % on the test set")
    assert capsys.readouterr().out == (
        "note: LeNet-5 reaches 98.5 % on the test set — not enforced, because parameters were changed "
        "(EPOCHS, LR)\n"
    )
    run.require(True, "a claim that holds")
    assert capsys.readouterr().out == "checked: a claim that holds\n"


def test_a_claim_a_profile_does_not_enforce_is_only_printed_with_whether_it_held(capsys):
    run = configure("04_cnn_vs_rnn", "smoke", device="cpu")  # too short a run to rank models
    run.require(False, "LeNet-5 is the most accurate", enforce=False)
    run.require(True, "the TCN solves the copy task", enforce=False)
    assert capsys.readouterr().out == (
        "not checked in smoke: LeNet-5 is the most accurate (does not hold)\n"
        "not checked in smoke: the TCN solves the copy task (holds)\n"
    )


# --- what a run builds: training configurations and batches -----------------------------------------------


def test_train_config_takes_the_training_settings_and_the_run_device():
    run = configure("03_resnet20_cifar10", "quick", device="cpu")
    config = run.train_config(name="ResNet-20")
    fields = set(TrainConfig.__dataclass_fields__)
    assert {name: getattr(config, name) for name in run.values if name in fields} == {
        name: value for name, value in run.values.items() if name in fields
    }
    assert config.device == "cpu" and config.name == "ResNet-20"
    assert "val_size" in run.values and "plain_depths" in run.values  # settings of the run, not of fit
    assert run.train_config(lr=0.05, epochs=1).lr == 0.05
    assert run.train_config(device="cuda").device == "cuda"  # an explicit change still wins


def test_notebook_04_gives_each_model_its_rate_and_resnet_20_its_own_optimiser():
    run = configure("04_cnn_vs_rnn", "full", device="cpu")
    rnn = run.train_config(lr=run.learning_rates["row RNN"], name="row RNN")
    assert (rnn.lr, rnn.epochs, rnn.optimizer, rnn.grad_clip) == (
        run.learning_rates["row RNN"],
        run.epochs,
        run.optimizer,
        run.grad_clip,
    )
    resnet = run.train_config(
        **run.resnet_training, epochs=run.cifar_epochs, lr=run.cifar_learning_rates["ResNet-20"]
    )
    own = run.resnet_training  # its own optimiser, not the others' (the values are the recipe's)
    assert (resnet.optimizer, resnet.nesterov, resnet.grad_clip) == (own["optimizer"], own["nesterov"], None)
    assert resnet.optimizer != rnn.optimizer and resnet.epochs == run.cifar_epochs != run.epochs
    with pytest.raises(TypeError, match="lr"):
        run.train_config()  # 04 has no one rate: each model's is its own


def synthetic_cifar(num_train: int = 1600, num_test: int = 1100) -> ImageDataset:
    """A CIFAR-10-shaped dataset with balanced labels: enough images for the smoke recipes."""
    generator = torch.Generator().manual_seed(0)
    return ImageDataset(
        name="cifar10",
        x_train=torch.randint(0, 256, (num_train, 32, 32, 3), dtype=torch.uint8, generator=generator),
        y_train=torch.arange(num_train) % 10,
        x_test=torch.randint(0, 256, (num_test, 32, 32, 3), dtype=torch.uint8, generator=generator),
        y_test=torch.arange(num_test) % 10,
        classes=CIFAR10_CLASSES,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        path=Path("synthetic.npz"),
    )


def test_batches_have_the_recipe_sizes_and_a_change_wins():
    dataset = synthetic_cifar()
    run = configure("03_resnet20_cifar10", "smoke", device="cpu")  # batch 32, val 500, train and test 1000
    splits = run.batches(dataset)
    assert (splits.train.num_samples, splits.val.num_samples, splits.test.num_samples) == (
        run.train_subset,
        run.val_size,
        run.test_subset,
    )
    assert splits.train.batch_size == run.batch_size
    assert len(splits.train) == run.train_subset // run.batch_size  # the recipe's drop_last
    assert splits.train.device == run.device

    smaller = run.batches(dataset, train_subset=640, batch_size=64)
    assert smaller.train.num_samples == 640 and len(smaller.train) == 10 and smaller.val.num_samples == 500
    assert torch.equal(smaller.val.targets, splits.val.targets)  # the run's seed: the same validation images


def test_batches_of_notebook_04_cifar_models_take_their_own_sizes():
    run = configure("04_cnn_vs_rnn", "smoke", device="cpu")
    splits = run.batches(
        synthetic_cifar(),
        batch_size=run.cifar_batch_size,
        val_size=run.cifar_val_size,
        train_subset=run.cifar_train_subset,
        test_subset=run.cifar_test_subset,
    )
    assert (splits.train.num_samples, splits.val.num_samples, splits.test.num_samples) == (1000, 500, 500)
    assert len(splits.train) == math.ceil(1000 / run.cifar_batch_size)  # no drop_last in this recipe


# --- what a run writes and prints -------------------------------------------------------------------------


def test_metrics_are_written_with_notebook_profile_device_and_seed(tmp_path):
    run = configure("02_lenet5_mnist", "smoke", device="cpu", seed=4, output_dir=tmp_path)
    path = run.write_metrics({"model": "LeNet-5", "test_accuracy": 0.99, "parameters": 61706})
    assert path == tmp_path / "02_lenet5_mnist" / "metrics.json"
    metrics = json.loads(path.read_text())
    assert {k: metrics[k] for k in ("notebook", "profile", "device", "seed")} == {
        "notebook": "02_lenet5_mnist",
        "profile": "smoke",
        "device": "cpu",
        "seed": 4,
    }
    assert metrics["test_accuracy"] == 0.99 and metrics["model"] == "LeNet-5" and "written" in metrics


def test_each_call_gets_a_new_empty_checkpoint_folder(tmp_path):
    run = configure("03_resnet20_cifar10", "smoke", device="cpu", output_dir=tmp_path)
    earlier = tmp_path / "03_resnet20_cifar10" / "checkpoints" / "resnet20"
    earlier.mkdir(parents=True)
    (earlier / "last.pt").write_bytes(b"another run's checkpoint")

    first = run.new_checkpoint_dir("resnet20")
    second = run.new_checkpoint_dir("resnet20")  # a re-run of the cell, even within the same second
    for folder in (first, second):
        assert folder.is_dir() and list(folder.iterdir()) == []
        assert folder.parent == run.output_dir / "checkpoints"
        assert re.fullmatch(rf"resnet20-\d{{8}}-\d{{6}}-{os.getpid()}(-\d+)?", folder.name), folder.name
    assert first != second
    assert (earlier / "last.pt").read_bytes() == b"another run's checkpoint"  # nothing is deleted


def test_a_new_checkpoint_folder_clears_what_killed_runs_left_half_written_an_hour_ago(tmp_path):
    run = configure("03_resnet20_cifar10", "smoke", device="cpu", output_dir=tmp_path)
    killed = run.output_dir / "checkpoints" / "resnet20-20260101-120000-4242"  # a run killed while saving
    killed.mkdir(parents=True)
    old, recent = killed / ".last.pt.k3j2.tmp", killed / ".last.pt.x9q1.tmp"  # atomic_write's names
    for path in (old, recent, killed / "best.pt"):
        path.write_bytes(b"weights")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    run.new_checkpoint_dir("resnet20")
    assert not old.exists() and recent.exists(), "a recent one may be a running notebook's"
    assert (killed / "best.pt").exists()


def rows_of(text: str) -> dict[str, list[str]]:
    return {
        cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line.strip()) for line in text.splitlines())
    }


def test_printing_a_run_shows_its_settings_and_checks_with_paths_inside_the_checkout():
    run = configure("02_lenet5_mnist", "smoke", device="cpu", lr=0.01, output_dir=ROOT / "outputs" / "x")
    text = str(run)
    rows = rows_of(text)
    assert rows["profile"] == ["smoke"] and rows["device"] == ["cpu"] and rows["seed"] == ["0"]
    values, checks = recipe("02_lenet5_mnist", "smoke")
    assert rows["lr"] == ["0.01", "(set by parameter)"] and rows["epochs"] == [str(values["epochs"])]
    assert all(rows[name] == [str(value), "(check)"] for name, value in checks.items())
    assert rows["output dir"] == ["outputs/x/02_lenet5_mnist"] and str(ROOT) not in text


# --- where a run writes: a folder per person, or the one given --------------------------------------------


@pytest.fixture
def checkout(monkeypatch, tmp_path) -> Path:
    """A scratch checkout (its outputs/ is where people's folders go) and a scratch home, as ann."""
    root, home = tmp_path / "checkout", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    monkeypatch.setattr(settings, "project_root", lambda: root)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    monkeypatch.setattr(settings, "person_name", lambda: "ann")
    monkeypatch.delenv("COURSE_OUTPUT_DIR")
    return root


def as_person(monkeypatch, name: str) -> None:
    monkeypatch.setattr(settings, "person_name", lambda: name)


def deny_writing(monkeypatch, *folders: Path) -> None:
    """os.access says no to writing ``folders`` (chmod would not stop root)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) not in folders and real(path, mode))


def test_each_person_gets_an_output_folder_of_their_own(monkeypatch, checkout):
    assert output_root() == checkout / "outputs" / "ann" and (checkout / "outputs" / "ann").is_dir()
    ann = configure("03_resnet20_cifar10", "smoke", device="cpu")
    as_person(monkeypatch, "bob")
    bob = configure("03_resnet20_cifar10", "smoke", device="cpu")
    assert ann.output_dir == checkout / "outputs" / "ann" / "03_resnet20_cifar10"
    assert bob.output_dir == checkout / "outputs" / "bob" / "03_resnet20_cifar10"
    assert output_root() == output_root()  # again: the folder that is there is one's own


@pytest.mark.parametrize("outputs_exists", [True, False])
def test_where_the_checkout_may_not_be_written_the_folder_is_in_the_home(
    monkeypatch, checkout, outputs_exists
):
    if outputs_exists:
        (checkout / "outputs").mkdir()
    deny_writing(monkeypatch, checkout / "outputs", checkout)
    expected = Path.home() / "cnn-rnn-course" / "outputs" / "ann"
    assert output_root() == expected and expected.is_dir()
    assert not (checkout / "outputs" / "ann").exists()


@pytest.mark.parametrize("dangling", [False, True])
def test_a_person_folder_that_is_a_symbolic_link_is_refused(checkout, tmp_path, dangling):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (checkout / "outputs").mkdir()
    (checkout / "outputs" / "ann").symlink_to(elsewhere / "gone" if dangling else elsewhere)
    with pytest.raises(
        SettingsError, match="outputs/ann is a symbolic link: your outputs must be in a folder"
    ):
        output_root()
    with pytest.raises(SettingsError, match="set OUTPUT_DIR"):
        configure("02_lenet5_mnist", "smoke", device="cpu")
    assert list(elsewhere.iterdir()) == []


def test_a_person_folder_of_another_user_is_refused(monkeypatch, checkout):
    folder = checkout / "outputs" / "ann"
    folder.mkdir(parents=True)
    other = folder.stat().st_uid + 1
    monkeypatch.setattr(os, "getuid", lambda: other)  # someone else made outputs/ann first
    with pytest.raises(SettingsError, match="outputs/ann is another user’s folder"):
        output_root()


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o755], ids=oct)
def test_a_shared_outputs_that_others_may_write_without_the_sticky_bit_is_not_used(checkout, mode):
    (checkout / "outputs").mkdir()
    (checkout / "outputs").chmod(mode)  # 777: anyone may rename or delete ann's folder in it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own: a warning once per place in the code
        first, again = output_root(), output_root()
    if mode == 0o777:
        assert first == again == Path.home() / "cnn-rnn-course" / "outputs" / "ann"
        [warning] = caught  # why, said once
        assert re.search("others may rename or delete what is in it .*chmod 1777", str(warning.message))
    else:
        assert first == again == checkout / "outputs" / "ann" and caught == []


def test_the_output_folder_given_is_used_as_given(monkeypatch, tmp_path):
    given = tmp_path / "run-1"
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(given))  # what the batch runner sets
    assert output_root() == given and not given.exists()  # not created, not per person
    assert output_root(tmp_path / "x") == tmp_path / "x"  # OUTPUT_DIR wins over the environment
    assert configure("02_lenet5_mnist", "smoke", device="cpu").output_dir == given / "02_lenet5_mnist"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert output_root("~/y") == tmp_path / "y"
    monkeypatch.chdir(tmp_path)
    assert output_root("z") == tmp_path / "z"  # absolute


def test_a_place_that_cannot_be_written_is_refused(monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError, match=r"cannot write into .*file[/\\]x: .*file is not a folder"):
        output_root(tmp_path / "file" / "x")
    locked = tmp_path / "locked"
    locked.mkdir()
    deny_writing(monkeypatch, locked)
    with pytest.raises(SettingsError, match="locked is not writable; set OUTPUT_DIR"):
        output_root(locked / "a" / "b")
    with pytest.raises(SettingsError, match="not writable"):
        configure("02_lenet5_mnist", "smoke", device="cpu", output_dir=locked)


def test_the_person_is_the_login_name_of_the_user_id_made_safe_for_a_path(monkeypatch):
    import pwd

    real = pwd.getpwuid(os.getuid()).pw_name
    monkeypatch.setenv("USER", "mallory")  # $USER can say anything
    assert person_name() == "".join(c if c.isalnum() or c in "._-" else "_" for c in real).lstrip(".")

    def named(name):
        monkeypatch.setattr(pwd, "getpwuid", lambda uid: pwd.struct_passwd((name, "x", uid, 0, "", "/", "/")))
        return person_name()

    assert named("jan.de-vries_2") == "jan.de-vries_2"
    assert named("DOMAIN\\ann") == "DOMAIN_ann"
    assert named("../..") == "_.." and named(".bashrc") == "bashrc"  # one plain folder, not hidden

    def unknown(uid):
        raise KeyError(uid)  # a user id without a name (a container)

    monkeypatch.setattr(pwd, "getpwuid", unknown)
    monkeypatch.delenv("USERNAME", raising=False)
    assert person_name() == f"uid{os.getuid()}"


# --- on a shared server, with real users: a classmate, a teacher's checkout --------------------------------


@pytest.fixture
def server(monkeypatch):
    """A server a class shares: a checkout owned by root (the teacher), readable by all, and real Unix users
    made for the test (``useradd``; removed after it), each with a home of their own. Returns the checkout
    and ``add_user("ann")``, which gives the new user's passwd entry (its login is ``ann<pid>``)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("real users need root and useradd (CI runs the tests as root)")
    base = Path(tempfile.mkdtemp(prefix="course-server-"))  # not tmp_path: other users may not enter that
    base.chmod(0o755)
    checkout = base / "checkout"
    checkout.mkdir()
    checkout.chmod(0o755)
    monkeypatch.setattr(settings, "project_root", lambda: checkout)
    monkeypatch.delenv("COURSE_OUTPUT_DIR")
    made = []

    def add_user(name: str) -> pwd.struct_passwd:
        login, home = f"{name}{os.getpid()}", base / "home" / f"{name}{os.getpid()}"
        command = ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/false", login]
        subprocess.run(command, check=True, capture_output=True)
        made.append(login)
        user = pwd.getpwnam(login)
        home.mkdir(parents=True)
        os.chown(home, user.pw_uid, user.pw_gid)
        return user

    yield checkout, add_user
    for login in made:
        subprocess.run(["userdel", login], capture_output=True)
    shutil.rmtree(base)


def as_user(user: pwd.struct_passwd, function, *args, umask: int = 0o022, **kwargs):
    """``function(*args, **kwargs)`` run by ``user``, in a child that takes the user's ids, home and
    ``umask`` (forked: the user may not read root's Python); returns what it returned, or raises what it
    raised."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: it never returns into pytest
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.umask(umask)
            os.environ.update(HOME=user.pw_dir, USER="root", LOGNAME="root")  # $USER can say anything
            try:
                outcome = (True, function(*args, **kwargs))
            except Exception as error:
                outcome = (False, error)
            with os.fdopen(writer, "wb") as pipe:
                pickle.dump(outcome, pipe)
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        received = pipe.read()
    os.waitpid(pid, 0)
    succeeded, value = pickle.loads(received)
    if not succeeded:
        raise value
    return value


@pytest.mark.parametrize(
    ("taken_by", "message"),
    [("folder", "another user’s folder"), ("link", "a symbolic link"), ("dangling link", "a symbolic link")],
)
def test_a_classmate_cannot_take_over_your_output_folder(server, taken_by, message):
    checkout, add_user = server
    ann, bob = add_user("ann"), add_user("bob")
    outputs = checkout / "outputs"
    outputs.mkdir()
    outputs.chmod(0o1777)  # shared as the README says: anyone may add a folder, only its owner move it
    trap = Path(bob.pw_dir) / "trap"

    def take_over() -> None:  # bob, before ann's first run
        trap.mkdir(mode=0o777)
        trap.chmod(0o777)
        if taken_by == "folder":
            (outputs / ann.pw_name).mkdir()
            (outputs / ann.pw_name).chmod(0o777)
        else:
            (outputs / ann.pw_name).symlink_to(trap / "gone" if taken_by == "dangling link" else trap)

    as_user(bob, take_over)
    with pytest.raises(SettingsError, match=f"outputs/{ann.pw_name} is {message}: your outputs must be in"):
        as_user(ann, output_root)
    with pytest.raises(SettingsError, match="set OUTPUT_DIR"):
        as_user(ann, configure, "02_lenet5_mnist", "smoke", device="cpu")
    assert list(trap.iterdir()) == []


def test_your_output_folder_is_yours_with_mode_755_whatever_the_umask(server):
    checkout, add_user = server
    ann, bob = add_user("ann"), add_user("bob")
    (checkout / "outputs").mkdir()
    (checkout / "outputs").chmod(0o1777)
    folder = as_user(ann, output_root, umask=0o077)  # $USER says root: the name comes from the user id
    assert folder == checkout / "outputs" / ann.pw_name and folder.stat().st_uid == ann.pw_uid
    assert folder.stat().st_mode & 0o7777 == 0o755, "the teacher may read it, no one else may write in it"
    with pytest.raises(PermissionError):
        as_user(bob, (folder / "planted.txt").write_text, "bob's")
    assert as_user(ann, output_root) == folder, "again: the folder there is ann's own"


@pytest.mark.parametrize("outputs_mode", [None, 0o755, 0o777], ids=["no outputs", "755", "777"])
def test_in_a_teachers_checkout_configure_writes_into_the_home_or_refuses_before_training(
    server, outputs_mode
):
    checkout, add_user = server
    ann = add_user("ann")
    if outputs_mode:  # the teacher's own outputs/ (755), or one made world-writable (777, no sticky bit)
        (checkout / "outputs").mkdir()
        (checkout / "outputs").chmod(outputs_mode)
    run = as_user(ann, configure, "02_lenet5_mnist", "smoke", device="cpu")
    home = Path(ann.pw_dir) / "cnn-rnn-course" / "outputs" / ann.pw_name
    assert run.output_dir == home / "02_lenet5_mnist" and home.stat().st_uid == ann.pw_uid
    assert not (checkout / "outputs" / ann.pw_name).exists()
    shutil.rmtree(Path(ann.pw_dir) / "cnn-rnn-course")
    os.chown(ann.pw_dir, 0, 0)  # a home ann may not write in either: refused before any training
    with pytest.raises(SettingsError, match=f"cannot write into {home}: {ann.pw_dir} is not writable"):
        as_user(ann, configure, "02_lenet5_mnist", "smoke", device="cpu")
