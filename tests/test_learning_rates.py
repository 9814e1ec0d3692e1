"""The learning rates of notebook 04 and the record they were chosen from (benchmarks/learning_rates.py).

The recipe says each model's peak learning rate was "chosen on the validation split (never the
test set)". These tests hold it to that: the record was made with the recipe's current
settings, the recipe uses the rates it chose, each chosen rate is the best on the validation
split among those recorded, and no test-set number went into the choice. Nothing is trained,
and the benchmark script is read, not imported: the record and the recipe are what is compared.

The record names the recipe's settings as the recipe named them when it was made: one flat
setting each (``resnet_optimizer``, ``mlp_lr``). The recipe now keeps ResNet-20's optimiser in
``resnet_training`` and the rates in ``learning_rates`` and ``cifar_learning_rates``;
:data:`RATES` and :func:`recorded_setting` read the old names in the new shape.
"""

import ast
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from course_utils.settings import RunSettings, configure, recipe
from course_utils.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "learning_rates.py"
RECORD = ROOT / "benchmarks" / "results" / "learning_rates.json"
NOTEBOOK = "04_cnn_vs_rnn"
RERUN = (
    "rerun the benchmark: OMP_NUM_THREADS=2 COURSE_DATA_DIR=.data python -m benchmarks.learning_rates "
    "(about 10 minutes on a 2-core CPU), then copy the rates it prints into the recipe's "
    "learning_rates and cifar_learning_rates (course_utils/settings.py)"
)

#: Each model of the record, in its order, and where the recipe keeps its peak rate: (table, key).
RATES = {
    "MLP": ("learning_rates", "MLP"),
    "LeNet-5": ("learning_rates", "LeNet-5"),
    "row RNN": ("learning_rates", "row RNN"),
    "row LSTM": ("learning_rates", "row LSTM"),
    "row GRU": ("learning_rates", "row GRU"),
    "row LSTM (CIFAR-10)": ("cifar_learning_rates", "row LSTM"),
    "ResNet-20": ("cifar_learning_rates", "ResNet-20"),
}
CIFAR_MODELS = ("row LSTM (CIFAR-10)", "ResNet-20")

#: TrainConfig fields that say how or where a run is done, not what it learns.
BOOKKEEPING = {"device", "progress", "live_plot", "log_every", "name", "checkpoint_dir", "resume"}
#: The settings of make_batches that shape the training and validation data (test_subset does not).
BATCH_SETTINGS = ("batch_size", "val_size", "train_subset", "drop_last")
#: Fields the record's TrainConfig had and today's has not: what each did (nothing, for these runs).
RETIRED_FIELDS = {
    "warmup_epochs": "the warm-up of the cosine schedule, since removed",
    "milestones": "of the multistep schedule, since removed (no recipe used it)",
    "gamma": "of the multistep schedule, since removed",
}
#: Fields today's TrainConfig added, and the value every recorded run had before the field existed.
NEW_FIELDS = {"loss": "cross_entropy"}

MISSING = "<missing>"


def notebook_config(run: RunSettings, model: str, lr: float) -> TrainConfig:
    """The configuration notebook 04 trains ``model`` with at peak rate ``lr``: the run's training
    settings, the CIFAR-10 epochs for the CIFAR-10 models, and ResNet-20's own optimiser."""
    if model == "ResNet-20":
        return run.train_config(**run.resnet_training, epochs=run.cifar_epochs, lr=lr)
    if model in CIFAR_MODELS:
        return run.train_config(epochs=run.cifar_epochs, lr=lr)
    return run.train_config(lr=lr)


def what_config_sets(config: TrainConfig) -> dict[str, Any]:
    """The fields of ``config`` that shape the training, as JSON values (no lr, no bookkeeping)."""
    fields = dataclasses.asdict(config)
    return json.loads(json.dumps({k: v for k, v in fields.items() if k not in {"lr", *BOOKKEEPING}}))


