"""course_utils.profiles and course_utils.recipes: one set of profile rules for every notebook."""

import copy
import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from course_utils import profiles
from course_utils.data import CIFAR10_CLASSES, ImageDataset
from course_utils.files import project_root
from course_utils.profiles import (
    PROFILES,
    ProfileError,
    RunSettings,
    configure,
    default_output_dir,
    person_folder_name,
    resolve_profile,
)
from course_utils.recipes import CONCRETE_PROFILES, RECIPES, checks, recipe
from course_utils.training import TrainConfig


@pytest.fixture(autouse=True)
def no_runner_environment(monkeypatch):
    """What the batch runner sets in a notebook's kernel must not leak into these tests."""
    for name in ("COURSE_OVERRIDDEN", "COURSE_OUTPUT_DIR", "COURSE_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def test_no_setting_is_hidden_behind_an_attribute_of_run_settings():
    own = {name for name in dir(RunSettings) if not name.startswith("_")} | set(
        RunSettings.__dataclass_fields__
    )
    for notebook in RECIPES:
        for profile in CONCRETE_PROFILES:
            hidden = own & set(recipe(notebook, profile))
            assert not hidden, f"{notebook}: run.{hidden.pop()} would not read the setting"


# --- profiles --------------------------------------------------------------------------------------


def test_explicit_profile_wins_over_environment(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert resolve_profile("quick") == "quick"
    assert resolve_profile("auto") == "smoke"


def test_auto_means_full_on_gpu_and_quick_on_cpu(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert resolve_profile("auto", torch.device("cpu")) == "quick"
    assert resolve_profile("auto", torch.device("cuda")) == "full"


def test_bad_profile_names_are_refused(monkeypatch):
    with pytest.raises(
        ProfileError, match="PROFILE must be one of 'auto', 'smoke', 'quick', 'full'; got 'fast'"
    ):
        resolve_profile("fast")
    monkeypatch.setenv("COURSE_PROFILE", "huge")
    with pytest.raises(ProfileError, match="COURSE_PROFILE='huge' is not a profile"):
        resolve_profile("auto")


def test_profiles_constant():
    assert PROFILES == ("auto", "smoke", "quick", "full")


# --- configure and the settings as attributes ------------------------------------------------------


def test_profile_sets_defaults_and_parameters_override(tmp_path):
    run = configure("02_lenet5_mnist", "quick", device="cpu", output_dir=tmp_path, epochs=7)
    assert run.profile == "quick"
    assert run.epochs == 7 and "epochs" in run.overridden
    assert run.batch_size == recipe("02_lenet5_mnist", "quick")["batch_size"] == 128
    assert run.lr == 3e-3 and run.optimizer == "adamw" and run.train_subset is None
    assert run.output_dir == tmp_path / "02_lenet5_mnist"
    config = run.train_config(name="lenet")
    assert isinstance(config, TrainConfig) and config.epochs == 7 and config.name == "lenet"
    assert "(set by parameter)" in run.describe()


def test_settings_are_attributes_and_an_unknown_name_lists_the_valid_ones():
    run = configure("03_resnet20_cifar10", "smoke", device="cpu")
    assert run.plain_depths == [20] and run.drop_last is True and run.values["epochs"] == run.epochs
    with pytest.raises(
        AttributeError, match=r"03_resnet20_cifar10 has no setting 'epoch'; its settings: .*epochs"
    ):
        run.epoch  # noqa: B018
    with pytest.raises(
        AttributeError, match=r"min_test_accuracy is a check: read it as run\.checks\.min_test"
    ):
        run.min_test_accuracy  # noqa: B018
    with pytest.raises(TypeError):
        run["epochs"]  # noqa: B018  # settings are attributes, as in argparse's args.epochs
    with pytest.raises(AttributeError):
        run.epochs = 3  # the run is frozen: a setting changes through a parameter, and is then marked
    assert "plain_epochs" in dir(run)  # tab completion offers the settings


def test_run_settings_survive_copy_and_pickle():
    run = configure("02_lenet5_mnist", "smoke", device="cpu", lr=0.01)
    for twin in (copy.deepcopy(run), pickle.loads(pickle.dumps(run))):
        assert twin == run and twin.lr == 0.01 and twin.checks.min_test_accuracy == 0.6


def test_checks_are_read_only_and_not_parameters():
    run = configure("04_cnn_vs_rnn", "quick", device="cpu")
    assert run.checks.min_lenet5_accuracy == 0.985 and run.checks.max_mlp_permutation_gap == 0.005
    assert "min_row_gru_accuracy" in run.checks and "epochs" not in run.checks
    assert run.checks.as_dict() == checks("04_cnn_vs_rnn", "quick")
    with pytest.raises(AttributeError, match="cannot be set: the checks are the profile's"):
        run.checks.min_lenet5_accuracy = 0.1
    with pytest.raises(
        AttributeError,
        match="04_cnn_vs_rnn has no check .min_lenet_accuracy.; its checks: .*min_lenet5_accuracy",
    ):
        run.checks.min_lenet_accuracy  # noqa: B018
    with pytest.raises(ProfileError, match="MIN_LENET5_ACCURACY: a check of 04_cnn_vs_rnn, not a parameter"):
        configure("04_cnn_vs_rnn", "quick", device="cpu", min_lenet5_accuracy=0.5)
    assert len(configure("01_concepts", "smoke", device="cpu").checks) == 0


def test_none_means_profile_default():
    run = configure("02_lenet5_mnist", "smoke", device="cpu", epochs=None, lr=None)
    assert run.epochs == recipe("02_lenet5_mnist", "smoke")["epochs"]
    assert run.overridden == ()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "EPOCHS must be a positive whole number, got 0"),
        ({"epochs": 2.5}, "EPOCHS must be a positive whole number"),
        ({"lr": -1.0}, "LR must be a positive number"),
        ({"lr": float("1e999")}, r"LR must be a finite positive number, got inf \(.*1e999"),  # -p LR 1e999
        ({"lr": float("nan")}, "LR must be a finite positive number, got nan"),
        ({"weight_decay": float("-inf")}, "WEIGHT_DECAY must be a finite positive number, got -inf"),
        ({"learning_rate": 0.1}, "unknown parameter.*LEARNING_RATE.*accepts:.*EPOCHS"),
    ],
)
def test_invalid_parameters_stop_with_a_clear_message(overrides, message):
    with pytest.raises(ProfileError, match=message):
        configure("02_lenet5_mnist", "quick", device="cpu", **overrides)


