"""Run profiles: one set of rules for every notebook of the course.

A notebook's ``parameters`` cell (the one papermill overrides) sets ``PROFILE`` and a few
knobs. :func:`configure` turns them into the settings the notebook runs with:

* ``"smoke"``: a tiny subset and a short epoch, for the test suite;
* ``"quick"``: a classroom run on a laptop CPU, minutes not hours;
* ``"full"``: the real result, meant for a GPU;
* ``"auto"``: ``$COURSE_PROFILE`` when it is set, else ``"full"`` on a CUDA GPU, else ``"quick"``.

The profile gives every setting its value (the tables live in :mod:`course_utils.recipes`);
a knob that the notebook sets explicitly (anything but ``None``) overrides it. Invalid
values stop the notebook at the top with a message that says what is valid. The notebook
then reads its settings as attributes, as a script reads ``args.epochs`` after argparse::

    run = configure("02_lenet5_mnist", PROFILE, epochs=EPOCHS)
    splits = run.batches(mnist)                      # batch_size, val_size, ... of the recipe
    history = fit(model, splits.train, splits.val, run.train_config(name="LeNet-5"))
    run.require(test_accuracy >= run.checks.min_test_accuracy, "LeNet-5 reaches ...")

Where the outputs go: ``outputs/<login name>/<notebook>/`` at the repository root, so that
students sharing one checkout on a classroom server never share (or overwrite, or resume)
each other's files. ``OUTPUT_DIR`` (or ``$COURSE_OUTPUT_DIR``) replaces ``outputs/<login
name>/`` as given: the batch runner points it at its run folder. A notebook that needs a
checkpoint folder of its own asks :meth:`RunSettings.new_checkpoint_dir` for a new, empty
one, so that nothing is deleted and nothing of another run is resumed.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from course_utils import recipes
from course_utils.data import default_data_dir, make_batches
from course_utils.environment import adapt_cpu_threads, get_device
from course_utils.files import atomic_write, current_user, display_path, project_root
from course_utils.recipes import CONCRETE_PROFILES, training_options
from course_utils.tables import format_table
from course_utils.training import TrainConfig

if TYPE_CHECKING:
    from course_utils.data import BatchSplits, ImageDataset

PROFILES = ("auto", *CONCRETE_PROFILES)
PROFILE_ENV = "COURSE_PROFILE"
OUTPUT_ENV = "COURSE_OUTPUT_DIR"
#: Set by the batch runner in each notebook's kernel: the ``-p`` parameter names it was given,
#: comma-separated (``EPOCHS,LR``). Those that are settings of the notebook count as changed.
OVERRIDDEN_ENV = "COURSE_OVERRIDDEN"
METRICS_FILE = "metrics.json"


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


def person_folder_name(user: str | None = None) -> str:
    """The name of this person's folder under ``outputs/``: their login name, made safe for a path.

    Args:
        user: a login name; None means the current user's (:func:`course_utils.files.current_user`,
            which falls back to ``uid<N>`` where the user id has no name).

    Returns:
        The name with anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``
        and no leading dot (``DOMAIN\\ann`` -> ``DOMAIN_ann``, ``..`` -> ``uid1000``).
    """
    name = re.sub(r"[^A-Za-z0-9._-]", "_", current_user() if user is None else user).lstrip(".")
    if name:
        return name
    return f"uid{os.getuid()}" if hasattr(os, "getuid") else "user"


def default_output_dir(output_dir: str | Path | None = None) -> Path:
    """The folder that holds the output folders of the notebooks (each writes into ``<it>/<notebook>/``).

    Args:
        output_dir: ``OUTPUT_DIR`` of the parameters cell; used as given when set.

    Returns:
        ``output_dir``, else ``$COURSE_OUTPUT_DIR`` (both as given: the batch runner sets them
        to its run folder), else ``outputs/<login name>/`` at the repository root: on a server
        where students share one checkout each person gets a folder of their own
        (:func:`person_folder_name`).
    """
    if output_dir not in (None, ""):
        return Path(output_dir).expanduser()
    if os.environ.get(OUTPUT_ENV):
        return Path(os.environ[OUTPUT_ENV]).expanduser()
    return project_root() / "outputs" / person_folder_name()


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
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProfileError(f"{name.upper()} must be a positive number, got {value!r}")
        if not math.isfinite(value):  # -p LR 1e999 is read as infinity: training would give nan
            raise ProfileError(
                f"{name.upper()} must be a finite positive number, got {value!r} "
                f"(a number too large for a float, such as 1e999, is read as inf)"
            )
        if not value > 0:
            raise ProfileError(f"{name.upper()} must be a positive number, got {value!r}")
        value = float(value)
    return value


class Checks:
    """What a notebook asserts, read as attributes: ``run.checks.min_test_accuracy``.

    The values come from :data:`course_utils.recipes.CHECKS` for the run's profile. They are
    read-only and no parameter changes them: a run with other settings must still reach them.
    """

    __slots__ = ("_notebook", "_values")

    def __init__(self, notebook: str, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_notebook", notebook)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        # Only called when ordinary lookup fails. Private names are never checks (and an
        # object being copied has no _values yet: looking it up here would recurse).
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            have = ", ".join(self._values) or "none"
            raise AttributeError(f"{self._notebook} has no check {name!r}; its checks: {have}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"run.checks.{name} cannot be set: the checks are the profile's "
            "(course_utils.recipes.CHECKS), not parameters"
        )

    def __reduce__(self) -> tuple[type[Checks], tuple[str, dict[str, Any]]]:
        return (Checks, (self._notebook, dict(self._values)))  # copy and pickle without __setattr__

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checks) and self._values == other._values

    __hash__ = None  # type: ignore[assignment]  # equal by value, like the dict it holds

    def __len__(self) -> int:
        return len(self._values)

    def __dir__(self) -> list[str]:
        return sorted(self._values)  # what tab completion offers after run.checks.

    def as_dict(self) -> dict[str, Any]:
        """The checks as a new ``{name: threshold}`` dict."""
        return dict(self._values)

    def __repr__(self) -> str:
        inside = ", ".join(f"{name}={value!r}" for name, value in self._values.items())
        return f"Checks({inside})"


@dataclass(frozen=True)
class RunSettings:
    """What a notebook runs with, after profile defaults and explicit parameters.

    Every setting of the recipe is an attribute, as ``args.epochs`` is after argparse:
    ``run.epochs``, ``run.batch_size``, ``run.lr``, ``run.plain_depths``. A name that is
    not a setting raises ``AttributeError`` listing the ones there are. The thresholds a
    notebook asserts are kept apart, in ``run.checks``.

    Attributes:
        notebook: the recipe's key in :data:`course_utils.recipes.RECIPES`.
        profile: the concrete profile (``smoke``, ``quick`` or ``full``).
        requested_profile: what the parameters cell asked for (e.g. ``auto``).
        device: where to train: :meth:`train_config` and :meth:`batches` pass it on.
        seed: the seed for data order, initial weights and augmentation.
        data_dir: where the datasets are read from.
        output_dir: where metrics, figures and checkpoints of this notebook go:
            ``outputs/<login name>/<notebook>/`` unless ``OUTPUT_DIR`` or ``$COURSE_OUTPUT_DIR``
            says otherwise (see :func:`default_output_dir`).
        values: every setting of the recipe, ``{name: value}`` (for listing them; read one
            as ``run.epochs``).
        checks: the thresholds the notebook asserts (:class:`Checks`).
        overridden: the names of the settings that a parameter changed: given to
            :func:`configure` (anything but None), or named by the batch runner in
            ``$COURSE_OVERRIDDEN``. While there are any, :meth:`require` reports a claim that
            fails as a note instead of stopping the notebook.
    """

    notebook: str
    profile: str
    requested_profile: str
    device: torch.device
    seed: int
    data_dir: Path
    output_dir: Path
    values: dict[str, Any]
    checks: Checks
    overridden: tuple[str, ...] = field(default_factory=tuple)

    def __getattr__(self, name: str) -> Any:
        # Only called when ordinary lookup fails: the fields and methods above come first.
        values = self.__dict__.get("values")
        if values is None or name.startswith("_"):
            raise AttributeError(name)  # not set up yet (a copy being made), or a private name
        if name in values:
            return values[name]
        hint = ""
        if name in self.__dict__["checks"]:
            hint = f" ({name} is a check: read it as run.checks.{name})"
        raise AttributeError(
            f"{self.notebook} has no setting {name!r}{hint}; its settings: {', '.join(values)}; "
            "and run.profile, run.device, run.seed, run.data_dir, run.output_dir, run.checks"
        )

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.values})  # tab completion offers the settings

    def _own(self, prefix: str, name: str) -> Any:
        """The setting ``f"{prefix}{name}"`` if the recipe has it, else ``name``."""
        return getattr(self, f"{prefix}{name}" if f"{prefix}{name}" in self.values else name)

    def _check_prefix(self, prefix: str) -> None:
        if prefix and not any(name.startswith(prefix) for name in self.values):
            raise ValueError(
                f"no setting of {self.notebook} starts with {prefix!r}; its settings: "
                f"{', '.join(self.values)}"
            )

    def train_config(self, prefix: str = "", **options: Any) -> TrainConfig:
        """A :class:`TrainConfig` for :func:`~course_utils.training.fit` from this run's settings.

        It takes the settings whose names are ``TrainConfig`` fields (``epochs``, ``lr``,
        ``optimizer``, …) and sets ``device`` to :attr:`device`.

        Args:
            prefix: read ``f"{prefix}{name}"`` first (e.g. ``prefix="mlp_"`` for the MLP's
                own ``mlp_lr``), falling back to the plain name.
            options: fields to set on top (``name=``, ``checkpoint_dir=``, ``epochs=``, …).

        Raises:
            ValueError: no setting starts with ``prefix`` (a misspelt prefix would otherwise
                silently train with the plain values).
        """
        self._check_prefix(prefix)
        chosen = training_options(self.values, prefix)
        chosen["device"] = str(self.device)
        chosen.update(options)
        return TrainConfig(**chosen)

    def batches(self, dataset: ImageDataset, prefix: str = "", **overrides: Any) -> BatchSplits:
        """Training, validation and test batches of ``dataset`` as this run's recipe says.

        Calls :func:`course_utils.data.make_batches` with ``batch_size``, ``val_size``,
        ``train_subset``, ``test_subset`` (and ``drop_last`` when the recipe has it, else
        False) from the settings, and :attr:`device` and :attr:`seed`. For example::

            splits = run.batches(mnist)
            comparison = run.batches(cifar, train_subset=run.plain_train_subset)
            pixels = run.batches(mnist, prefix="pixel_")  # pixel_batch_size, ...; else val_size

        Args:
            dataset: from :func:`course_utils.data.load_dataset`.
            prefix: read ``f"{prefix}{name}"`` first, as in :meth:`train_config`.
            overrides: any argument of ``make_batches``; they win over the settings.

        Returns:
            What ``make_batches`` returns: ``train``, ``val`` and ``test`` batches.

        Raises:
            AttributeError: the recipe lacks one of those settings and no override gives it.
            ValueError: no setting starts with ``prefix``, or sizes that do not fit the dataset.
        """
        self._check_prefix(prefix)
        options: dict[str, Any] = {"device": self.device, "seed": self.seed}
        for name in ("batch_size", "val_size", "train_subset", "test_subset"):
            if name not in overrides:
                options[name] = self._own(prefix, name)
        has_drop_last = f"{prefix}drop_last" in self.values or "drop_last" in self.values
        options["drop_last"] = self._own(prefix, "drop_last") if has_drop_last else False
        options.update(overrides)
        return make_batches(dataset, **options)

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
        return atomic_write(self.output_dir / METRICS_FILE, json.dumps(record, indent=2, default=str))

    def read_metrics(self, notebook: str) -> dict[str, Any] | None:
        """The ``metrics.json`` another notebook wrote beside this one's outputs, or None.

        It is looked for in ``<output_dir>/../<notebook>/``: by default the same person's
        folder (``outputs/<login name>/``), in a batch run the same run folder. So notebook 04
        finds the checkpoint of *your* notebook 03, never another student's.
        """
        path = self.output_dir.parent / notebook / METRICS_FILE
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def new_checkpoint_dir(self, name: str) -> Path:
        """A new, empty folder for the checkpoints of this run of ``name``, created now.

        ``<output_dir>/checkpoints/<name>-<YYYYmmdd-HHMMSS>-<process id>``: each run (and each
        re-run of the cell) gets its own, so that starting afresh deletes nothing and resuming
        (``fit(..., resume=True)`` with ``checkpoint_dir=`` this folder) can only find this
        run's ``last.pt``. Older folders are kept; delete them when they are no longer needed::

            checkpoint_dir = run.new_checkpoint_dir("resnet20")
            config = run.train_config(checkpoint_dir=str(checkpoint_dir), checkpoint_every=1)

        Args:
            name: what is trained, e.g. ``"resnet20"``: letters, digits, ``.``, ``_``, ``-``.

        Returns:
            The folder (it exists and is empty).

        Raises:
            ValueError: ``name`` is empty or is not a plain folder name.
        """
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name):
            raise ValueError(
                f"a checkpoint folder name must be letters, digits, '.', '_' or '-' (not starting with "
                f"'.'), such as 'resnet20'; got {name!r}"
            )
        stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        parent = self.output_dir / "checkpoints"
        parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 1000):
            folder = parent / (stem if attempt == 1 else f"{stem}-{attempt}")
            try:
                folder.mkdir()  # never exist_ok: a folder that is there belongs to another run
            except FileExistsError:
                continue  # the same second, the same process: a cell run twice quickly
            return folder
        raise FileExistsError(f"could not create a new folder named {stem}-N in {parent}")

    @property
    def changed_training_parameters(self) -> tuple[str, ...]:
        """The settings that parameters changed, as the parameters cell names them (``("EPOCHS", "LR")``).

        Device, seed, data and output folders are not settings of the recipe and never count.
        """
        return tuple(name.upper() for name in self.overridden)

    def require(self, condition: bool, claim: str) -> bool:
        """Check a claim the notebook makes about its results; strict for the profile's own settings.

        With the profile's settings, a claim that does not hold stops the notebook: the
        prose above it would be wrong. With training parameters changed (``-p EPOCHS 1``, to
        compare settings in class) the profile's floors were never meant for the run, so a
        claim that does not hold is printed as a note instead::

            run.require(test_accuracy >= run.checks.min_test_accuracy,
                        f"LeNet-5 reaches {run.checks.min_test_accuracy:.1%} on the test set")
            # note: LeNet-5 reaches 98.5% on the test set — not enforced, because parameters
            # were changed (EPOCHS, LR)

        Args:
            condition: whether the claim holds in this run.
            claim: the claim, as a sentence (it becomes the error message).

        Returns:
            True when the claim holds; False when it does not and parameters were changed.

        Raises:
            AssertionError: the claim does not hold and no training parameter was changed.
        """
        if condition:
            return True
        changed = self.changed_training_parameters
        if not changed:
            raise AssertionError(claim)
        print(f"note: {claim} — not enforced, because parameters were changed ({', '.join(changed)})")
        return False

    def describe(self) -> str:
        """The run as a table: profile, device, folders, every setting, then the checks.

        A setting that a parameter overrode is marked ``(set by parameter)``; a check is
        marked ``(check)``. Folders are shown relative to the repository, so that stored
        notebook outputs show no machine's own paths.
        """
        requested = f" (from {self.requested_profile!r})" if self.requested_profile != self.profile else ""
        rows = [
            ("profile", f"{self.profile}{requested}", ""),
            ("device", str(self.device), ""),
            ("seed", str(self.seed), ""),
            ("data dir", display_path(self.data_dir), ""),
            ("output dir", display_path(self.output_dir), ""),
        ]
        for name, value in self.values.items():
            rows.append((name, str(value), "(set by parameter)" if name in self.overridden else ""))
        for name in self.checks:
            rows.append((name, str(getattr(self.checks, name)), "(check)"))
        return format_table(rows, align="lll")

    def __str__(self) -> str:
        return self.describe()


def _overridden_by_runner() -> list[str]:
    """The parameter names in ``$COURSE_OVERRIDDEN`` (``"EPOCHS, LR"``), as setting names (``epochs``)."""
    text = os.environ.get(OVERRIDDEN_ENV, "")
    return [name.strip().lower() for name in text.split(",") if name.strip()]


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
        output_dir: ``OUTPUT_DIR`` (None: ``$COURSE_OUTPUT_DIR``, else ``outputs/<login
            name>/`` so that people sharing a checkout never share files); the notebook writes
            into a sub-folder named after itself (:func:`default_output_dir`).
        overrides: settings like ``epochs=EPOCHS``; ``None`` means "the profile's value".
            The checks (:data:`course_utils.recipes.CHECKS`) are not among them. The names
            given, and those the batch runner lists in ``$COURSE_OVERRIDDEN``, become
            :attr:`RunSettings.overridden` (see :meth:`RunSettings.require`).

    Raises:
        ProfileError: an unknown profile or setting, a check given as a parameter, or a
            value of the wrong kind (a number that is not finite, such as ``1e999``, included).

    It also sets the number of CPU threads torch uses for this machine's current load
    (:func:`course_utils.environment.adapt_cpu_threads`).
    """
    if notebook not in recipes.RECIPES:
        raise ProfileError(f"no recipe {notebook!r}; known: {', '.join(sorted(recipes.RECIPES))}")
    try:
        chosen_device = get_device(device)
    except (ValueError, RuntimeError) as error:
        raise ProfileError(f"DEVICE: {error}") from None
    concrete = resolve_profile(profile, chosen_device)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ProfileError(f"SEED must be a non-negative whole number, got {seed!r}")
    values = recipes.recipe(notebook, concrete)
    thresholds = recipes.checks(notebook, concrete)
    fixed = sorted(name for name in overrides if name in thresholds)
    if fixed:
        raise ProfileError(
            f"{', '.join(n.upper() for n in fixed)}: a check of {notebook}, not a parameter; what a "
            "notebook asserts stays the profile's (course_utils.recipes.CHECKS)"
        )
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
    for name in _overridden_by_runner():
        if name in values and name not in overridden:  # a name of another notebook changes nothing here
            overridden.append(name)
    # On a machine where other runs are training, take only the CPUs they leave free (all of
    # them when alone): runs that fight over cores are each many times slower.
    adapt_cpu_threads()
    return RunSettings(
        notebook=notebook,
        profile=concrete,
        requested_profile=str(profile).strip().lower(),
        device=chosen_device,
        seed=seed,
        data_dir=default_data_dir(data_dir),
        output_dir=default_output_dir(output_dir) / notebook,
        values=values,
        checks=Checks(notebook, thresholds),
        overridden=tuple(overridden),
    )
