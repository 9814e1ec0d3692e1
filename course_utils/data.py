"""Datasets as tensors: load MNIST and CIFAR-10, split them, and cut them into batches.

A whole dataset is one uint8 tensor in memory (on the GPU when there is one); batches are cut out of
it with a few tensor operations. For datasets this small (MNIST 47 MB, CIFAR-10 150 MB) that is faster
than a ``DataLoader`` with worker processes and PIL images, and every step can be read in this file::

    dataset = load_dataset("cifar10")          # uint8 tensors, from data/cifar10.npz
    splits = make_batches(dataset, batch_size=128, val_size=5000)
    for x, y in splits.train:                  # x: (128, 3, 32, 32) float32, y: (128,) int64
        ...
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.environment import atomic_write, get_device, project_root

MNIST_CLASSES = tuple(str(digit) for digit in range(10))
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
DATASETS = {"mnist": MNIST_CLASSES, "cifar10": CIFAR10_CLASSES}
IMAGE_SHAPES = {"mnist": (28, 28), "cifar10": (32, 32, 3)}  # one image, in torchvision's .data layout
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
AUGMENT_PADDING = 4  # pixels of black padding before a random crop (He et al., 2016, for CIFAR-10)
_EPOCH_STREAM, _SUBSET_STREAM = 0, 1  # the streams of random_generator this module uses


class DatasetError(RuntimeError):
    """A dataset cannot be loaded; the message says what is wrong and how to fix it."""


def default_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir``, else ``$COURSE_DATA_DIR``, else ``data/`` in the repository (absolute, not created)."""
    chosen = data_dir if data_dir is not None else os.environ.get("COURSE_DATA_DIR", "").strip()
    return Path(chosen).expanduser().absolute() if chosen else project_root() / "data"


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A whole image-classification dataset as uint8 tensors on the CPU.

    Attributes:
        x_train, x_test: images in torchvision's layout: MNIST ``(N, 28, 28)``, CIFAR-10 ``(N, 32, 32, 3)``.
        y_train, y_test: int64 labels ``(N,)``.
        classes: ``classes[y]`` names label ``y``.
        mean, std: per channel, of the *training* images on the [0, 1] scale (never the test set's).
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

    def __repr__(self) -> str:
        height, width, *channels = self.x_train.shape[1:]  # one image as a model sees it: (C, H, W)
        shape = (channels[0] if channels else 1, height, width)
        return (
            f"ImageDataset({self.name}: {len(self.x_train)} training and {len(self.x_test)} test images of "
            f"shape {shape}, {len(self.classes)} classes, from {self.path})"
        )


def load_dataset(name: str, data_dir: str | Path | None = None) -> ImageDataset:
    """Load MNIST or CIFAR-10 from ``<data dir>/<name>.npz``, downloading it with torchvision the first time.

    The ``.npz`` holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` in torchvision's ``.data`` /
    ``.targets`` layout; a download is written there once (atomically), so later loads are fast.

    Args:
        name: ``"mnist"`` or ``"cifar10"``.
        data_dir: the folder to look in (see :func:`default_data_dir`).

    Raises:
        DatasetError: no file and no download; a file you may not read; a damaged or wrong file
            (truncated, pickled objects, wrong shapes or labels). The message says which, and the fix.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; the datasets are {', '.join(DATASETS)}")
    path = default_data_dir(data_dir) / f"{name}.npz"
    if not path.exists():
        _download(name, path)
    x_train, y_train, x_test, y_test = (torch.from_numpy(array) for array in read_npz(name, path).values())
    mean, std = _channel_mean_std(x_train)
    return ImageDataset(name, x_train, y_train, x_test, y_test, DATASETS[name], mean, std, path)


def read_npz(name: str, path: Path) -> dict[str, np.ndarray]:
    """The four arrays of a dataset file, checked, labels as int64; a :class:`DatasetError` otherwise."""
    fix = f"Delete {path} and run again to download it, or put a good copy there."
    if not path.is_file():
        raise DatasetError(f"{path} is not a regular file (a folder?): put the {name}.npz file itself there")
    try:
        with np.load(path, allow_pickle=False) as archive:  # unpickling a stranger's file runs its code
            missing = [key for key in NPZ_KEYS if key not in archive.files]
            arrays = {} if missing else {key: archive[key] for key in NPZ_KEYS}
    except PermissionError:
        try:
            owner = path.owner()
        except (NotImplementedError, KeyError, OSError):  # Windows; a user id without a name
            owner = "its owner"
        raise DatasetError(
            f"you may not read {path} (it belongs to {owner}, mode {stat.filemode(path.stat().st_mode)}); "
            f"it is not damaged. Ask {owner} to run `chmod a+r {path}`, or set COURSE_DATA_DIR to a "
            f"folder of your own that holds {name}.npz."
        ) from None
    except Exception as error:  # zip, zlib, pickle and OS errors; numpy calls any non-zip file pickled
        why = f"{type(error).__name__}: {error}" if zipfile.is_zipfile(path) else "not a zip file"
        raise DatasetError(f"{path} is not a readable .npz of arrays ({why}). {fix}") from None
    if missing:
        raise DatasetError(f"{path} lacks the arrays {', '.join(missing)}. {fix}")
    shape = IMAGE_SHAPES[name]
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.dtype != np.uint8 or images.shape[1:] != shape or len(images) == 0:
            raise DatasetError(
                f"{path}: x_{split} is {images.dtype} {images.shape}; expected uint8 pixels of shape "
                f"(N, {', '.join(map(str, shape))}) (torchvision's layout). {fix}"
            )
        if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (len(images),):
            raise DatasetError(
                f"{path}: y_{split} is {labels.dtype} {labels.shape}, not one label per image. {fix}"
            )
        if labels.min() < 0 or labels.max() >= len(DATASETS[name]):
            raise DatasetError(f"{path}: y_{split} has labels outside 0..{len(DATASETS[name]) - 1}. {fix}")
        arrays[f"y_{split}"] = labels.astype(np.int64)
    return arrays


def _download(name: str, path: Path) -> None:
    """Get the dataset with torchvision into ``path.parent`` and write ``path``. A failed download removes
    the empty folders it made (an empty ``MNIST/raw`` would look as if something had come)."""
    print(f"{name}: {path.name} is not in {path.parent}; downloading it with torchvision ...")
    made = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    existed = set(path.parent.glob("**/"))  # the user's own folders, empty or not, stay
    try:
        import torchvision.datasets

        kind = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}[name]
        train, test = (kind(root=str(path.parent), train=flag, download=True) for flag in (True, False))
    except Exception as error:
        for folder in [*sorted(set(path.parent.glob("**/")) - existed, reverse=True), *made]:
            with contextlib.suppress(OSError):  # only empty folders go
                folder.rmdir()
        raise DatasetError(
            f"{name}: {path.name} is not in {path.parent}, and the download failed "
            f"({type(error).__name__}: {' '.join(str(error).split())[:200]}). Copy {path.name} into "
            f'{path.parent}, or set COURSE_DATA_DIR to a folder that has it (README: "Running offline").'
        ) from None
    arrays = {
        "x_train": np.asarray(train.data), "y_train": np.asarray(train.targets, dtype=np.uint8),
        "x_test": np.asarray(test.data), "y_test": np.asarray(test.targets, dtype=np.uint8),
    }  # fmt: skip
    atomic_write(path, lambda file: np.savez(file, **arrays))


def _channel_mean_std(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std of uint8 images on the [0, 1] scale, from a histogram of the 256
    pixel values (no float copy of the whole dataset)."""
    pixels = images.reshape(-1, 1 if images.dim() == 3 else images.shape[-1])  # (pixels, C)
    counts = torch.stack([torch.bincount(channel, minlength=256) for channel in pixels.T]).double()
    values = torch.arange(256, dtype=torch.float64)
    mean = (counts * values).sum(1) / counts.sum(1)
    variance = (counts * (values - mean[:, None]) ** 2).sum(1) / counts.sum(1)  # as std(correction=0)
    return tuple((mean / 255).tolist()), tuple((variance.sqrt() / 255).tolist())


def random_generator(seed: int, *stream: int) -> torch.Generator:
    """A CPU generator whose numbers depend only on ``seed`` and ``stream``: NumPy's SeedSequence mixes
    them, so that (seed 0, epoch 1) and (seed 1, epoch 0) give unrelated numbers."""
    state = np.random.SeedSequence(seed, spawn_key=stream).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


@runtime_checkable
class TrainingData(Protocol):
    """What :func:`course_utils.training.fit` needs from training data.

    ``iter(data)`` yields one epoch of ``(x, y)`` batches, ``len(data)`` is its number of batches, and
    ``data.set_epoch(e)`` is called before each epoch: an epoch's order can depend on ``(seed, e)`` alone,
    so a resumed run sees exactly the batches an uninterrupted one would.
    """

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...
    def __len__(self) -> int: ...
    def set_epoch(self, epoch: int) -> None: ...


class Batches:
    """Mini-batches of a whole dataset kept in memory on one device: the one batch type of the course.

    * Images, uint8 ``(N, H, W)`` or ``(N, H, W, C)``: stored once as ``(N, C, H, W)``; each batch is
      cut out, augmented if asked, and normalised, ``(x / 255 - mean) / std``.
    * Anything else (the float sequences ``(N, T, D)`` of :mod:`course_utils.sequences`): used as it is.

    Each ``for x, y in batches`` is one epoch and advances the epoch number. Its order (``shuffle``) and
    its random crops and flips (``augment``: pad 4 black pixels, crop a random window of the image's
    size, mirror half of the images, as He et al. 2016 did for CIFAR-10) depend on ``(seed, epoch)``
    alone: ``set_epoch(e)`` replays epoch ``e``. With ``steps_per_epoch``, an epoch is that many batches
    (optimiser steps), taken from one pass over the data after another, each pass in a new order.

    Args:
        inputs: uint8 images, or float inputs ``(N, ...)``.
        targets: ``(N,)`` classes, ``(N, T)`` classes per step, or ``(N,)`` float values.
        mean, std: per channel, on the [0, 1] scale: images only.
        batch_size: samples per batch; the last batch of a pass is smaller unless ``drop_last``.
        device: where the tensors are stored and batches are made (``fit`` moves each batch to its own).

    Yields:
        ``(x, y)``: x float32 ``(B, C, H, W)`` images or the inputs as stored, y as stored, on ``device``.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        batch_size: int = 128,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        shuffle: bool = False,
        augment: bool = False,
        drop_last: bool = False,
        steps_per_epoch: int | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        images = inputs.dtype == torch.uint8
        if len(inputs) == 0 or len(inputs) != len(targets):
            raise ValueError(
                f"inputs and targets need the same number (> 0) of samples: {len(inputs)}, {len(targets)}"
            )
        steps = 1 if steps_per_epoch is None else steps_per_epoch
        for name, value in (("batch_size", batch_size), ("steps_per_epoch", steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if steps_per_epoch and drop_last and batch_size > len(inputs):
            raise ValueError(f"steps_per_epoch needs batches: drop_last leaves none of {len(inputs)} samples")
        if images != (mean is not None and std is not None) or (augment and not images):
            raise ValueError(
                "uint8 images need mean and std (and only they can be augmented); other inputs neither"
            )
        device = get_device(device)
        if images:
            if inputs.dim() not in (3, 4):
                raise ValueError(f"images must be (N, H, W) or (N, H, W, C), got {tuple(inputs.shape)}")
            inputs = inputs.unsqueeze(1) if inputs.dim() == 3 else inputs.permute(0, 3, 1, 2)
            channels = inputs.shape[1]
            if len(mean) != channels or len(std) != channels or min(std) <= 0:
                raise ValueError(
                    f"mean and std need one value per channel ({channels}), std > 0; got {mean}, {std}"
                )
            # (x / 255 - mean) / std  ==  x * scale + shift: one fused multiply-add per batch.
            mean_of, std_of = (torch.tensor(tuple(v), device=device).view(1, -1, 1, 1) for v in (mean, std))
            self._scale, self._shift = 1 / (255 * std_of), -mean_of / std_of
        self.inputs, self.targets = inputs.to(device).contiguous(), targets.to(device)
        self.device, self.num_samples = self.inputs.device, len(inputs)
        self.is_images, self.mean, self.std = images, mean, std
        self.batch_size, self.shuffle, self.augment, self.drop_last = batch_size, shuffle, augment, drop_last
        self.steps_per_epoch, self.seed, self._epoch = steps_per_epoch, seed, 0  # the next epoch's number
        self._plan = None  # (pass number, (its order, crop corners, flips)): the last pass drawn

    @property
    def batches_per_pass(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.steps_per_epoch or self.batches_per_pass

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch`` (its order and augmentation)."""
        self._epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, self._epoch = self._epoch, self._epoch + 1  # counted now, not at the first batch
        first = epoch * len(self)  # the epoch's batches, counted over all passes
        return (self._batch(*divmod(b, self.batches_per_pass)) for b in range(first, first + len(self)))

    def _pass_plan(self, number: int) -> tuple[torch.Tensor | None, ...]:
        """The order, crop corners and flips of pass ``number``, drawn at once on the CPU, so that they
        depend only on ``(seed, number)``, not on the device or on how many batches are used."""
        if self._plan is None or self._plan[0] != number:
            generator = random_generator(self.seed, _EPOCH_STREAM, number)
            n, plan = self.num_samples, [None, None, None]
            if self.shuffle:
                plan[0] = torch.randperm(n, generator=generator)
            if self.augment:
                plan[1] = torch.randint(0, 2 * AUGMENT_PADDING + 1, (n, 2), generator=generator)
                plan[2] = torch.rand(n, generator=generator) < 0.5
            self._plan = (number, tuple(None if p is None else p.to(self.device) for p in plan))
        return self._plan[1]

    def _batch(self, pass_number: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        order, corners, flips = self._pass_plan(pass_number)
        chosen = slice(index * self.batch_size, min((index + 1) * self.batch_size, self.num_samples))
        rows = chosen if order is None else order[chosen]  # storage order: a slice, no copy
        x, y = self.inputs[rows], self.targets[rows]
        if not self.is_images:
            return x, y
        if corners is not None:
            x = crop_and_flip(x, corners[chosen] if order is None else corners[order[chosen]], flips[rows])
        return torch.addcmul(self._shift, x.float(), self._scale), y

    def __repr__(self) -> str:
        return (
            f"Batches({self.num_samples} samples of shape {tuple(self.inputs.shape[1:])} on {self.device}, "
            f"{len(self)} batches of {self.batch_size} an epoch, shuffle={self.shuffle})"
        )


def crop_and_flip(images: torch.Tensor, corners: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Random crops of the zero-padded images, then left-right flips, for a whole batch at once.

    Args:
        images: uint8 ``(B, C, H, W)``, raw pixels (so the padding is black).
        corners: ``(B, 2)``, each crop's top-left ``(row, column)`` in the padded image, in ``0..8``.
        flips: bool ``(B,)``, which images to mirror.
    """
    count, channels, height, width = images.shape
    pad = AUGMENT_PADDING
    padded = F.pad(images, (pad, pad, pad, pad))  # (B, C, H + 8, W + 8), black around
    rows = corners[:, :1] + torch.arange(height, device=images.device)  # (B, H): the padded row read
    columns = torch.arange(width, device=images.device)
    columns = corners[:, 1:] + torch.where(
        flips[:, None], columns.flip(0), columns
    )  # (B, W), flipped: right to left
    source = rows[:, :, None] * (width + 2 * pad) + columns[:, None, :]  # (B, H, W): flat position
    source = source.view(count, 1, -1).expand(count, channels, height * width)
    return padded.view(count, channels, -1).gather(2, source).view(count, channels, height, width)


def stratified_indices(labels: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """A class-balanced random subset of ``size`` indices into ``labels``, sorted.

    Each class gets ``size // classes`` samples (the remainder goes one each to random classes; a class
    with too few gives all it has and the others make up the difference): ``size=1000`` on MNIST gives
    100 of each digit. The same seed and labels always give the same subset.
    """
    labels = labels.cpu().long()  # uint8 labels would index as a mask
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= len(labels):
        raise ValueError(f"size must be a whole number from 0 to {len(labels)}, got {size!r}")
    generator = random_generator(seed, _SUBSET_STREAM)
    counts = torch.bincount(labels)
    quotas, left = torch.zeros_like(counts), size
    while left > 0:  # share what is left among the classes that still have samples
        open_classes = torch.nonzero(quotas < counts).flatten()
        share = left // len(open_classes)
        if share == 0:  # fewer left than open classes: one more each for a random few
            quotas[open_classes[torch.randperm(len(open_classes), generator=generator)[:left]]] += 1
            break
        grant = torch.minimum(counts[open_classes] - quotas[open_classes], torch.tensor(share))
        quotas[open_classes] += grant
        left -= int(grant.sum())
    # Shuffle, then stable-sort by class: a sample is kept if its rank in its class is below the quota.
    shuffled = torch.randperm(len(labels), generator=generator)
    by_class = shuffled[torch.sort(labels[shuffled], stable=True).indices]
    rank = torch.arange(len(labels)) - (torch.cumsum(counts, 0) - counts)[labels[by_class]]
    return torch.sort(by_class[rank < quotas[labels[by_class]]]).values


def train_val_split(labels: torch.Tensor, val_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out a class-balanced validation set: ``(train_indices, val_indices)``, sorted and disjoint."""
    val_indices = stratified_indices(labels, val_size, seed)
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    held_out[val_indices] = True
    return torch.nonzero(~held_out).flatten(), val_indices


def permute_pixels(images: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """Move every image's pixels with one fixed permutation (``out[p] = images[permutation[p]]``, pixels
    counted row by row; the channels of a pixel move together).

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, C)``.
        permutation: each of ``0 .. H*W - 1`` once, e.g. ``torch.randperm(28 * 28)``.
    """
    count, height, width = images.shape[:3]
    if not torch.equal(torch.sort(permutation.cpu()).values, torch.arange(height * width)):
        raise ValueError(f"permutation must hold each pixel position 0..{height * width - 1} exactly once")
    flat = images.reshape(count, height * width, *images.shape[3:])
    return flat[:, permutation.to(images.device)].reshape(images.shape)


def shift_images(images: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Move images by whole pixels, ``dx`` to the right and ``dy`` down; what comes in is black (0):
    ``out[:, y, x] = images[:, y - dy, x - dx]`` where that is inside the image. Shapes as
    :func:`permute_pixels`."""
    height, width = images.shape[1], images.shape[2]
    shifted = torch.zeros_like(images)
    if abs(dx) < width and abs(dy) < height:
        shifted[:, max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = images[
            :, max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
        ]
    return shifted


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo the normalisation of :class:`Batches` for showing images ``x``, ``(C, H, W)`` or
    ``(B, C, H, W)``: ``x * std + mean``, clamped to [0, 1]."""
    shape = (len(mean), 1, 1)
    mean_of, std_of = (
        torch.tensor(tuple(v), dtype=x.dtype, device=x.device).view(shape) for v in (mean, std)
    )
    return (x * std_of + mean_of).clamp(0, 1)


@dataclass
class BatchSplits:
    """The batches of one experiment: ``train`` (shuffled, maybe augmented), ``val`` (None without a
    validation set) and ``test`` (look at it once, at the end), with the class names."""

    train: Batches
    val: Batches | None
    test: Batches
    classes: tuple[str, ...]


def make_batches(
    dataset: ImageDataset,
    batch_size: int = 128,
    *,
    val_size: int = 0,
    train_subset: int | None = None,
    test_subset: int | None = None,
    augment: bool | None = None,
    drop_last: bool = False,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> BatchSplits:
    """Split a dataset into training, validation and test batches.

    ``val_size`` training images are held out (class-balanced); of the rest, ``train_subset`` (if given)
    are kept for training; ``test_subset`` (if given) test images. All are normalised with the training
    set's mean and std. ``augment=None`` means True for CIFAR-10, False for MNIST (a mirrored digit is
    another symbol). Validation and test batches (of 1,024: no gradients to keep, so larger batches fit) are
    never shuffled or augmented. Sizes that do not fit
    the dataset raise a ``ValueError`` that gives the largest possible.
    """
    train, val = train_val_split(dataset.y_train, val_size, seed)
    if train_subset is not None:
        if not 1 <= train_subset <= len(train):
            raise ValueError(
                f"train_subset must be from 1 to {len(train)} (after val_size={val_size}), got {train_subset}"
            )
        train = train[stratified_indices(dataset.y_train[train], train_subset, seed)]
    test = torch.arange(len(dataset.y_test))
    if test_subset is not None:
        test = stratified_indices(dataset.y_test, test_subset, seed)
    augment = dataset.name == "cifar10" if augment is None else augment

    def batches(images: torch.Tensor, labels: torch.Tensor, training: bool) -> Batches:
        return Batches(
            images, labels, batch_size=batch_size if training else 1024,
            mean=dataset.mean, std=dataset.std, shuffle=training, augment=augment and training,
            drop_last=drop_last and training, device=device, seed=seed,
        )  # fmt: skip

    return BatchSplits(
        train=batches(dataset.x_train[train], dataset.y_train[train], True),
        val=batches(dataset.x_train[val], dataset.y_train[val], False) if val_size else None,
        test=batches(dataset.x_test[test], dataset.y_test[test], False),
        classes=dataset.classes,
    )
