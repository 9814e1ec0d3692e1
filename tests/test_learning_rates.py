"""The learning rates of notebook 04 and the record they were chosen from (benchmarks/learning_rates.py).

The recipe says each model's peak learning rate was "chosen on the validation split (never the
test set)". These tests hold it to that: the record was made with the recipe's current
settings, the recipe uses the rates it chose, each chosen rate is the best on the validation
split among those recorded, and no test-set number went into the choice. Nothing is trained.
"""

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from course_utils.profiles import configure
from course_utils.recipes import recipe

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "learning_rates.py"
RECORD = ROOT / "benchmarks" / "results" / "learning_rates.json"
RERUN = (
    "rerun the benchmark: OMP_NUM_THREADS=2 COURSE_DATA_DIR=.data python -m benchmarks.learning_rates "
    "(about 10 minutes on a 2-core CPU), then copy the recipe lines it prints into "
    "course_utils/recipes.py"
)


def load_benchmark():
    """The benchmark script as a module (``benchmarks`` is not an installed package)."""
    spec = importlib.util.spec_from_file_location("learning_rates_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


benchmark = load_benchmark()
MODEL_NAMES = [model.name for model in benchmark.MODELS]


@pytest.fixture(scope="module")
def record() -> dict[str, Any]:
    if not RECORD.is_file():
        pytest.fail(f"{RECORD.relative_to(ROOT)} is missing; {RERUN}")
    return json.loads(RECORD.read_text())


@pytest.fixture(scope="module")
def quick() -> dict[str, Any]:
    return recipe(benchmark.NOTEBOOK, "quick")


def rows_of(record: dict[str, Any], model: str) -> list[dict[str, Any]]:
    return [row for row in record["rows"] if row["model"] == model]


def test_the_record_is_a_full_run_of_the_quick_profile(record):
    assert record["notebook"] == benchmark.NOTEBOOK
    assert record["profile"] == "quick", f"the record is of the {record['profile']!r} profile; {RERUN}"
    assert record["only"] == "all", f"the record has only the {record['only']!r} models; {RERUN}"
    assert list(record["chosen"]) == MODEL_NAMES, f"the record's models differ from the script's; {RERUN}"


def test_the_recorded_settings_are_the_recipes_settings_now(record, quick):
    now = benchmark.settings_that_matter(quick)
    changed = sorted(
        name
        for name in now.keys() | record["settings"].keys()
        if now.get(name, "<missing>") != record["settings"].get(name, "<missing>")
    )
    assert not changed, (
        f"settings of {benchmark.NOTEBOOK} (quick) changed since the learning rates were chosen: "
        + ", ".join(
            f"{n}: {record['settings'].get(n, '<missing>')!r} -> {now.get(n, '<missing>')!r}" for n in changed
        )
        + f"; {RERUN}"
    )


def test_every_model_trained_as_the_notebook_trains_it_with_the_grid_of_its_optimiser(record):
    # The full TrainConfig, defaults included (momentum, warm-up, ...): a changed default
    # changes the training as much as a changed recipe does.
    run = configure(benchmark.NOTEBOOK, "quick", device="cpu")
    for model in benchmark.MODELS:
        config = benchmark.train_config(run, model, lr=1.0)
        assert record["train_configs"][model.name] == benchmark.what_config_sets(config), (
            f"{model.name} now trains with other settings than when its learning rate was chosen; {RERUN}"
        )
        grid = list(benchmark.grid_for(run, model))
        assert record["grids"][model.name] == grid, f"{model.name}'s grid is now {grid}; {RERUN}"
        tried = [row["lr"] for row in rows_of(record, model.name)]
        assert tried == grid, f"{model.name}: the record has rows for {tried}, its grid is {grid}"
        assert all(row["epochs"] == config.epochs for row in rows_of(record, model.name))


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_the_recipe_uses_the_chosen_learning_rate(record, quick, model):
    chosen = record["chosen"][model]
    name = chosen["recipe_name"]
    assert quick[name] == chosen["lr"], (
        f"recipe {benchmark.NOTEBOOK}: {name} is {quick[name]!r}, but benchmarks/learning_rates.py chose "
        f"{chosen['lr']!r} on the validation split (benchmarks/results/learning_rates.json); set "
        f'"{name}": {benchmark.recipe_literal(chosen["lr"])}, in the recipe\'s base'
    )


@pytest.mark.parametrize("model", MODEL_NAMES)
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
