"""Datasets as tensors: load MNIST and CIFAR-10, split them, and iterate over batches.

The course keeps each whole dataset as one uint8 tensor in memory (on the GPU when there is
one) and cuts batches out of it with a few tensor operations. MNIST and CIFAR-10 are small
(47 MB and 150 MB as uint8), so this is faster than a ``DataLoader`` with worker processes
and PIL images, and every step of it can be read in this file::

    from course_utils.data import load_dataset, make_batches

    dataset = load_dataset("cifar10")          # uint8 tensors, read from data/cifar10.npz
    splits = make_batches(dataset, batch_size=128, device="cuda", val_size=5000)
    for epoch in range(3):
        for x, y in splits.train:               # x: (128, 3, 32, 32) float32, y: (128,) int64
            ...

Where the data are stored is all that ``device`` says here: the training device, the memory
layout and the precision are decided by :func:`course_utils.training.fit`, which moves each
batch to its device. :class:`TrainingData` says what ``fit`` needs from training data.

Files: ``load_dataset`` reads ``<data dir>/<name>.npz`` (keys ``x_train``, ``y_train``,
``x_test``, ``y_test``, in torchvision's ``.data`` / ``.targets`` layout). When the file
is missing it asks torchvision to download the dataset and writes the ``.npz`` once, so
later loads take a fraction of a second.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.environment import get_device

# project_root lives in course_utils.files (notebook 04 still imports it from here).
from course_utils.files import atomic_write, permission_problem, project_root

DATASET_NAMES = ("mnist", "cifar10")
MNIST_CLASSES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: The arrays every ``.npz`` file must hold.
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

#: Pixels of black padding on each side before a random crop (He et al., 2016, for CIFAR-10).
AUGMENT_PADDING = 4

_CLASSES = {"mnist": MNIST_CLASSES, "cifar10": CIFAR10_CLASSES}
# One image, in torchvision's `.data` layout: MNIST (H, W), CIFAR-10 (H, W, C).
_IMAGE_SHAPES = {"mnist": (28, 28), "cifar10": (32, 32, 3)}
_TORCHVISION_CLASSES = {"mnist": "MNIST", "cifar10": "CIFAR10"}
# What torchvision keeps under the data folder; a user without internet can put these there instead.
_TORCHVISION_FILES = {
    "mnist": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]",
    "cifar10": "cifar-10-python.tar.gz (or its extracted folder cifar-10-batches-py/)",
}


class DatasetError(RuntimeError):
    """A dataset could not be loaded. The message says what was wrong and how to fix it."""


class DatasetNotFoundError(DatasetError):
    """The dataset's file is not in the data folder, and downloading it failed."""


class DatasetCorruptError(DatasetError):
    """The dataset's ``.npz`` file exists but is unreadable or holds the wrong arrays."""


class DatasetPermissionError(DatasetError):
    """The dataset's ``.npz`` file exists but this user may not read it (it is not damaged)."""


