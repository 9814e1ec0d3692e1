"""course_utils.profiles: one set of profile rules for every notebook."""

import pytest
import torch

from course_utils.profiles import PROFILES, ProfileError, configure, default_output_dir, resolve_profile
from course_utils.recipes import RECIPES
from course_utils.training import TrainConfig


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


def test_every_recipe_has_every_profile_with_the_same_knobs():
    for name, table in RECIPES.items():
        assert set(table) == {"smoke", "quick", "full"}, name
        assert set(table["smoke"]) == set(table["quick"]) == set(table["full"]), name


def test_profile_sets_defaults_and_parameters_override(tmp_path):
    run = configure("02_lenet5_mnist", "quick", device="cpu", output_dir=tmp_path, epochs=7)
    assert run.profile == "quick"
    assert run["epochs"] == 7 and "epochs" in run.overridden
    assert run["batch_size"] == RECIPES["02_lenet5_mnist"]["quick"]["batch_size"]
    assert run.output_dir == tmp_path / "02_lenet5_mnist"
    config = run.train_config(name="lenet")
    assert isinstance(config, TrainConfig) and config.epochs == 7 and config.name == "lenet"
    assert "(set by parameter)" in run.describe()


def test_none_means_profile_default():
    run = configure("02_lenet5_mnist", "smoke", device="cpu", epochs=None, lr=None)
    assert run["epochs"] == RECIPES["02_lenet5_mnist"]["smoke"]["epochs"]
    assert run.overridden == ()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "EPOCHS must be a positive whole number, got 0"),
        ({"epochs": 2.5}, "EPOCHS must be a positive whole number"),
        ({"lr": -1.0}, "LR must be a positive number"),
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
    assert default_output_dir() == tmp_path
    assert default_output_dir(tmp_path / "x") == tmp_path / "x"


def test_profiles_constant():
    assert PROFILES == ("auto", "smoke", "quick", "full")


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


def test_describe_shows_no_absolute_path_of_this_machine(tmp_path):
    from course_utils.data import project_root
    from course_utils.profiles import display_path

    assert display_path(project_root() / "outputs" / "x") == "outputs/x"
    assert display_path(tmp_path / "a" / "b") == "…/a/b"
    text = configure("02_lenet5_mnist", "smoke", device="cpu", output_dir=tmp_path).describe()
    assert str(tmp_path) not in text and str(project_root()) not in text