def settings_that_matter(values: dict[str, Any]) -> dict[str, Any]:
    """The recipe settings that can change which learning rate wins, named as the record names them:
    the training and batch settings, plain and ``cifar_``, the hidden sizes, and ResNet-20's
    optimiser as ``resnet_<field>``; the learning rates themselves are what is chosen."""
    fields = set(TrainConfig.__dataclass_fields__) - {"lr", *BOOKKEEPING}
    names = {f"{p}{n}" for p in ("", "cifar_") for n in (*fields, *BATCH_SETTINGS, "hidden_size")}
    chosen = {name: value for name, value in values.items() if name in names}
    chosen.update({f"resnet_{name}": value for name, value in values["resnet_training"].items()})
    return json.loads(json.dumps(chosen))


def recorded_setting(record: dict[str, Any], name: str) -> Any:
    """A setting as the record's runs had it: from its settings, else, for a training setting the
    recipe did not set then, the value the TrainConfig of a model that reads it had."""
    if name in record["settings"]:
        return record["settings"][name]
    model, field = "MLP", name
    for prefix, owner in (("resnet_", "ResNet-20"), ("cifar_", "row LSTM (CIFAR-10)")):
        if name.startswith(prefix):
            model, field = owner, name.removeprefix(prefix)
    return record["train_configs"][model].get(field, MISSING)


def script_grids() -> dict[str, list[float]]:
    """The script's ``GRIDS`` (the learning rates it tries, by optimiser), read from its source."""
    for node in ast.parse(SCRIPT.read_text()).body:
        targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
        if any(isinstance(target, ast.Name) and target.id == "GRIDS" for target in targets):
            return {name: list(grid) for name, grid in ast.literal_eval(node.value).items()}
    pytest.fail(f"{SCRIPT.relative_to(ROOT)} has no GRIDS table of learning rates by optimiser")


@pytest.fixture(scope="module")
def record() -> dict[str, Any]:
    if not RECORD.is_file():
        pytest.fail(f"{RECORD.relative_to(ROOT)} is missing; {RERUN}")
    return json.loads(RECORD.read_text())