def default_data_dir(data_dir: str | Path | None = None) -> Path:
    """The folder that holds the datasets.

    Args:
        data_dir: a folder to use. When None, ``$COURSE_DATA_DIR`` if that is set, else the
            ``data/`` folder at the root of the repository (beside ``course_utils/``) when
            the package runs from a checkout, else ``data/`` in the current folder (a
            ``pip install`` from the repository, as on Colab).

    Returns:
        The folder as an absolute ``Path``. It is not created here.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser().absolute()
    from_environment = os.environ.get("COURSE_DATA_DIR", "").strip()
    if from_environment:
        return Path(from_environment).expanduser().absolute()
    return project_root() / "data"


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field has no single True/False
class ImageDataset:
    """A whole image-classification dataset as uint8 tensors on the CPU.

    Attributes:
        name: ``"mnist"`` or ``"cifar10"``.
        x_train: uint8 images in torchvision's layout: MNIST ``(N, 28, 28)``, CIFAR-10
            ``(N, 32, 32, 3)`` (height, width, then the RGB channel).
        y_train: int64 labels ``(N,)``, in ``0 .. num_classes - 1``.
        x_test, y_test: the test set, same layout.
        classes: the class names; ``classes[y]`` names label ``y``.
        mean, std: per channel, of the training images on the ``[0, 1]`` scale (one value
            for MNIST, three for CIFAR-10). Normalising with them gives inputs with mean 0
            and standard deviation 1; we never look at the test set to choose them.
        path: the ``.npz`` file the tensors were read from.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    path: Path

    @property
    def num_classes(self) -> int:
        """How many classes there are (10 for both datasets)."""
        return len(self.classes)

    @property
    def channels(self) -> int:
        """Colour channels per image: 1 (grey) or 3 (RGB)."""
        return 1 if self.x_train.dim() == 3 else int(self.x_train.shape[3])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The shape ``(C, H, W)`` of one image as a model sees it."""
        return (self.channels, int(self.x_train.shape[1]), int(self.x_train.shape[2]))

    def __repr__(self) -> str:
        mean = ", ".join(f"{m:.4f}" for m in self.mean)
        std = ", ".join(f"{s:.4f}" for s in self.std)
        return (
            f"ImageDataset({self.name}: {len(self.x_train)} train / {len(self.x_test)} test images "
            f"of shape {self.image_shape}, {self.num_classes} classes, mean ({mean}), std ({std}), "
            f"from {self.path})"
        )


def load_dataset(name: str, data_dir: str | Path | None = None) -> ImageDataset:
    """Load MNIST or CIFAR-10 from ``<data dir>/<name>.npz``, downloading it the first time.

    When the ``.npz`` file is missing, torchvision downloads the dataset into the same
    folder (``torchvision.datasets.MNIST`` / ``CIFAR10`` with ``download=True``); its arrays
    are then written to ``<name>.npz`` so that the next load is fast. The file is written
    under a temporary name and renamed when complete, so an interrupted run never leaves
    a half-written ``<name>.npz`` behind.

    Args:
        name: ``"mnist"`` or ``"cifar10"``.
        data_dir: the folder to look in; None means :func:`default_data_dir`.

    Returns:
        An :class:`ImageDataset`. MNIST: ``x_train`` ``(60000, 28, 28)``, ``x_test``
        ``(10000, 28, 28)``. CIFAR-10: ``x_train`` ``(50000, 32, 32, 3)``, ``x_test``
        ``(10000, 32, 32, 3)``. Images are uint8, labels int64.

    Raises:
        ValueError: ``name`` is not one of :data:`DATASET_NAMES`.
        DatasetNotFoundError: no ``.npz`` file and the download failed (the empty folders
            the attempt created are removed again).
        DatasetPermissionError: the file is there but you may not read it (the message says
            whose it is and whom to ask).
        DatasetCorruptError: the file is truncated, lacks a key, or holds arrays of the
            wrong shape, dtype or label range.
        DatasetError: ``<name>.npz`` is a folder or a broken link, or the cache cannot be written.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; the datasets are {', '.join(DATASET_NAMES)}")
    folder = default_data_dir(data_dir)
    path = folder / f"{key}.npz"
    if not _dataset_file_exists(path):
        arrays = _arrays_from_torchvision(key, folder)
        _check_arrays(key, arrays, where=f"the arrays torchvision gave for {key}", fix="")
        for labels in ("y_train", "y_test"):  # 0..9 fit in uint8, the dtype of the shipped files
            arrays[labels] = arrays[labels].astype(np.uint8)
        _write_npz_atomically(path, arrays)
    arrays = _read_npz(path)
    _check_arrays(key, arrays, where=str(path), fix=_rebuild_advice(path))

    x_train = torch.from_numpy(arrays["x_train"])
    mean, std = _channel_mean_std(x_train)
    return ImageDataset(
        name=key,
        x_train=x_train,
        y_train=torch.from_numpy(arrays["y_train"].astype(np.int64)),
        x_test=torch.from_numpy(arrays["x_test"]),
        y_test=torch.from_numpy(arrays["y_test"].astype(np.int64)),
        classes=_CLASSES[key],
        mean=mean,
        std=std,
        path=path,
    )


def _dataset_file_exists(path: Path) -> bool:
    """Whether the dataset file ``path`` is there; a DatasetError when something else is.

    Without this, a folder named ``mnist.npz`` (an unpacked copy, say), a link to a file that
    is gone, or a data folder you may not open would all be reported as "not there", and a
    download would be tried beside them.

    Raises:
        DatasetError: ``path`` is a folder, or a link to nothing.
        DatasetPermissionError: a folder on the way may not be opened by this user.
    """
    try:
        info = os.stat(path)  # follows a link to what it points at
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            raise DatasetError(
                f"{path} is a link to {os.readlink(path)}, which does not exist. Point the link at the "
                f"file (ln -sf /where/it/is/{path.name} {path}), or delete the link and run again to "
                f"download it."
            ) from None
        return False
    except PermissionError as error:
        raise DatasetPermissionError(f"{path} could not be looked at: {permission_problem(path)}") from error
    if stat.S_ISDIR(info.st_mode):
        raise DatasetError(
            f"{path} is a directory, not a file: load_dataset needs the .npz file itself there. Move "
            f"or rename that folder, then copy the file {path.name} into {path.parent} (or delete the "
            f"folder and run again to download it)."
        )
    return True