def test_invalid_device_seed_and_notebook(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ProfileError, match="DEVICE: cuda was requested"):
        configure("02_lenet5_mnist", "quick", device="cuda")
    with pytest.raises(ProfileError, match="SEED must be"):
        configure("02_lenet5_mnist", "quick", device="cpu", seed=-3)
    with pytest.raises(ProfileError, match="no recipe 'lenet'"):
        configure("lenet", "quick")


def test_output_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_OUTPUT_DIR", str(tmp_path))
    assert default_output_dir() == tmp_path  # as given: the batch runner's run folder
    assert default_output_dir(tmp_path / "x") == tmp_path / "x"
    assert configure("02_lenet5_mnist", "smoke", device="cpu").output_dir == tmp_path / "02_lenet5_mnist"


# --- a classroom server: one checkout, many people ----------------------------------------------------


def as_user(monkeypatch, name: str) -> None:
    """Run as the login ``name`` (getpass reads $LOGNAME first)."""
    monkeypatch.setenv("LOGNAME", name)


def test_each_person_gets_an_output_folder_of_their_own_by_default(monkeypatch):
    as_user(monkeypatch, "ann")
    assert default_output_dir() == project_root() / "outputs" / "ann"
    ann = configure("03_resnet20_cifar10", "smoke", device="cpu")
    as_user(monkeypatch, "bob")
    bob = configure("03_resnet20_cifar10", "smoke", device="cpu")
    assert ann.output_dir == project_root() / "outputs" / "ann" / "03_resnet20_cifar10"
    assert bob.output_dir == project_root() / "outputs" / "bob" / "03_resnet20_cifar10"
    assert "outputs/bob/03_resnet20_cifar10" in bob.describe()


@pytest.mark.parametrize(
    ("login", "folder"),
    [("ann", "ann"), ("jan.de-vries_2", "jan.de-vries_2"), ("DOMAIN\\ann", "DOMAIN_ann"), ("a b/c", "a_b_c")],
)
def test_a_login_name_becomes_a_safe_folder_name(login, folder):
    assert person_folder_name(login) == folder


@pytest.mark.parametrize("login", ["..", ".", "", "..."])
def test_a_login_name_that_is_no_folder_name_falls_back_to_the_user_id(login):
    assert person_folder_name(login) == f"uid{os.getuid()}"


def test_a_login_name_never_leads_out_of_outputs():
    assert person_folder_name("../..") == "_.."  # one plain folder: the slash is gone, no leading dot
    assert person_folder_name(".bashrc") == "bashrc"  # not hidden