@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    return recipe(NOTEBOOK, "quick")[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> RunSettings:
    return configure(NOTEBOOK, "quick", device="cpu", output_dir=tmp_path_factory.mktemp("outputs"))


def rows_of(record: dict[str, Any], model: str) -> list[dict[str, Any]]:
    return [row for row in record["rows"] if row["model"] == model]


def test_the_record_is_a_full_run_of_the_quick_profile(record, run):
    assert record["notebook"] == NOTEBOOK
    assert record["profile"] == "quick", f"the record is of the {record['profile']!r} profile; {RERUN}"
    assert record["only"] == "all", f"the record has only the {record['only']!r} models; {RERUN}"
    assert list(record["chosen"]) == list(RATES), f"the record's models are not notebook 04's; {RERUN}"
    assert record["seed"] == run.seed, f"the record was made with seed {record['seed']}; {RERUN}"


def test_the_recorded_settings_are_the_recipes_settings_now(record, quick):
    now = settings_that_matter(quick)
    changed = sorted(
        name
        for name in now.keys() | record["settings"].keys()
        if now.get(name, MISSING) != recorded_setting(record, name)
    )
    assert not changed, (
        f"settings of {NOTEBOOK} (quick) changed since the learning rates were chosen: "
        + ", ".join(f"{n}: {recorded_setting(record, n)!r} -> {now.get(n, MISSING)!r}" for n in changed)
        + f"; {RERUN}"
    )


def test_every_model_trained_as_the_notebook_trains_it_with_the_grid_of_its_optimiser(record, run):
    # The full TrainConfig, defaults included (momentum, warm-up, ...): a changed default
    # changes the training as much as a changed recipe does.
    grids = script_grids()
    for model in RATES:
        config = notebook_config(run, model, lr=1.0)
        recorded = {**NEW_FIELDS, **record["train_configs"][model]}
        assert recorded["schedule"] != "cosine", f"{model}: {RETIRED_FIELDS['warmup_epochs']}"
        assert recorded["schedule"] != "multistep", f"{model}: {RETIRED_FIELDS['milestones']}"
        recorded = {k: v for k, v in recorded.items() if k not in RETIRED_FIELDS}
        now = what_config_sets(config)
        if config.optimizer != "sgd":  # AdamW has no Nesterov variant: the field is not read
            del recorded["nesterov"], now["nesterov"]
        if config.optimizer == "adamw" and now["momentum"] is None:  # None: torch's own beta1, recorded
            now["momentum"] = torch.optim.AdamW([torch.zeros(1)]).defaults["betas"][0]  # as its value, 0.9
        differences = {
            name: (recorded.get(name, MISSING), now.get(name, MISSING))
            for name in recorded.keys() | now.keys()
            if recorded.get(name, MISSING) != now.get(name, MISSING)
        }
        assert not differences, (
            f"{model} now trains with other settings than when its learning rate was chosen "
            f"({{field: (recorded, now)}}: {differences}); {RERUN}"
        )
        grid = grids[config.optimizer]
        assert record["grids"][model] == grid, f"{model}'s grid is now {grid}; {RERUN}"
        tried = [row["lr"] for row in rows_of(record, model)]
        assert tried == grid, f"{model}: the record has rows for {tried}, its grid is {grid}"
        assert all(row["epochs"] == config.epochs for row in rows_of(record, model))


@pytest.mark.parametrize("model", RATES)
def test_the_recipe_uses_the_chosen_learning_rate_in_every_profile(record, model):
    chosen = record["chosen"][model]["lr"]
    table, key = RATES[model]
    for profile in ("smoke", "quick", "full"):  # full reuses the rates chosen at quick settings
        rate = recipe(NOTEBOOK, profile)[0][table][key]
        assert rate == chosen, (
            f"recipe {NOTEBOOK} ({profile}): {table}[{key!r}] is {rate!r}, but benchmarks/learning_rates.py "
            f"chose {chosen!r} on the validation split (benchmarks/results/learning_rates.json); set it "
            f"to {chosen:g} in the recipe's base"
        )


@pytest.mark.parametrize("model", RATES)
def test_the_chosen_rate_has_the_best_validation_accuracy_recorded(record, model):
    rows = [row for row in rows_of(record, model) if row["val_accuracy"] is not None]
    assert rows, f"{model}: every learning rate diverged"
    best = max(row["val_accuracy"] for row in rows)
    smallest_best = min(row["lr"] for row in rows if row["val_accuracy"] == best)  # ties: the smaller
    assert record["chosen"][model]["lr"] == smallest_best
    assert record["chosen"][model]["val_accuracy"] == best


def test_no_test_set_number_went_into_the_choice(record):
    def keys(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [k for key, item in value.items() for k in (key, *keys(item))]
        if isinstance(value, list):
            return [k for item in value for k in keys(item)]
        return []

    found = [
        key for key in keys({"rows": record["rows"], "chosen": record["chosen"]}) if "test" in key.lower()
    ]
    assert not found, f"the learning-rate record has test-set numbers: {sorted(set(found))}"
    for row in record["rows"]:
        assert set(row) >= {"val_accuracy", "val_loss"}, row


def test_notebook_04_ranks_with_the_seed_spreads_the_benchmark_measured():
    """The margins notebook 04's rankings must exceed are the recorded spreads over seeds 0, 1, 2."""
    record = json.loads((ROOT / "benchmarks" / "results" / "image_seeds.json").read_text())
    assert record["seeds_done"] == [0, 1, 2] and record["profile"] == "quick"
    views = {"MNIST": "MNIST, equal epochs", "CIFAR-10": "CIFAR-10, equal epochs"}
    _, checks = recipe("04_cnn_vs_rnn", "quick")
    for data, models in checks["seed_spread"].items():
        measured = record["summary"][views.get(data, data)]
        for model, value in models.items():
            assert value == round(measured[model]["test_accuracy"]["spread"], 4), (data, model)