def _one_line(error: BaseException, limit: int = 300) -> str:
    """An exception as one short line: torchvision's download errors span several lines."""
    text = " ".join(str(error).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _arrays_from_torchvision(name: str, folder: Path) -> dict[str, np.ndarray]:
    """Get the train and test arrays through torchvision, downloading into ``folder`` if needed."""
    file_name = f"{name}.npz"
    print(f"{name}: {file_name} is not in {folder}; getting the dataset with torchvision ...")
    try:
        # Imported here: torchvision takes a second to import, and only this slow path needs it.
        import torchvision.datasets

        dataset_class = getattr(torchvision.datasets, _TORCHVISION_CLASSES[name])
        with _new_empty_folders_removed_on_failure(folder):
            folder.mkdir(parents=True, exist_ok=True)
            train = dataset_class(root=str(folder), train=True, download=True)
            test = dataset_class(root=str(folder), train=False, download=True)
    except Exception as error:  # any failure here means "no data": say so in one message
        shape = ", ".join(str(n) for n in _IMAGE_SHAPES[name])
        raise DatasetNotFoundError(
            f"Could not find or download the {name} dataset.\n"
            f"  Looked in {folder} for {file_name}: not there.\n"
            f"  The torchvision download failed: {_one_line(error)}\n"
            f"  To fix: copy {file_name} (keys x_train, y_train, x_test, y_test; uint8 images "
            f"(N, {shape}) and labels 0..9) into {folder}, or set COURSE_DATA_DIR to a folder "
            f"that has it, or put torchvision's own files there ({_TORCHVISION_FILES[name]}), "
            f"or run once with internet access."
        ) from error

    def as_numpy(values: object) -> np.ndarray:
        # MNIST gives torch tensors, CIFAR10 a numpy array and a list of ints.
        return values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)

    arrays = {
        "x_train": as_numpy(train.data),
        "y_train": as_numpy(train.targets),
        "x_test": as_numpy(test.data),
        "y_test": as_numpy(test.targets),
    }
    return {key: np.ascontiguousarray(array) for key, array in arrays.items()}


@contextlib.contextmanager
def _new_empty_folders_removed_on_failure(folder: Path) -> Iterator[None]:
    """If the body fails, remove the folders it created in and above ``folder`` that are empty.

    A failed download would otherwise leave an empty ``MNIST/raw`` (and the data folder itself)
    behind, which looks as if something had been downloaded. Only folders that did not exist
    before and hold nothing are removed: a file, or a folder that was there already, stays.
    """
    missing_above = [part for part in (folder, *folder.parents) if not part.exists()]  # deepest first
    existed = {Path(root) for root, _, _ in os.walk(folder)}
    try:
        yield
    except BaseException:
        for root, _, _ in os.walk(folder, topdown=False):  # the deepest folders first
            if Path(root) not in existed:
                with contextlib.suppress(OSError):  # not empty, or not ours to remove
                    os.rmdir(root)
        for part in missing_above:
            try:
                part.rmdir()
            except FileNotFoundError:
                continue  # removed above already
            except OSError:
                break  # not empty: its parents are not either
        raise


