"""Run profiles: one set of rules for every notebook of the course.

A notebook's ``parameters`` cell (the one papermill overrides) sets ``PROFILE`` and a few
knobs. :func:`configure` turns them into the settings the notebook runs with:

* ``"smoke"``: a tiny subset and a short epoch, for the test suite;
* ``"quick"``: a classroom run on a laptop CPU, minutes not hours;
* ``"full"``: the real result, meant for a GPU;
* ``"auto"``: ``$COURSE_PROFILE`` when it is set, else ``"full"`` on a CUDA GPU, else ``"quick"``.

The profile gives every setting a default (the tables live in :mod:`course_utils.recipes`);
a knob that the notebook sets explicitly (anything but ``None``) overrides it. Invalid
values stop the notebook at the top with a message that says what is valid.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from course_utils.checkpoints import atomic_write_text
from course_utils.data import default_data_dir, project_root
from course_utils.environment import get_device
from course_utils.recipes import RECIPES, training_options
from course_utils.training import TrainConfig

PROFILES = ("auto", "smoke", "quick", "full")
CONCRETE_PROFILES = ("smoke", "quick", "full")
PROFILE_ENV = "COURSE_PROFILE"
OUTPUT_ENV = "COURSE_OUTPUT_DIR"
METRICS_FILE = "metrics.json"


def display_path(path: Path) -> str:
    """A path for printing in a notebook: relative to the repository when inside it.

    Stored notebook outputs must not show one machine's absolute paths; a folder outside
    the repository is shown by its last two parts only.
    """
    path = Path(path)
    try:
        return path.resolve().relative_to(project_root().resolve()).as_posix() or "."
    except ValueError:
        return "…/" + "/".join(path.parts[-2:])


class ProfileError(ValueError):
    """A profile or parameter value that cannot be used."""


def resolve_profile(profile: str = "auto", device: torch.device | None = None) -> str:
    """The concrete profile (``smoke``, ``quick`` or ``full``) that ``profile`` means here.

    Args:
        profile: one of :data:`PROFILES`.
        device: the device the notebook will use (for ``"auto"``).
    """
    if not isinstance(profile, str) or profile.strip().lower() not in PROFILES:
        raise ProfileError(f"PROFILE must be one of {', '.join(map(repr, PROFILES))}; got {profile!r}")
    profile = profile.strip().lower()
    if profile != "auto":
        return profile
    from_env = os.environ.get(PROFILE_ENV, "").strip().lower()
    if from_env:
        if from_env not in CONCRETE_PROFILES:
            raise ProfileError(
                f"the environment variable {PROFILE_ENV}={from_env!r} is not a profile; "
                f"use one of {', '.join(CONCRETE_PROFILES)} (or unset it)"
            )
        return from_env
    device = device if device is not None else get_device("auto")
    return "full" if device.type == "cuda" else "quick"


def default_output_dir(output_dir: str | Path | None = None) -> Path:
    """``output_dir``, else ``$COURSE_OUTPUT_DIR``, else ``outputs/`` at the repository root."""
    if output_dir not in (None, ""):
        return Path(output_dir).expanduser()
    if os.environ.get(OUTPUT_ENV):
        return Path(os.environ[OUTPUT_ENV]).expanduser()
    return project_root() / "outputs"


def _check_value(name: str, value: Any, default: Any) -> Any:
    """Check an explicit override against the type of the profile's default."""
    if default is None:  # "all of it" by default; an explicit value must be a size
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProfileError(
                f"{name.upper()} must be a positive whole number (or None for all), got {value!r}"
            )
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise ProfileError(f"{name.upper()} must be True or False, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ProfileError(f"{name.upper()} must be a positive whole number, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ProfileError(f"{name.upper()} must be a positive number, got {value!r}")
        value = float(value)
    return value


@dataclass
class RunSettings:
    """What a notebook runs with, after profile defaults and explicit parameters.

    Attributes:
        notebook: the recipe's key in :data:`course_utils.recipes.RECIPES`.
        profile: the concrete profile (``smoke``, ``quick`` or ``full``).
        requested_profile: what the parameters cell asked for (e.g. ``auto``).
        device: where to train.
        seed: the seed for data order, initial weights and augmentation.
        data_dir: where the datasets are read from.
        output_dir: where metrics, figures and checkpoints of this notebook go.
        values: every setting of the recipe (``values["epochs"]``, …).
        overridden: the names that an explicit parameter set.
    """

    notebook: str
    profile: str
    requested_profile: str
    device: torch.device
    seed: int
    data_dir: Path
    output_dir: Path
    values: dict[str, Any]
    overridden: tuple[str, ...] = field(default_factory=tuple)

    def __getitem__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise KeyError(
                f"no setting {name!r} in recipe {self.notebook!r}; have {sorted(self.values)}"
            ) from None

    def train_config(self, prefix: str = "", **options: Any) -> TrainConfig:
        """A :class:`TrainConfig` from the settings whose names are TrainConfig fields.

        Args:
            prefix: read ``f"{prefix}{name}"`` first (e.g. ``prefix="mlp_"`` for the MLP's
                own learning rate), falling back to the plain name.
            options: fields to set on top (``name=``, ``checkpoint_dir=``, …).
        """
        chosen = training_options(self.values, prefix)
        chosen.update(options)
        return TrainConfig(**chosen)

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """Write ``metrics.json`` into :attr:`output_dir`, for batch runs to collect.

        The notebook, profile, device and seed are added, so that every number says what
        produced it. Values must be JSON types (numbers, strings, lists, dicts).

        Returns:
            The path written (atomically: a killed run leaves the old file or none).
        """
        record = {
            "notebook": self.notebook,
            "profile": self.profile,
            "device": str(self.device),
            "seed": self.seed,
            "written": time.strftime("%Y-%m-%d %H:%M:%S"),
            **metrics,
        }
        return atomic_write_text(self.output_dir / METRICS_FILE, json.dumps(record, indent=2, default=str))

    def read_metrics(self, notebook: str) -> dict[str, Any] | None:
        """The ``metrics.json`` another notebook wrote beside this one's outputs, or None."""
        path = self.output_dir.parent / notebook / METRICS_FILE
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def describe(self) -> str:
        """A short text table of the settings, marking the ones a parameter overrode."""
        lines = [
            f"profile     : {self.profile}"
            + (f" (from {self.requested_profile!r})" if self.requested_profile != self.profile else ""),
            f"device      : {self.device}",
            f"seed        : {self.seed}",
            f"data dir    : {display_path(self.data_dir)}",
            f"output dir  : {display_path(self.output_dir)}",
        ]
        for name, value in self.values.items():
            mark = "  (set by parameter)" if name in self.overridden else ""
            lines.append(f"{name:<12}: {value}{mark}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()


def configure(
    notebook: str,
    profile: str = "auto",
    *,
    device: str = "auto",
    seed: int = 0,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    **overrides: Any,
) -> RunSettings:
    """Resolve a notebook's parameters cell into :class:`RunSettings`.

    Args:
        notebook: the recipe name, e.g. ``"02_lenet5_mnist"``.
        profile: ``PROFILE`` from the parameters cell.
        device: ``DEVICE``: ``"auto"``, ``"cuda"``, ``"mps"`` or ``"cpu"``.
        seed: ``SEED``.
        data_dir: ``DATA_DIR`` (None: ``$COURSE_DATA_DIR``, else ``data/``).
        output_dir: ``OUTPUT_DIR`` (None: ``$COURSE_OUTPUT_DIR``, else ``outputs/``); the
            notebook writes into a sub-folder named after itself.
        overrides: knobs like ``epochs=EPOCHS``; ``None`` means "the profile's default".

    Raises:
        ProfileError: an unknown profile or knob, or a value of the wrong kind.
    """
    if notebook not in RECIPES:
        raise ProfileError(f"no recipe {notebook!r}; known: {', '.join(sorted(RECIPES))}")
    try:
        chosen_device = get_device(device)
    except (ValueError, RuntimeError) as error:
        raise ProfileError(f"DEVICE: {error}") from None
    concrete = resolve_profile(profile, chosen_device)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ProfileError(f"SEED must be a non-negative whole number, got {seed!r}")
    values = dict(RECIPES[notebook][concrete])
    unknown = sorted(name for name in overrides if name not in values)
    if unknown:
        raise ProfileError(
            f"unknown parameter(s) {', '.join(n.upper() for n in unknown)} for {notebook}; "
            f"this notebook accepts: {', '.join(n.upper() for n in sorted(values))}"
        )
    overridden = []
    for name, value in overrides.items():
        if value is None:
            continue
        values[name] = _check_value(name, value, values[name])
        overridden.append(name)
    out = default_output_dir(output_dir) / notebook
    return RunSettings(
        notebook=notebook,
        profile=concrete,
        requested_profile=str(profile).strip().lower(),
        device=chosen_device,
        seed=seed,
        data_dir=default_data_dir(data_dir),
        output_dir=out,
        values=values,
        overridden=tuple(overridden),
    )