def test_a_user_id_without_a_name_gets_a_folder_named_after_the_id(monkeypatch):
    def no_name():
        raise OSError("No username set in the environment")  # getpass in a container, uid not in passwd

    monkeypatch.setattr("course_utils.files.getpass.getuser", no_name)
    assert person_folder_name() == f"uid{os.getuid()}"


def test_notebook_04_finds_the_metrics_of_its_own_person_notebook_03(monkeypatch, tmp_path):
    monkeypatch.setattr(profiles, "project_root", lambda: tmp_path)  # outputs/ of a scratch checkout
    as_user(monkeypatch, "ann")
    configure("03_resnet20_cifar10", "smoke", device="cpu").write_metrics({"checkpoint": "ann.pt"})
    assert (tmp_path / "outputs" / "ann" / "03_resnet20_cifar10" / "metrics.json").is_file()
    assert (
        configure("04_cnn_vs_rnn", "smoke", device="cpu").read_metrics("03_resnet20_cifar10")["checkpoint"]
        == "ann.pt"
    )
    as_user(monkeypatch, "bob")  # bob has not run notebook 03: he gets nothing, not ann's weights
    assert configure("04_cnn_vs_rnn", "smoke", device="cpu").read_metrics("03_resnet20_cifar10") is None


def test_each_run_gets_a_new_empty_checkpoint_folder(tmp_path):
    run = configure("03_resnet20_cifar10", "smoke", device="cpu", output_dir=tmp_path)
    earlier = tmp_path / "03_resnet20_cifar10" / "checkpoints" / "resnet20"
    earlier.mkdir(parents=True)
    (earlier / "last.pt").write_bytes(b"another run's checkpoint")  # what the old shared folder held

    first = run.new_checkpoint_dir("resnet20")
    second = run.new_checkpoint_dir("resnet20")  # a re-run of the cell, even within the same second
    for folder in (first, second):
        assert folder.is_dir() and list(folder.iterdir()) == []
        assert folder.parent == run.output_dir / "checkpoints"
        assert re.fullmatch(rf"resnet20-\d{{8}}-\d{{6}}-{os.getpid()}(-\d+)?", folder.name), folder.name
    assert first != second
    assert (earlier / "last.pt").read_bytes() == b"another run's checkpoint"  # nothing is deleted


@pytest.mark.parametrize("name", ["", "../elsewhere", "a/b", ".hidden", None])
def test_a_checkpoint_folder_name_must_be_a_plain_name(tmp_path, name):
    run = configure("03_resnet20_cifar10", "smoke", device="cpu", output_dir=tmp_path)
    with pytest.raises(ValueError, match="a checkpoint folder name must be"):
        run.new_checkpoint_dir(name)


# --- claims: strict for the profile's settings, notes when parameters were changed ---------------------


def test_a_claim_that_fails_with_the_profile_settings_stops_the_notebook(capsys):
    run = configure("02_lenet5_mnist", "quick", device="cpu", seed=3, data_dir="/tmp", output_dir="/tmp")
    assert run.changed_training_parameters == ()  # seed, device and folders are not training settings
    assert run.require(True, "LeNet-5 reaches 98.5 %") is True
    with pytest.raises(AssertionError) as caught:
        run.require(False, "LeNet-5 reaches 98.5 % on the test set")
    assert str(caught.value) == "LeNet-5 reaches 98.5 % on the test set"
    assert capsys.readouterr().out == ""


def test_a_claim_that_fails_after_a_training_parameter_changed_is_a_note(capsys):
    run = configure("02_lenet5_mnist", "quick", device="cpu", epochs=1, lr=1e-4)
    assert run.changed_training_parameters == ("EPOCHS", "LR")
    assert run.require(False, "LeNet-5 reaches 98.5 % on the test set") is False
    assert capsys.readouterr().out == (
        "note: LeNet-5 reaches 98.5 % on the test set — not enforced, because parameters were changed "
        "(EPOCHS, LR)\n"
    )
    assert run.require(True, "a claim that holds") is True and capsys.readouterr().out == ""


def test_the_parameters_the_batch_runner_changed_count_too(monkeypatch, capsys):
    # The runner lists its -p names; those of other notebooks and the non-training ones change nothing here.
    monkeypatch.setenv("COURSE_OVERRIDDEN", "SEED,DEVICE,DATA_DIR,OUTPUT_DIR,PIXEL_EPOCHS")
    strict = configure("02_lenet5_mnist", "quick", device="cpu")
    assert strict.overridden == ()
    with pytest.raises(AssertionError):
        strict.require(False, "the floor")

    monkeypatch.setenv("COURSE_OVERRIDDEN", " batch_size , SEED")
    run = configure("02_lenet5_mnist", "quick", device="cpu", epochs=2)
    assert run.overridden == ("epochs", "batch_size") and "(set by parameter)" in run.describe()
    assert run.require(False, "the floor") is False
    assert "because parameters were changed (EPOCHS, BATCH_SIZE)" in capsys.readouterr().out