def _write_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` so that ``path`` is either absent or complete.

    :func:`course_utils.files.atomic_write` writes a temporary file and renames it, so an
    interrupted run never leaves a truncated ``path``. Uncompressed: CIFAR-10 hardly
    compresses, and reading is then fastest.

    Raises:
        DatasetError: the folder cannot be created or written (full disk, no permission).
    """
    try:
        atomic_write(path, lambda file: np.savez(file, **arrays))
    except OSError as error:
        raise DatasetError(
            f"could not write the dataset cache {path}: {_one_line(error)}. Check that the folder "
            f"is writable and has space, or set COURSE_DATA_DIR to another folder."
        ) from error


def _rebuild_advice(path: Path) -> str:
    return (
        f"Delete {path} and run again so that it is rebuilt (downloaded with torchvision), "
        f"or put a good copy in its place."
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read the four arrays of a dataset file, turning any reading failure into a DatasetError."""
    fix = _rebuild_advice(path)
    try:
        # allow_pickle=False: an .npz of plain arrays never needs it, and unpickling runs code.
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            if missing:
                raise DatasetCorruptError(
                    f"{path} lacks the array(s) {', '.join(missing)}: it has "
                    f"{', '.join(sorted(archive.files)) or 'no arrays'}, and needs {', '.join(NPZ_KEYS)}. "
                    f"{fix}"
                )
            return {key: archive[key] for key in NPZ_KEYS}
    except DatasetError:
        raise
    except PermissionError as error:
        # Not damage: deleting the file (the advice for a corrupt one) would not even be allowed.
        raise DatasetPermissionError(
            f"{path} could not be opened for reading: {permission_problem(path)} Or set "
            f"COURSE_DATA_DIR (or DATA_DIR) to a folder of your own that holds {path.name}."
        ) from error
    except Exception as error:  # zipfile, zlib, numpy and OS errors all mean "unreadable file"
        raise DatasetCorruptError(
            f"{path} could not be read as an .npz archive ({_one_line(error)}); it is probably "
            f"truncated or corrupt, for example by an interrupted copy. {fix}"
        ) from error


def _check_arrays(name: str, arrays: dict[str, np.ndarray], where: str, fix: str) -> None:
    """Check shapes, dtypes and label range of a dataset's arrays; raise DatasetCorruptError if wrong.

    ``where`` names the arrays' origin at the start of the message, ``fix`` ends it.
    """
    image_shape = _IMAGE_SHAPES[name]
    num_classes = len(_CLASSES[name])
    expected_images = "(N, " + ", ".join(str(n) for n in image_shape) + ")"

    def fail(problem: str) -> DatasetCorruptError:
        return DatasetCorruptError(f"{where}: {problem} {fix}".rstrip())

    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.dtype != np.uint8 or images.ndim != len(image_shape) + 1 or images.shape[1:] != image_shape:
            hint = ""
            if name == "cifar10" and images.ndim == 4 and images.shape[1:] == (3, 32, 32):
                hint = " It looks channels-first: save images.transpose(0, 2, 3, 1) instead."
            raise fail(
                f"x_{split} has shape {tuple(images.shape)} and dtype {images.dtype}; expected uint8 of "
                f"shape {expected_images} (torchvision's {_TORCHVISION_CLASSES[name]} .data layout, "
                f"pixels 0..255).{hint}"
            )
        if len(images) == 0:
            raise fail(f"x_{split} has no images; expected {expected_images}.")
        if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (len(images),):
            raise fail(
                f"y_{split} has shape {tuple(labels.shape)} and dtype {labels.dtype}; expected integer "
                f"labels of shape ({len(images)},), one per image of x_{split}."
            )
        out_of_range = (labels < 0) | (labels >= num_classes)
        if out_of_range.any():
            first = int(np.flatnonzero(out_of_range)[0])
            raise fail(
                f"y_{split} holds labels from {labels.min()} to {labels.max()}, but {name} has classes "
                f"0..{num_classes - 1} ({int(out_of_range.sum())} labels out of range, the first at "
                f"index {first}: {labels[first]})."
            )


def _channel_mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std of uint8 images, on the [0, 1] scale.

    A uint8 pixel has only 256 possible values, so a histogram of each channel gives the
    exact mean and variance in float64 without making a float copy of the whole dataset.

    Args:
        images: uint8 ``(N, H, W)`` or ``(N, H, W, C)``.
    """
    per_channel = images.unsqueeze(-1) if images.dim() == 3 else images
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for channel in range(per_channel.shape[-1]):
        counts = torch.bincount(per_channel[..., channel].reshape(-1), minlength=256).double()
        mean = (counts * values).sum() / counts.sum()
        # The population variance (divide by N, not N - 1), as torch.std(correction=0).
        variance = (counts * (values - mean) ** 2).sum() / counts.sum()
        means.append(float(mean) / 255.0)
        stds.append(math.sqrt(float(variance)) / 255.0)
    return tuple(means), tuple(stds)


def _random_generator(seed: int, *stream: int) -> torch.Generator:
    """A CPU random generator whose numbers depend only on ``seed`` and ``stream``.

    numpy's SeedSequence mixes them into one well-spread seed, so that (seed 0, epoch 1)
    and (seed 1, epoch 0) give unrelated numbers, and so do different uses of one seed.
    """
    state = np.random.SeedSequence(seed, spawn_key=stream).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device="cpu").manual_seed(int(state) & (2**63 - 1))


# The streams of _random_generator: one per epoch of Batches, one for choosing subsets.
_EPOCH_STREAM = 0
_SUBSET_STREAM = 1


def _check_non_negative_int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _check_count(value: object, low: int, high: int, what: str, why: str) -> None:
    """Raise ValueError unless ``value`` is an int in ``low .. high`` (``why`` explains ``high``)."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{what} must be an integer from {low} to {high} ({why}), got {value!r}")


@runtime_checkable
class TrainingData(Protocol):
    """What :func:`course_utils.training.fit` needs from training data.

    :class:`Batches` is one; a wrapper of a few lines around it is another (for instance one
    that stops a run after some epochs, to show how resuming works). ``isinstance(data,
    TrainingData)`` checks that the three methods are there.

    * ``iter(data)`` yields one epoch of batches ``(x, y)``: x float ``(B, C, H, W)`` (or
      ``(B, ...)`` for other models), y int64 ``(B,)`` class numbers, on any device (``fit``
      moves each batch to its own).
    * ``len(data)`` is the number of batches per epoch (the optimiser steps).
    * ``data.set_epoch(epoch)`` is called by ``fit`` before each epoch (counting from 0), so
      that the epoch's order and augmentation can depend on ``(seed, epoch)`` alone: a
      resumed run then sees exactly the batches an uninterrupted one would have seen.
    """

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...


class Batches:
    """Mini-batches of a whole dataset kept in memory on one device.

    The images are stored once on ``device`` as uint8 ``(N, C, H, W)``; each batch is cut
    out of that tensor, augmented if asked, converted to float and normalised with
    ``(x / 255 - mean) / std``. No worker processes, no PIL: a few tensor operations per batch.

    Each ``for x, y in batches`` is one epoch. Its order (when ``shuffle``) and its random
    crops and flips (when ``augment``) come from a CPU ``torch.Generator`` seeded with
    ``(seed, epoch)`` alone, never from the global random state: model dropout cannot
    change the data order, and the same seed gives the same batches on CPU and GPU. Each
    new iteration uses the current epoch number and then advances it by one, so a plain
    ``for epoch in range(3): for x, y in batches: ...`` sees three different shuffles;
    ``set_epoch(e)`` replays epoch ``e`` exactly (for resuming a training run). Note that
    ``next(iter(batches))``, to look at one batch, also uses up an epoch number.

    Augmentation is the CIFAR-10 recipe of He et al. (2016): pad each raw image with 4 black
    pixels on every side, crop a random window of the original size, and flip it left-right
    with probability 1/2 (torchvision's ``RandomCrop(32, padding=4)`` then
    ``RandomHorizontalFlip()``), done for the whole batch at once with index arithmetic.

    Args:
        images: uint8 ``(N, H, W)`` (grey) or ``(N, H, W, C)``, pixels 0..255, in
            torchvision's ``.data`` layout.
        labels: integer ``(N,)``.
        mean, std: per-channel statistics on the [0, 1] scale, one value per channel.
        batch_size: images per batch; the last batch is smaller unless ``drop_last``.
        shuffle: a new random order every epoch (for training).
        augment: random crops and flips (for training).
        drop_last: skip the last, incomplete batch.
        device: where the data are stored and batches are made: ``"cpu"``, ``"cuda"``,
            ``"auto"``... Only that: :func:`course_utils.training.fit` trains on its own
            device and moves each batch there (no cost when it is the same), and decides
            the memory layout and precision too.
        seed: with the epoch number, decides the order and the augmentation.

    Yields:
        ``(x, y)``: x float32 ``(B, C, H, W)`` (contiguous), y int64 ``(B,)``, both on ``device``.

    Raises:
        TypeError: images are not a uint8 tensor, or labels not an integer tensor.
        ValueError: bad sizes: batch_size < 1, len(images) != len(labels), mean/std of
            the wrong length, a std <= 0.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int = 128,
        shuffle: bool = False,
        augment: bool = False,
        drop_last: bool = False,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
            found = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
            raise TypeError(
                f"images must be a uint8 tensor of raw pixels 0..255 (Batches normalises them itself), "
                f"got {found}; convert a numpy array with torch.from_numpy"
            )
        if images.dim() not in (3, 4):
            raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C), got {tuple(images.shape)}")
        if images.dim() == 4 and images.shape[3] > 4 and images.shape[1] in (1, 3):
            raise ValueError(
                f"images of shape {tuple(images.shape)} look channels-first; Batches takes torchvision's "
                f"(N, H, W, C) layout: pass images.permute(0, 2, 3, 1)"
            )
        if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype.is_complex:
            found = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise TypeError(f"labels must be an integer tensor, got {found}")
        if labels.dim() != 1 or len(labels) != len(images):
            raise ValueError(
                f"labels must have shape (N,) with N = len(images) = {len(images)}, got {tuple(labels.shape)}"
            )
        if len(images) == 0:
            raise ValueError("images is empty: Batches needs at least one image")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        _check_non_negative_int(seed, "seed")
        channels = 1 if images.dim() == 3 else int(images.shape[3])
        mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"mean and std need one value per channel: the images have {channels} channel(s), "
                f"got {len(mean)} mean and {len(std)} std value(s)"
            )
        if any(not s > 0 for s in std):
            raise ValueError(f"std values must be > 0, got {std}")

        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.augment = bool(augment)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.mean = mean
        self.std = std
        self.num_samples = len(images)
        # Copied once to the device, then (N, H, W) -> (N, 1, H, W) or (N, H, W, C) -> (N, C, H, W).
        on_device = images.to(get_device(device))
        as_nchw = on_device.unsqueeze(1) if images.dim() == 3 else on_device.permute(0, 3, 1, 2)
        self.images = as_nchw.contiguous()
        # The device the tensors are on, with its index ("cuda:0" for "cuda"), as x.device reports it.
        self.device = self.images.device
        self.labels = labels.to(device=self.device, dtype=torch.int64)
        # (x / 255 - mean) / std  ==  x * scale + shift: one fused multiply-add per batch.
        std_tensor = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        mean_tensor = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self._scale = 1.0 / (255.0 * std_tensor)
        self._shift = -mean_tensor / std_tensor
        height, width = self.images.shape[2], self.images.shape[3]
        self._rows = torch.arange(height, device=self.device)
        self._columns = torch.arange(width, device=self.device)
        self._epoch = 0

    @property
    def epoch(self) -> int:
        """The epoch number the next iteration will use."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch`` (its order and augmentation)."""
        self._epoch = _check_non_negative_int(epoch, "epoch")

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # Draw the whole epoch's randomness now, on the CPU, in a fixed order (permutation,
        # then crop offsets, then flips), so it depends only on (seed, epoch) and not on the
        # device or on how many batches a caller actually consumes.
        generator = _random_generator(self.seed, _EPOCH_STREAM, self._epoch)
        self._epoch += 1
        order = None
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=generator).to(self.device)
        crop_offsets = flips = None
        if self.augment:
            crop_offsets = torch.randint(
                0, 2 * AUGMENT_PADDING + 1, (self.num_samples, 2), generator=generator
            ).to(self.device)
            flips = (torch.rand(self.num_samples, generator=generator) < 0.5).to(self.device)
        return self._batches(order, crop_offsets, flips)

    def _batches(
        self, order: torch.Tensor | None, crop_offsets: torch.Tensor | None, flips: torch.Tensor | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in range(len(self)):
            start = batch * self.batch_size
            stop = min(start + self.batch_size, self.num_samples)
            if order is None:  # storage order: a slice, no gather needed
                images, labels = self.images[start:stop], self.labels[start:stop]
            else:
                indices = order[start:stop]
                images, labels = self.images[indices], self.labels[indices]
            if crop_offsets is not None and flips is not None:
                images = self._crop_and_flip(images, crop_offsets[start:stop], flips[start:stop])
            yield torch.addcmul(self._shift, images.float(), self._scale), labels

    def _crop_and_flip(
        self, images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor
    ) -> torch.Tensor:
        """Random crop from the zero-padded images, then a horizontal flip, for a whole batch.

        Args:
            images: uint8 ``(B, C, H, W)``, raw pixels (so the padding is black, 0).
            offsets: ``(B, 2)``, top-left corner ``(row, column)`` of each crop in the padded
                image, in ``0 .. 2 * AUGMENT_PADDING``.
            flips: bool ``(B,)``, which images to mirror left-right.

        Returns:
            uint8 ``(B, C, H, W)``.
        """
        count, channels, height, width = images.shape
        pad = AUGMENT_PADDING
        padded = F.pad(images, (pad, pad, pad, pad))  # (B, C, H + 8, W + 8), zeros around
        rows = offsets[:, :1] + self._rows  # (B, H): which padded row each output row reads
        # A flipped crop reads its window's columns right to left.
        columns = offsets[:, 1:] + torch.where(flips[:, None], self._columns.flip(0), self._columns)  # (B, W)
        # Flat position in each padded (H + 8) x (W + 8) channel plane, same for every channel.
        source = rows[:, :, None] * (width + 2 * pad) + columns[:, None, :]  # (B, H, W)
        source = source.view(count, 1, height * width).expand(count, channels, height * width)
        return padded.view(count, channels, -1).gather(2, source).view(count, channels, height, width)

    def __repr__(self) -> str:
        return (
            f"Batches({self.num_samples} images of shape {tuple(self.images.shape[1:])} on {self.device}, "
            f"batch_size={self.batch_size}, {len(self)} batches, shuffle={self.shuffle}, "
            f"augment={self.augment}, seed={self.seed}, next epoch={self._epoch})"
        )


def _check_labels(labels: torch.Tensor) -> torch.Tensor:
    """Labels as a CPU int64 ``(N,)`` tensor of non-negative class numbers."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be an integer tensor of shape (N,), got {type(labels).__name__}")
    if labels.dim() != 1 or labels.dtype.is_floating_point:
        raise ValueError(
            f"labels must be an integer tensor of shape (N,), "
            f"got {labels.dtype} of shape {tuple(labels.shape)}"
        )
    labels = labels.detach().to("cpu", torch.int64)
    if len(labels) and labels.min() < 0:
        raise ValueError(f"labels must be class numbers >= 0, found {int(labels.min())}")
    return labels


def stratified_indices(labels: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """Choose a class-balanced random subset of ``size`` samples.

    Each class gets ``size // num_classes`` samples, and the remainder goes one each to
    randomly chosen classes. A class with too few samples gives all it has and the others
    make up the difference, so exactly ``size`` indices come back. E.g. ``size=1000`` on
    MNIST gives 100 images of each digit.

    Args:
        labels: integer class numbers ``(N,)``.
        size: how many indices to choose, ``0 <= size <= N``.
        seed: the same seed (and labels) always gives the same subset.

    Returns:
        int64 ``(size,)``, distinct indices into ``labels``, sorted ascending, on
        ``labels.device``.

    Raises:
        ValueError: ``size`` is negative or larger than ``len(labels)``; labels are not
            non-negative integers of shape ``(N,)``.
    """
    device = labels.device if isinstance(labels, torch.Tensor) else torch.device("cpu")
    labels = _check_labels(labels)
    _check_non_negative_int(seed, "seed")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > len(labels):
        raise ValueError(f"size must be an integer from 0 to len(labels) = {len(labels)}, got {size!r}")
    generator = _random_generator(seed, _SUBSET_STREAM)
    counts = torch.bincount(labels)
    quotas = torch.zeros_like(counts)
    remaining = size
    # Share what is left equally among the classes that still have samples to give;
    # at most one round per class, since each round either finishes or exhausts a class.
    while remaining > 0:
        open_classes = torch.nonzero(quotas < counts).flatten()
        share = remaining // len(open_classes)
        if share == 0:  # fewer left than open classes: one more each for a random few
            lucky = open_classes[torch.randperm(len(open_classes), generator=generator)[:remaining]]
            quotas[lucky] += 1
            break
        grant = torch.minimum(counts[open_classes] - quotas[open_classes], torch.tensor(share))
        quotas[open_classes] += grant
        remaining -= int(grant.sum())

    # Shuffle, then stable-sort by class: each class's samples are now in random order,
    # and a sample is kept if its rank within its class is below that class's quota.
    shuffled = torch.randperm(len(labels), generator=generator)
    by_class = shuffled[torch.sort(labels[shuffled], stable=True).indices]
    class_starts = torch.cumsum(counts, 0) - counts
    sorted_labels = labels[by_class]
    rank_in_class = torch.arange(len(labels)) - class_starts[sorted_labels]
    chosen = by_class[rank_in_class < quotas[sorted_labels]]
    return torch.sort(chosen).values.to(device)


def train_val_split(labels: torch.Tensor, val_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out a class-balanced validation set.

    Args:
        labels: integer class numbers ``(N,)`` of the training set.
        val_size: how many samples to hold out, ``0 <= val_size <= N``.
        seed: the same seed always gives the same split.

    Returns:
        ``(train_indices, val_indices)``: int64, sorted, disjoint, together covering
        ``0 .. N - 1``; ``val_indices`` has ``val_size`` entries chosen with
        :func:`stratified_indices`.

    Raises:
        ValueError: ``val_size`` is negative or larger than ``N``.
    """
    if not isinstance(val_size, int) or isinstance(val_size, bool):
        raise ValueError(f"val_size must be an integer, got {val_size!r}")
    val_indices = stratified_indices(labels, val_size, seed)
    held_out = torch.zeros(len(labels), dtype=torch.bool, device=val_indices.device)
    held_out[val_indices] = True
    train_indices = torch.nonzero(~held_out).flatten()
    return train_indices, val_indices


def permute_pixels(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """Shuffle the pixel positions of every image with one fixed permutation.

    Output pixel ``p`` (counting row by row, ``p = row * W + column``) is input pixel
    ``permutation[p]``; all channels of a pixel move together. A fully connected network
    does as well on permuted MNIST as on MNIST; a convolutional one, which relies on
    neighbouring pixels, does not.

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, C)``, usually uint8.
        permutation: int ``(H * W,)``, each of ``0 .. H*W - 1`` exactly once, e.g.
            ``torch.randperm(28 * 28)``.

    Returns:
        A tensor of the same shape and dtype as ``images``.

    Raises:
        ValueError: bad image shape, or ``permutation`` is not a permutation of the pixels.
    """
    if images.dim() not in (3, 4):
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C), got {tuple(images.shape)}")
    count, height, width = images.shape[:3]
    pixels = height * width
    permutation = torch.as_tensor(permutation)
    if (
        permutation.shape != (pixels,)
        or permutation.dtype.is_floating_point
        or not torch.equal(torch.sort(permutation.cpu()).values, torch.arange(pixels))
    ):
        raise ValueError(
            f"permutation must hold each pixel position 0..{pixels - 1} exactly once (shape ({pixels},), "
            f"e.g. torch.randperm({pixels})), got shape {tuple(permutation.shape)}"
        )
    flat = images.reshape(count, pixels, *images.shape[3:])  # (N, H*W) or (N, H*W, C)
    return flat[:, permutation.to(images.device)].reshape(images.shape)


def shift_images(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Translate images by whole pixels; pixels moved in from outside are 0 (black).

    ``dx > 0`` moves the content right, ``dy > 0`` moves it down:
    ``out[:, y, x] = images[:, y - dy, x - dx]`` where that is inside the image, else 0.

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, C)``, usually uint8.
        dx, dy: shifts in pixels, any sign; ``|dx| >= W`` or ``|dy| >= H`` gives black images.

    Returns:
        A new tensor of the same shape and dtype.
    """
    if images.dim() not in (3, 4):
        raise ValueError(f"images must have shape (N, H, W) or (N, H, W, C), got {tuple(images.shape)}")
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in (dx, dy)):
        raise ValueError(f"dx and dy must be whole numbers of pixels, got dx={dx!r}, dy={dy!r}")
    height, width = images.shape[1], images.shape[2]
    shifted = torch.zeros_like(images)
    if abs(dx) >= width or abs(dy) >= height:
        return shifted
    # Rows [max(dy, 0), H + min(dy, 0)) of the output come from rows shifted back by dy.
    shifted[:, max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = images[
        :, max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
    ]
    return shifted


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo the normalisation of :class:`Batches`, for showing images.

    Args:
        x: normalised float images ``(C, H, W)`` or ``(B, C, H, W)``.
        mean, std: the per-channel values used to normalise, one per channel.

    Returns:
        ``x * std + mean`` clamped to ``[0, 1]``, same shape (for matplotlib, permute
        ``(C, H, W)`` to ``(H, W, C)``).
    """
    if x.dim() < 3:
        raise ValueError(f"x must have shape (C, H, W) or (B, C, H, W), got {tuple(x.shape)}")
    channels = x.shape[-3]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"mean and std need one value per channel: x has {channels}, got {len(mean)} and {len(std)}"
        )
    mean_tensor = torch.tensor(tuple(mean), dtype=x.dtype, device=x.device).view(channels, 1, 1)
    std_tensor = torch.tensor(tuple(std), dtype=x.dtype, device=x.device).view(channels, 1, 1)
    return (x * std_tensor + mean_tensor).clamp(0.0, 1.0)


@dataclass
class BatchSplits:
    """The batches of one experiment, from :func:`make_batches`.

    Attributes:
        train: shuffled (and maybe augmented) training batches.
        val: batches of the held-out validation images, or None when ``val_size=0``.
        test: test batches; look at them once, at the end.
        classes: the class names.
        dataset: the :class:`ImageDataset` they were made from.
    """

    train: Batches
    val: Batches | None
    test: Batches
    classes: tuple[str, ...]
    dataset: ImageDataset


def make_batches(
    dataset: ImageDataset,
    batch_size: int = 128,
    *,
    device: str | torch.device = "cpu",
    val_size: int = 0,
    train_subset: int | None = None,
    test_subset: int | None = None,
    augment: bool | None = None,
    seed: int = 0,
    eval_batch_size: int = 1024,
    drop_last: bool = False,
) -> BatchSplits:
    """Split a dataset into training, validation and test batches stored on ``device``.

    First ``val_size`` training images are held out (class-balanced); then, if
    ``train_subset`` is given, a class-balanced subset of the rest is kept for training.
    All three use the training set's mean and std for normalisation. Validation and test
    batches are never shuffled nor augmented.

    Args:
        dataset: from :func:`load_dataset`.
        batch_size: training batch size.
        device: where the uint8 tensors are stored (``"cpu"``, ``"cuda"``, ``"auto"``...);
            only that: :func:`course_utils.training.fit` trains on its own device.
        val_size: training images to hold out for validation (0: no validation set).
        train_subset: train on only this many images (quick runs); None: all of them.
        test_subset: evaluate on only this many test images (class-balanced); None: all.
        augment: random crops and flips for training; None means True for CIFAR-10 and
            False for MNIST (flipping a digit changes what it is).
        seed: the split, the subsets, and the training order and augmentation.
        eval_batch_size: batch size for validation and test (no gradients: can be larger).
        drop_last: skip the last, incomplete training batch (then every step has the same
            shape, which ``torch.compile`` and batch normalisation both prefer).

    Returns:
        :class:`BatchSplits` with ``train``, ``val`` (None if ``val_size == 0``) and ``test``.

    Raises:
        ValueError: sizes that do not fit the dataset.
    """
    num_train = len(dataset.y_train)
    _check_count(
        val_size, 0, num_train - 1, "val_size", f"the {dataset.name} training set has {num_train} images"
    )
    train_indices, val_indices = train_val_split(dataset.y_train, val_size, seed)
    if train_subset is not None:
        left = f"the training images left after holding out val_size={val_size}"
        _check_count(train_subset, 1, len(train_indices), "train_subset", left)
        keep = stratified_indices(dataset.y_train[train_indices], train_subset, seed)
        train_indices = train_indices[keep]
    test_indices = torch.arange(len(dataset.y_test))
    if test_subset is not None:
        _check_count(test_subset, 1, len(dataset.y_test), "test_subset", "the size of the test set")
        test_indices = stratified_indices(dataset.y_test, test_subset, seed)
    if augment is None:
        augment = dataset.name == "cifar10"

    def batches(images: torch.Tensor, labels: torch.Tensor, training: bool) -> Batches:
        return Batches(
            images,
            labels,
            mean=dataset.mean,
            std=dataset.std,
            batch_size=batch_size if training else eval_batch_size,
            shuffle=training,
            augment=bool(augment) and training,
            drop_last=drop_last and training,
            device=device,
            seed=seed,
        )

    def select(tensor: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        # Indexing copies; skip it when every sample is kept, in storage order.
        return tensor if len(indices) == len(tensor) else tensor[indices]

    return BatchSplits(
        train=batches(select(dataset.x_train, train_indices), select(dataset.y_train, train_indices), True),
        val=batches(dataset.x_train[val_indices], dataset.y_train[val_indices], False) if val_size else None,
        test=batches(select(dataset.x_test, test_indices), select(dataset.y_test, test_indices), False),
        classes=dataset.classes,
        dataset=dataset,
    )