# --- what a run builds: training configs and batches -------------------------------------------------


def test_train_config_takes_the_run_device_and_a_model_own_values():
    run = configure("04_cnn_vs_rnn", "full", device="cpu")
    config = run.train_config("rnn_", name="row RNN")
    assert config.device == "cpu" and config.lr == 2e-3 and config.epochs == 12 and config.grad_clip == 1.0
    assert run.train_config().lr == 3e-3
    assert run.train_config("resnet_", epochs=run.cifar_epochs).optimizer == "sgd"
    assert run.train_config(device="cuda").device == "cuda"  # an explicit option still wins
    with pytest.raises(ValueError, match="no setting of 04_cnn_vs_rnn starts with 'rn_'"):
        run.train_config("rn_")


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


def test_batches_follow_the_recipe_and_an_override_wins():
    dataset = synthetic_cifar()
    run = configure("03_resnet20_cifar10", "smoke", device="cpu")  # batch 32, val 500, train and test 1000
    splits = run.batches(dataset)
    assert (
        splits.train.num_samples == 1000 and splits.val.num_samples == 500 and splits.test.num_samples == 1000
    )
    assert splits.train.batch_size == 32 and len(splits.train) == 1000 // 32  # the recipe's drop_last
    assert splits.train.device == run.device

    smaller = run.batches(dataset, train_subset=640, batch_size=64)
    assert smaller.train.num_samples == 640 and len(smaller.train) == 10 and smaller.val.num_samples == 500
    assert torch.equal(smaller.val.labels, splits.val.labels)  # the run's seed: the same validation images


def test_batches_with_a_prefix_read_the_model_own_sizes():
    run = configure("04_cnn_vs_rnn", "smoke", device="cpu")  # cifar_*: batch 32, val 500, 1000 / 500 images
    splits = run.batches(synthetic_cifar(), prefix="cifar_")
    assert (
        splits.train.num_samples == 1000 and splits.val.num_samples == 500 and splits.test.num_samples == 500
    )
    assert len(splits.train) == 32  # 1000 / 32 rounded up: this recipe has no drop_last
    with pytest.raises(ValueError, match="no setting of 04_cnn_vs_rnn starts with 'cifa_'"):
        run.batches(synthetic_cifar(), prefix="cifa_")


def test_batches_need_the_sizes_the_recipe_lacks():
    run = configure("01_concepts", "smoke", device="cpu")
    with pytest.raises(AttributeError, match="01_concepts has no setting 'batch_size'"):
        run.batches(synthetic_cifar())


# --- what a run writes and prints --------------------------------------------------------------------


def test_metrics_are_written_with_their_provenance_and_read_back(tmp_path):
    run = configure("02_lenet5_mnist", "smoke", device="cpu", output_dir=tmp_path)
    path = run.write_metrics({"test_accuracy": 0.99})
    assert path == tmp_path / "02_lenet5_mnist" / "metrics.json"
    other = configure("04_cnn_vs_rnn", "smoke", device="cpu", output_dir=tmp_path)
    metrics = other.read_metrics("02_lenet5_mnist")
    assert metrics["test_accuracy"] == 0.99
    assert (
        metrics["profile"] == "smoke"
        and metrics["device"] == "cpu"
        and metrics["notebook"] == "02_lenet5_mnist"
    )
    assert other.read_metrics("03_resnet20_cifar10") is None


def test_describe_is_a_table_of_settings_and_checks_without_this_machine_paths(tmp_path):
    text = configure("02_lenet5_mnist", "smoke", device="cpu", output_dir=tmp_path, lr=0.01).describe()
    assert str(tmp_path) not in text and str(project_root()) not in text
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in text.splitlines())}
    assert rows["lr"] == ["0.01", "(set by parameter)"] and rows["epochs"] == ["1"]
    assert rows["min_test_accuracy"] == ["0.6", "(check)"] and rows["lenet_beats_mlp"] == ["False", "(check)"]
    assert rows["output dir"] == [f"…/{tmp_path.name}/02_lenet5_mnist"]
    inside = configure("02_lenet5_mnist", "smoke", device="cpu", output_dir=project_root() / "outputs")
    assert "outputs/02_lenet5_mnist" in str(inside)
