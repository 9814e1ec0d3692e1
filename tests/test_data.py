"""course_utils.data: datasets load exactly or fail clearly; batches cover, shuffle and augment as promised.

Most tests use small synthetic tensors. The tests of the real MNIST and CIFAR-10 files run
when COURSE_DATA_DIR names a folder holding mnist.npz and cifar10.npz
(``COURSE_DATA_DIR=/path/to/data pytest tests/test_data.py``).
"""

from __future__ import annotations

import os
import pickle
import pwd
import socket
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils.data import (
    AUGMENT_PADDING,
    CIFAR10_CLASSES,
    DATASET_NAMES,
    MNIST_CLASSES,
    Batches,
    BatchSplits,
    DatasetCorruptError,
    DatasetError,
    DatasetNotFoundError,
    DatasetPermissionError,
    ImageDataset,
    TrainingData,
    default_data_dir,
    denormalize,
    load_dataset,
    make_batches,
    permute_pixels,
    shift_images,
    stratified_indices,
    train_val_split,
)
from course_utils.environment import seed_everything

IMAGE_SHAPES = {"mnist": (28, 28), "cifar10": (32, 32, 3)}


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def synthetic_arrays(
    name: str, num_train: int = 30, num_test: int = 20, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random arrays in the layout of a dataset's .npz file: uint8 images, uint8 labels 0..9."""
    rng = np.random.default_rng(seed)
    shape = IMAGE_SHAPES[name]
    return {
        "x_train": rng.integers(0, 256, (num_train, *shape), dtype=np.uint8),
        "y_train": rng.integers(0, 10, num_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (num_test, *shape), dtype=np.uint8),
        "y_test": rng.integers(0, 10, num_test).astype(np.uint8),
    }


def one_epoch(batches: Batches) -> tuple[torch.Tensor, torch.Tensor]:
    """All batches of one epoch, concatenated: x (N, C, H, W), y (N,)."""
    xs, ys = zip(*batches)
    return torch.cat(xs), torch.cat(ys)


def raw_pixels(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Undo (x / 255 - mean) / std exactly: float (N, C, H, W) -> uint8 (N, C, H, W)."""
    mean_tensor = torch.tensor(mean).view(1, -1, 1, 1)
    std_tensor = torch.tensor(std).view(1, -1, 1, 1)
    return ((x.double() * std_tensor + mean_tensor) * 255).round().to(torch.uint8)


def find_crop_windows(
    outputs: torch.Tensor, originals: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which window of the zero-padded original each augmented output is.

    Args:
        outputs, originals: uint8 (N, C, H, W), outputs[i] augmented from originals[i].

    Returns:
        ``(matches, rows, columns, flipped)``: matches (N,) counts the windows of padded
        image i, plain or mirrored, equal to output i. When every count is 1, rows and
        columns (N,) give each window's top-left corner in the padded image (0..8) and
        flipped (N,) whether it is mirrored.
    """
    height, width = originals.shape[2:]
    padded = F.pad(originals, [AUGMENT_PADDING] * 4)
    windows = padded.unfold(2, height, 1).unfold(3, width, 1)  # (N, C, 9, 9, H, W)
    target = outputs[:, :, None, None]
    plain = (windows == target).all(dim=5).all(dim=4).all(dim=1)  # (N, 9, 9)
    mirrored = (windows.flip(-1) == target).all(dim=5).all(dim=4).all(dim=1)
    equal = torch.stack([plain, mirrored], dim=1)  # (N, 2, 9, 9)
    _, flipped, rows, columns = torch.nonzero(equal, as_tuple=True)  # one entry per match, image by image
    return equal.flatten(1).sum(dim=1), rows, columns, flipped.bool()


def id_images(name: str, count: int) -> torch.Tensor:
    """uint8 images whose first two pixels spell their index: pixel 0 = i % 256, pixel 1 = i // 256."""
    images = torch.zeros(count, *IMAGE_SHAPES[name], dtype=torch.uint8)
    index = torch.arange(count)
    images[:, 0, 0] = (index % 256).to(torch.uint8).view(-1, *([1] * (images.dim() - 3)))
    images[:, 0, 1] = (index // 256).to(torch.uint8).view(-1, *([1] * (images.dim() - 3)))
    return images


def image_ids(stored: torch.Tensor) -> torch.Tensor:
    """Read back the index spelled by id_images from Batches.images (N, C, H, W)."""
    return stored[:, 0, 0, 0].long() + 256 * stored[:, 0, 0, 1].long()


def synthetic_dataset(name: str, num_train: int = 600, num_test: int = 200) -> ImageDataset:
    """An ImageDataset with balanced labels (i % 10) and images that spell their index."""
    channels = 1 if name == "mnist" else 3
    return ImageDataset(
        name=name,
        x_train=id_images(name, num_train),
        y_train=torch.arange(num_train) % 10,
        x_test=id_images(name, num_test),
        y_test=torch.arange(num_test) % 10,
        classes=MNIST_CLASSES if name == "mnist" else CIFAR10_CLASSES,
        mean=(0.25,) * channels,
        std=(0.5,) * channels,
        path=Path("synthetic.npz"),
    )


# ---------------------------------------------------------------------------------------------
# Where the data live
# ---------------------------------------------------------------------------------------------


def test_default_data_dir_prefers_argument_then_environment_then_repository(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "from_env"))
    assert default_data_dir(tmp_path / "given") == tmp_path / "given"
    assert default_data_dir(str(tmp_path / "given")) == tmp_path / "given"
    assert default_data_dir() == tmp_path / "from_env"
    monkeypatch.delenv("COURSE_DATA_DIR")
    repository_root = Path(__file__).resolve().parent.parent
    assert default_data_dir() == repository_root / "data"


def test_dataset_names_and_classes():
    assert DATASET_NAMES == ("mnist", "cifar10")
    assert MNIST_CLASSES == ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
    assert CIFAR10_CLASSES[0] == "airplane" and CIFAR10_CLASSES[-1] == "truck" and len(CIFAR10_CLASSES) == 10


# ---------------------------------------------------------------------------------------------
# load_dataset from .npz files
# ---------------------------------------------------------------------------------------------


def test_unknown_dataset_name_lists_the_valid_names(tmp_path):
    with pytest.raises(ValueError, match="mnist, cifar10"):
        load_dataset("imagenet", tmp_path)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_load_dataset_reads_the_npz_exactly(name, tmp_path):
    arrays = synthetic_arrays(name)
    np.savez(tmp_path / f"{name}.npz", **arrays)
    dataset = load_dataset(name, tmp_path)

    assert dataset.name == name and dataset.path == tmp_path / f"{name}.npz"
    for key, array in arrays.items():
        tensor = getattr(dataset, key)
        assert tensor.dtype == (torch.uint8 if key.startswith("x") else torch.int64)
        assert np.array_equal(tensor.numpy(), array)
    channels = 1 if name == "mnist" else 3
    assert dataset.channels == channels
    assert dataset.image_shape == (channels, *IMAGE_SHAPES[name][:2])
    assert dataset.num_classes == 10
    assert dataset.classes == (MNIST_CLASSES if name == "mnist" else CIFAR10_CLASSES)
    # mean and std per channel of the training images only, on the [0, 1] scale.
    pixels = arrays["x_train"].reshape(-1, channels) / 255.0
    np.testing.assert_allclose(dataset.mean, pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(dataset.std, pixels.std(axis=0), rtol=1e-12)
    assert name in repr(dataset) and "30 train" in repr(dataset)


def test_load_dataset_accepts_int64_labels_and_ignores_extra_keys(tmp_path):
    arrays = synthetic_arrays("mnist")
    arrays["y_train"] = arrays["y_train"].astype(np.int64)
    np.savez(tmp_path / "mnist.npz", notes=np.zeros(3), **arrays)
    dataset = load_dataset("MNIST", tmp_path)  # the name is not case-sensitive
    assert np.array_equal(dataset.y_train.numpy(), arrays["y_train"])


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path: Path) -> None:
    path.write_bytes(b"this is not a zip archive\n" * 100)


def resave(**changes: np.ndarray | None) -> Callable[[Path], None]:
    """A file mutation that rewrites the .npz with some arrays replaced (None: removed)."""

    def mutate(path: Path) -> None:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
        for key, value in changes.items():
            if value is None:
                del arrays[key]
            else:
                arrays[key] = value
        np.savez(path, **arrays)

    return mutate


BAD_FILES = {
    # case: (dataset, how the good file is spoiled, fragments the message must contain)
    "truncated": ("mnist", truncate, ["mnist.npz", "truncated or corrupt", "Delete"]),
    "not a zip": ("cifar10", garble, ["cifar10.npz", "could not be read", "Delete"]),
    "missing key": ("mnist", resave(y_test=None), ["lacks", "y_test", "x_train, y_train, x_test, y_test"]),
    "float images": (
        "mnist",
        resave(x_train=np.zeros((30, 28, 28), np.float32)),
        ["x_train", "float32", "expected uint8 of shape (N, 28, 28)"],
    ),
    "extra axis": (
        "mnist",
        resave(x_test=np.zeros((20, 28, 28, 1), np.uint8)),
        ["x_test", "(20, 28, 28, 1)", "(N, 28, 28)"],
    ),
    "channels first": (
        "cifar10",
        resave(x_train=np.zeros((30, 3, 32, 32), np.uint8)),
        ["(30, 3, 32, 32)", "(N, 32, 32, 3)", "transpose(0, 2, 3, 1)"],
    ),
    "label count": ("mnist", resave(y_train=np.zeros(29, np.uint8)), ["y_train", "(29,)", "(30,)"]),
    "float labels": ("mnist", resave(y_test=np.zeros(20, np.float64)), ["y_test", "float64", "integer"]),
    "label 10": (
        "cifar10",
        resave(y_train=np.full(30, 10, np.uint8)),
        ["y_train", "classes 0..9", "30 labels out of range"],
    ),
    "negative label": (
        "mnist",
        resave(y_test=np.array([0] * 19 + [-1], np.int64)),
        ["y_test", "-1", "index 19"],
    ),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_files_raise_a_clear_dataset_error(case, tmp_path, monkeypatch):
    name, spoil, fragments = BAD_FILES[case]
    path = tmp_path / f"{name}.npz"
    np.savez(path, **synthetic_arrays(name))
    spoil(path)
    with pytest.raises(DatasetCorruptError) as caught:
        load_dataset(name, tmp_path)
    assert isinstance(caught.value, DatasetError)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


# ---------------------------------------------------------------------------------------------
# No .npz file: torchvision's download path
# ---------------------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the idx format of MNIST's raw files (big-endian header)."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def write_torchvision_mnist(root: Path, arrays: dict[str, np.ndarray]) -> None:
    """The files torchvision.datasets.MNIST leaves in root/MNIST/raw after a download."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", arrays[f"x_{split}"])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", arrays[f"y_{split}"])


def write_torchvision_cifar10(root: Path, arrays: dict[str, np.ndarray]) -> None:
    """The pickled batches torchvision.datasets.CIFAR10 reads from root/cifar-10-batches-py."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def write_batch(file_name: str, images: np.ndarray, labels: np.ndarray) -> None:
        # The original format: one row of 3072 bytes per image, the R, G, then B planes.
        rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
        with open(folder / file_name, "wb") as file:
            pickle.dump({"data": rows, "labels": labels.tolist()}, file)

    train_parts = np.array_split(np.arange(len(arrays["x_train"])), 5)
    for number, part in enumerate(train_parts, start=1):
        write_batch(f"data_batch_{number}", arrays["x_train"][part], arrays["y_train"][part])
    write_batch("test_batch", arrays["x_test"], arrays["y_test"])
    with open(folder / "batches.meta", "wb") as file:
        pickle.dump({"label_names": list(CIFAR10_CLASSES)}, file)


@pytest.fixture
def offline_torchvision(monkeypatch):
    """Make torchvision's MNIST and CIFAR10 fail the way they do without a network."""
    import torchvision.datasets

    def failing(message: str, error: type[Exception]) -> type:
        class Offline:
            def __init__(self, root, train=True, download=False):
                raise error(message)

        return Offline

    # The errors torchvision raises when the host cannot be resolved.
    mnist_error = (
        "Error downloading train-images-idx3-ubyte.gz:\nTried https://ossci-datasets.s3.amazonaws.com/mnist/,"
        " got:\n<urlopen error [Errno -3] Temporary failure in name resolution>\n"
    )
    monkeypatch.setattr(torchvision.datasets, "MNIST", failing(mnist_error, RuntimeError))
    cifar_error = socket.gaierror(-3, "Temporary failure in name resolution")
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", failing(cifar_error, urllib.error.URLError))


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_no_files_and_no_network_raise_dataset_not_found(name, tmp_path, offline_torchvision):
    folder = tmp_path / "empty"
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset(name, folder)
    assert isinstance(caught.value, DatasetError)
    message = str(caught.value)
    for fragment in (
        str(folder),  # where it looked
        f"{name}.npz",  # the file it expected
        "download failed",
        "Temporary failure in name resolution",  # why, ...
        "copy",
        "keys x_train, y_train, x_test, y_test",  # ... and how to fix it
        "COURSE_DATA_DIR",
    ):
        assert fragment in message
    reason_line = next(line for line in message.splitlines() if "download failed" in line)
    assert "name resolution" in reason_line  # torchvision's multi-line error, on one line
    assert not (folder / f"{name}.npz").exists()
    assert not folder.exists()  # the data folder this attempt created is gone again


@pytest.fixture
def no_network(monkeypatch):
    """Every URL fails as it does on a machine without internet; torchvision's own code runs."""

    def unreachable(request, *args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_a_failed_download_removes_the_empty_folders_it_created_and_nothing_else(name, tmp_path, no_network):
    new_folder = tmp_path / "new" / "data"
    with pytest.raises(DatasetNotFoundError, match="download failed.*name resolution"):
        load_dataset(name, new_folder)
    assert list(tmp_path.iterdir()) == []  # no data/, no MNIST/raw: nothing suggests a download happened

    existing = tmp_path / "existing"
    (existing / "mine").mkdir(parents=True)  # an empty folder of the user's own stays
    (existing / "notes.txt").write_text("mine too")
    (existing / "MNIST").mkdir()  # torchvision's folder, there before: only the raw/ made now goes
    with pytest.raises(DatasetNotFoundError):
        load_dataset(name, existing)
    assert sorted(entry.name for entry in existing.iterdir()) == ["MNIST", "mine", "notes.txt"]
    assert list((existing / "MNIST").iterdir()) == []


def test_a_folder_named_like_the_dataset_file_is_reported_as_a_folder(tmp_path, offline_torchvision):
    (tmp_path / "mnist.npz").mkdir()
    with pytest.raises(DatasetError, match=r"mnist\.npz is a directory, not a file") as caught:
        load_dataset("mnist", tmp_path)
    assert not isinstance(caught.value, DatasetNotFoundError) and "not there" not in str(caught.value)


def test_a_broken_link_is_reported_as_a_link_to_nothing(tmp_path, offline_torchvision):
    (tmp_path / "cifar10.npz").symlink_to(tmp_path / "moved" / "cifar10.npz")
    with pytest.raises(DatasetError, match=r"is a link to .*moved/cifar10\.npz, which does not exist"):
        load_dataset("cifar10", tmp_path)


def test_an_unreadable_file_is_a_permission_problem_not_corruption(tmp_path, monkeypatch):
    path = tmp_path / "mnist.npz"
    np.savez(path, **synthetic_arrays("mnist"))
    path.chmod(0o600)  # as older versions wrote every cache, whatever the umask

    def no_permission(file, *args, **kwargs):
        # What np.load's open() raises for another user's 0600 file; the tests may run as root,
        # whom no file mode stops, so the refusal is simulated.
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(np, "load", no_permission)
    with pytest.raises(DatasetPermissionError) as caught:
        load_dataset("mnist", tmp_path)
    assert isinstance(caught.value, DatasetError)
    message = str(caught.value)
    owner = pwd.getpwuid(path.stat().st_uid).pw_name
    for fragment in (str(path), f"belongs to {owner}", "-rw-------", "no read permission", "not damaged"):
        assert fragment in message
    assert f"Ask {owner}" in message and f"chmod a+r {path}" in message and "COURSE_DATA_DIR" in message
    for wrong_advice in ("truncated", "corrupt", "Delete"):
        assert wrong_advice not in message


def test_a_data_folder_that_cannot_be_opened_is_a_permission_problem(tmp_path, monkeypatch):
    path = tmp_path / "mnist.npz"
    real_stat = os.stat

    def folder_closed(target, *args, **kwargs):
        if str(target) == str(path):
            raise PermissionError(13, "Permission denied", str(target))
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", folder_closed)
    with pytest.raises(DatasetPermissionError, match="could not be looked at"):
        load_dataset("mnist", tmp_path)  # not "not there", and no download tried


def test_download_path_builds_the_cache_from_torchvision_mnist_files(tmp_path, monkeypatch):
    arrays = synthetic_arrays("mnist", num_train=12, num_test=5, seed=1)
    write_torchvision_mnist(tmp_path, arrays)
    # torchvision finds its raw files, so download=True does not touch the network.
    dataset = load_dataset("mnist", tmp_path)

    cache = tmp_path / "mnist.npz"
    assert dataset.path == cache
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["MNIST", "mnist.npz"]  # no temp file
    with np.load(cache) as archive:
        assert sorted(archive.files) == sorted(arrays)
        for key, array in arrays.items():
            assert archive[key].dtype == np.uint8 and np.array_equal(archive[key], array)
    for key, array in arrays.items():
        assert np.array_equal(getattr(dataset, key).numpy(), array)

    # The second load reads only the cache: it works with torchvision unable to provide anything.
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "MNIST", None)
    again = load_dataset("mnist", tmp_path)
    for key in arrays:
        assert torch.equal(getattr(again, key), getattr(dataset, key))
    assert again.mean == dataset.mean and again.std == dataset.std


def test_download_path_builds_the_cache_from_torchvision_cifar10_files(tmp_path, monkeypatch):
    import torchvision.datasets

    # torchvision checks the md5 sums of the real CIFAR-10 files (the 5 batches, the test batch
    # and batches.meta), which our small stand-ins cannot match. Its check_integrity is the one
    # function doing that (CIFAR10._check_integrity and _load_meta both call it), so it is
    # replaced by a check that the file exists; everything else is torchvision's real code.
    monkeypatch.setattr(
        torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path)
    )
    arrays = synthetic_arrays("cifar10", num_train=10, num_test=3, seed=2)
    write_torchvision_cifar10(tmp_path, arrays)
    dataset = load_dataset("cifar10", tmp_path)

    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["cifar-10-batches-py", "cifar10.npz"]
    with np.load(tmp_path / "cifar10.npz") as archive:
        for key, array in arrays.items():
            assert archive[key].dtype == np.uint8 and np.array_equal(archive[key], array)
    for key, array in arrays.items():
        assert np.array_equal(getattr(dataset, key).numpy(), array)
    assert dataset.image_shape == (3, 32, 32)


@pytest.mark.parametrize("interruption", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_an_interrupted_cache_write_leaves_no_cache_and_no_temp_file(interruption, tmp_path, monkeypatch):
    write_torchvision_mnist(tmp_path, synthetic_arrays("mnist", num_train=12, num_test=5))

    def write_half_then_fail(file, **arrays):
        file.write(b"PK\x03\x04 the first bytes of a zip archive")
        raise interruption

    monkeypatch.setattr(np, "savez", write_half_then_fail)
    expected = DatasetError if isinstance(interruption, Exception) else KeyboardInterrupt
    with pytest.raises(expected) as caught:
        load_dataset("mnist", tmp_path)
    if expected is DatasetError:
        assert "could not write" in str(caught.value) and "No space left" in str(caught.value)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["MNIST"]


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [None, 3])
def test_batches_yield_normalised_float_images_and_int64_labels(channels):
    generator = torch.Generator().manual_seed(0)
    shape = (50, 6, 5) if channels is None else (50, 6, 5, channels)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (50,), dtype=torch.uint8, generator=generator)
    mean, std = ((0.3,), (0.2,)) if channels is None else ((0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
    batches = Batches(images, labels, mean=mean, std=std, batch_size=16)

    as_nchw = images.unsqueeze(1) if channels is None else images.permute(0, 3, 1, 2)
    assert batches.images.dtype == torch.uint8 and torch.equal(batches.images, as_nchw)
    assert batches.labels.dtype == torch.int64 and torch.equal(batches.labels, labels.long())
    assert batches.num_samples == 50 and len(batches) == 4 and batches.device == torch.device("cpu")
    sizes = []
    for x, y in batches:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (len(mean), 6, 5) and x.device.type == "cpu" and y.device.type == "cpu"
        sizes.append(len(y))
    assert sizes == [16, 16, 16, 2]
    x, y = one_epoch(batches)
    expected = (as_nchw.float() / 255 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(
        1, -1, 1, 1
    )
    torch.testing.assert_close(x, expected)
    assert torch.equal(y, labels.long())
    torch.testing.assert_close(denormalize(x, mean, std), as_nchw.float() / 255)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize(("num_samples", "batch_size"), [(100, 10), (101, 10), (130, 64), (7, 128), (1, 1)])
def test_every_sample_appears_once_per_epoch(num_samples, batch_size, shuffle, drop_last):
    # Label i goes with an image filled with i % 256, so we can check that pairs stay together.
    labels = torch.arange(num_samples)
    images = (labels % 256).to(torch.uint8).view(-1, 1, 1).expand(num_samples, 3, 4).contiguous()
    batches = Batches(
        images, labels, mean=(0.0,), std=(1.0,), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last
    )
    full_batches, remainder = divmod(num_samples, batch_size)
    assert len(batches) == full_batches + (1 if remainder and not drop_last else 0)
    for _epoch in range(2):
        seen = [(x, y) for x, y in batches]
        assert len(seen) == len(batches)
        if drop_last:
            assert all(len(y) == batch_size for _, y in seen)
        if not seen:
            continue
        x, y = torch.cat([x for x, _ in seen]), torch.cat([y for _, y in seen])
        assert len(torch.unique(y)) == len(y) == (full_batches * batch_size if drop_last else num_samples)
        if not drop_last:
            assert torch.equal(torch.sort(y).values, labels)
        if not shuffle:
            assert torch.equal(y, labels[: len(y)])
        assert torch.equal((x[:, 0] * 255).round().long(), (y % 256).view(-1, 1, 1).expand(-1, 3, 4))


def shuffled_augmented(seed: int = 0) -> Batches:
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (96, 8, 8, 3), dtype=torch.uint8, generator=generator)
    return Batches(
        images,
        torch.arange(96),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        batch_size=32,
        shuffle=True,
        augment=True,
        seed=seed,
    )


def test_same_seed_same_batches_and_each_epoch_differs():
    first, second = shuffled_augmented(seed=7), shuffled_augmented(seed=7)
    epochs_first = [one_epoch(first) for _ in range(3)]
    epochs_second = [one_epoch(second) for _ in range(3)]
    for (x1, y1), (x2, y2) in zip(epochs_first, epochs_second):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    # A plain loop over epochs sees a new order each time; another seed gives other orders.
    orders = [y for _, y in epochs_first]
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    assert first.epoch == 3
    assert not torch.equal(one_epoch(shuffled_augmented(seed=8))[1], orders[0])


def test_set_epoch_replays_an_epoch_exactly():
    reference = shuffled_augmented()
    epochs = [one_epoch(reference) for _ in range(4)]
    resumed = shuffled_augmented()
    resumed.set_epoch(2)
    for expected_x, expected_y in epochs[2:]:
        x, y = one_epoch(resumed)
        assert torch.equal(x, expected_x) and torch.equal(y, expected_y)
    resumed.set_epoch(0)
    assert torch.equal(one_epoch(resumed)[0], epochs[0][0])
    with pytest.raises(ValueError, match="epoch"):
        resumed.set_epoch(-1)


def test_batches_never_use_the_global_random_state():
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    batches = shuffled_augmented()
    x, y = one_epoch(batches)
    assert torch.equal(torch.get_rng_state(), global_state)
    # Reseeding the global generator (as seed_everything does) changes nothing either.
    seed_everything(0)
    first = one_epoch(shuffled_augmented())
    torch.rand(1000)  # e.g. dropout masks drawn by a model between two runs
    seed_everything(0)
    second = one_epoch(shuffled_augmented())
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert torch.equal(first[0], x) and torch.equal(first[1], y)


def test_random_crops_are_windows_of_the_black_padded_image():
    generator = torch.Generator().manual_seed(3)
    # Pixels 1..255: a window that reaches into the padding holds 0s found nowhere in the image.
    images = torch.randint(1, 256, (400, 10, 10, 3), dtype=torch.uint8, generator=generator)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    batches = Batches(images, torch.arange(400), mean=mean, std=std, batch_size=64, augment=True)
    x, y = one_epoch(batches)
    outputs = raw_pixels(x, mean, std)

    matches, rows, columns, flipped = find_crop_windows(outputs, images.permute(0, 3, 1, 2))
    assert (matches == 1).all()  # each output is exactly one window of its padded image
    assert set(rows.tolist()) == set(range(9)) and set(columns.tolist()) == set(range(9))
    assert 0 < flipped.sum() < 400
    # Some crops show padding, and padding is black in the raw image, i.e. -mean/std after normalising.
    assert (outputs == 0).any()
    black = torch.tensor([-m / s for m, s in zip(mean, std)]).view(1, 3, 1, 1).expand_as(x)
    torch.testing.assert_close(x[outputs == 0], black[outputs == 0])


def test_flips_happen_half_the_time_and_crop_offsets_are_uniform():
    count = 2000
    generator = torch.Generator().manual_seed(4)
    images = torch.randint(1, 256, (count, 9, 9), dtype=torch.uint8, generator=generator)
    batches = Batches(
        images, torch.arange(count), mean=(0.0,), std=(1.0,), batch_size=500, augment=True, seed=5
    )
    x, _ = one_epoch(batches)
    matches, rows, columns, flipped = find_crop_windows(raw_pixels(x, (0.0,), (1.0,)), images.unsqueeze(1))
    assert (matches == 1).all()
    # Binomial(2000, 1/2): standard deviation 22.4; 5 standard deviations is a false alarm once in 3 million.
    assert abs(int(flipped.sum()) - count / 2) < 5 * (count * 0.25) ** 0.5
    # Each of the 9 offsets along each axis: Binomial(2000, 1/9), mean 222, standard deviation 14.
    for offsets in (rows, columns):
        offset_counts = torch.bincount(offsets, minlength=9).double()
        assert ((offset_counts - count / 9).abs() < 5 * (count * (1 / 9) * (8 / 9)) ** 0.5).all()


def test_batches_are_training_data_and_leave_the_memory_layout_to_fit():
    generator = torch.Generator().manual_seed(6)
    images = torch.randint(0, 256, (20, 8, 8, 3), dtype=torch.uint8, generator=generator)
    batches = Batches(images, torch.arange(20), mean=(0.5,) * 3, std=(0.2,) * 3, batch_size=8, augment=True)
    assert isinstance(batches, TrainingData)  # __iter__, __len__ and set_epoch, what fit needs
    assert not isinstance([(torch.zeros(1), torch.zeros(1))], TrainingData)  # no set_epoch
    for x, _ in batches:
        assert x.is_contiguous()  # plain (N, C, H, W): fit converts to channels-last when it wants


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_the_same_seed_gives_the_same_batches_on_gpu_and_cpu():
    generator = torch.Generator().manual_seed(7)
    images = torch.randint(0, 256, (300, 12, 12, 3), dtype=torch.uint8, generator=generator)
    common = dict(
        mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3), batch_size=64, shuffle=True, augment=True, seed=3
    )
    on_cpu = Batches(images, torch.arange(300), device="cpu", **common)
    on_gpu = Batches(images, torch.arange(300), device="cuda", **common)
    assert on_gpu.images.device.type == "cuda"
    for _epoch in range(2):
        for (x_cpu, y_cpu), (x_gpu, y_gpu) in zip(on_cpu, on_gpu):
            assert x_gpu.device.type == "cuda" and y_gpu.device.type == "cuda"
            assert torch.equal(y_cpu, y_gpu.cpu())
            torch.testing.assert_close(x_cpu, x_gpu.cpu(), rtol=0, atol=1e-6)


BAD_BATCHES_ARGUMENTS = {
    # case: (changes to good arguments, error type, fragment of the message)
    "batch size 0": (dict(batch_size=0), ValueError, "batch_size"),
    "float images": (dict(images=torch.zeros(10, 4, 4)), TypeError, "uint8"),
    "numpy images": (dict(images=np.zeros((10, 4, 4), np.uint8)), TypeError, "torch.from_numpy"),
    "channels first": (
        dict(images=torch.zeros(10, 3, 8, 8, dtype=torch.uint8)),
        ValueError,
        "permute(0, 2, 3, 1)",
    ),
    "2-D images": (dict(images=torch.zeros(10, 16, dtype=torch.uint8)), ValueError, "(N, H, W)"),
    "fewer labels": (dict(labels=torch.zeros(9, dtype=torch.long)), ValueError, "len(images) = 10"),
    "float labels": (dict(labels=torch.zeros(10)), TypeError, "integer"),
    "mean per channel": (dict(mean=(0.1, 0.2, 0.3)), ValueError, "1 channel(s), got 3 mean"),
    "zero std": (dict(std=(0.0,)), ValueError, "std"),
    "negative seed": (dict(seed=-1), ValueError, "seed"),
    "no images": (
        dict(images=torch.zeros(0, 4, 4, dtype=torch.uint8), labels=torch.zeros(0, dtype=torch.long)),
        ValueError,
        "empty",
    ),
}


@pytest.mark.parametrize("case", BAD_BATCHES_ARGUMENTS, ids=list(BAD_BATCHES_ARGUMENTS))
def test_batches_reject_bad_arguments_clearly(case):
    changes, error, fragment = BAD_BATCHES_ARGUMENTS[case]
    arguments = dict(
        images=torch.zeros(10, 4, 4, dtype=torch.uint8),
        labels=torch.zeros(10, dtype=torch.long),
        mean=(0.1,),
        std=(0.3,),
    )
    arguments.update(changes)
    images, labels = arguments.pop("images"), arguments.pop("labels")
    with pytest.raises(error) as caught:
        Batches(images, labels, **arguments)
    assert fragment in str(caught.value)


# ---------------------------------------------------------------------------------------------
# Subsets, splits and image transformations
# ---------------------------------------------------------------------------------------------


def test_stratified_indices_are_class_balanced_and_reproducible():
    generator = torch.Generator().manual_seed(8)
    labels = (torch.arange(500) % 10)[torch.randperm(500, generator=generator)]
    chosen = stratified_indices(labels, 100, seed=1)
    assert chosen.dtype == torch.int64 and torch.equal(chosen, torch.sort(chosen).values)
    assert len(torch.unique(chosen)) == 100
    assert torch.equal(torch.bincount(labels[chosen], minlength=10), torch.full((10,), 10))
    assert torch.equal(stratified_indices(labels, 100, seed=1), chosen)
    assert not torch.equal(stratified_indices(labels, 100, seed=2), chosen)
    # A size that does not divide by 10: every class gets 10 or 11.
    counts = torch.bincount(labels[stratified_indices(labels, 105)], minlength=10)
    assert counts.sum() == 105 and counts.min() == 10 and counts.max() == 11
    assert len(stratified_indices(labels, 0)) == 0 and len(stratified_indices(labels, 500)) == 500


def test_stratified_indices_make_up_for_a_small_class():
    labels = torch.cat([torch.zeros(3), torch.ones(50), torch.full((50,), 2)]).long()
    counts = torch.bincount(labels[stratified_indices(labels, 60)], minlength=3)
    assert counts[0] == 3 and counts.sum() == 60 and sorted(counts[1:].tolist()) == [28, 29]


def test_stratified_indices_reject_impossible_sizes():
    labels = torch.arange(20) % 4
    with pytest.raises(ValueError, match="from 0 to len"):
        stratified_indices(labels, 21)
    with pytest.raises(ValueError, match="from 0 to len"):
        stratified_indices(labels, -1)
    with pytest.raises(ValueError, match="integer tensor"):
        stratified_indices(labels.float(), 5)


def test_train_val_split_is_disjoint_complete_and_stratified():
    labels = torch.arange(1000) % 10
    train, val = train_val_split(labels, 200, seed=3)
    assert len(val) == 200 and len(train) == 800
    assert len(np.intersect1d(train.numpy(), val.numpy())) == 0
    assert torch.equal(torch.sort(torch.cat([train, val])).values, torch.arange(1000))
    assert torch.equal(torch.bincount(labels[val]), torch.full((10,), 20))
    again_train, again_val = train_val_split(labels, 200, seed=3)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    no_train_loss, no_val = train_val_split(labels, 0)
    assert len(no_val) == 0 and torch.equal(no_train_loss, torch.arange(1000))


@pytest.mark.parametrize("channels", [None, 3])
def test_permute_pixels_moves_whole_pixels_and_can_be_undone(channels):
    generator = torch.Generator().manual_seed(9)
    shape = (5, 4, 6) if channels is None else (5, 4, 6, channels)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    permutation = torch.randperm(24, generator=generator)
    permuted = permute_pixels(images, permutation)
    assert permuted.shape == images.shape and permuted.dtype == torch.uint8
    for position in range(24):  # output pixel p is input pixel permutation[p], all channels together
        row, column = divmod(position, 6)
        source_row, source_column = divmod(int(permutation[position]), 6)
        assert torch.equal(permuted[:, row, column], images[:, source_row, source_column])
    assert torch.equal(permute_pixels(permuted, torch.argsort(permutation)), images)
    assert torch.equal(permute_pixels(images, torch.arange(24)), images)


def test_permute_pixels_rejects_a_non_permutation():
    images = torch.zeros(2, 3, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="exactly once"):
        permute_pixels(images, torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match="exactly once"):
        permute_pixels(images, torch.arange(8))


@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (2, 0), (0, 3), (-1, 2), (3, -2), (-4, -4), (5, 0), (0, -9)])
@pytest.mark.parametrize("channels", [None, 2])
def test_shift_images_translates_and_fills_with_black(dx, dy, channels):
    generator = torch.Generator().manual_seed(10)
    shape = (3, 4, 5) if channels is None else (3, 4, 5, channels)
    images = torch.randint(1, 256, shape, dtype=torch.uint8, generator=generator)
    shifted = shift_images(images, dx=dx, dy=dy)
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    for y in range(4):
        for x in range(5):
            source_y, source_x = y - dy, x - dx
            if 0 <= source_y < 4 and 0 <= source_x < 5:
                assert torch.equal(shifted[:, y, x], images[:, source_y, source_x])
            else:
                assert (shifted[:, y, x] == 0).all()


def test_denormalize_clamps_to_the_displayable_range():
    x = torch.tensor([-10.0, 0.0, 10.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    shown = denormalize(x, (0.5, 0.5, 0.5), (0.1, 0.1, 0.1))
    assert shown.shape == x.shape
    assert torch.equal(shown[0, :, 0, 0], torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(denormalize(torch.zeros(1, 4, 4), (0.2,), (0.3,)), torch.full((1, 4, 4), 0.2))
    with pytest.raises(ValueError, match="one value per channel"):
        denormalize(x, (0.5,), (0.1,))


# ---------------------------------------------------------------------------------------------
# make_batches
# ---------------------------------------------------------------------------------------------


def test_make_batches_holds_out_disjoint_balanced_validation_and_subsets():
    dataset = synthetic_dataset("mnist")
    splits = make_batches(
        dataset, batch_size=32, val_size=100, train_subset=200, test_subset=50, seed=4, eval_batch_size=64
    )
    assert isinstance(splits, BatchSplits) and splits.dataset is dataset and splits.classes == MNIST_CLASSES
    train_ids, val_ids, test_ids = (image_ids(b.images) for b in (splits.train, splits.val, splits.test))
    assert (len(train_ids), len(val_ids), len(test_ids)) == (200, 100, 50)
    assert len(np.intersect1d(train_ids.numpy(), val_ids.numpy())) == 0
    # Labels travel with their images (label = index % 10), and every split is class-balanced.
    for batches, ids, labels in (
        (splits.train, train_ids, 20),
        (splits.val, val_ids, 10),
        (splits.test, test_ids, 5),
    ):
        assert torch.equal(batches.labels, ids % 10)
        assert torch.equal(torch.bincount(batches.labels, minlength=10), torch.full((10,), labels))
    assert splits.train.shuffle and splits.train.batch_size == 32 and not splits.train.augment
    for evaluation in (splits.val, splits.test):
        assert not evaluation.shuffle and not evaluation.augment and evaluation.batch_size == 64
        _, y = one_epoch(evaluation)
        assert torch.equal(y, evaluation.labels)  # storage order, every time
    for batches in (splits.train, splits.val, splits.test):
        assert batches.mean == dataset.mean and batches.std == dataset.std
    again = make_batches(dataset, batch_size=32, val_size=100, train_subset=200, test_subset=50, seed=4)
    assert torch.equal(image_ids(again.train.images), train_ids)


def test_make_batches_defaults_use_everything_and_augment_only_cifar10():
    mnist = make_batches(synthetic_dataset("mnist"))
    assert mnist.val is None and mnist.train.num_samples == 600 and mnist.test.num_samples == 200
    assert not mnist.train.augment and mnist.train.batch_size == 128 and mnist.test.batch_size == 1024
    cifar = make_batches(synthetic_dataset("cifar10", num_train=100, num_test=20), 32, val_size=10)
    assert cifar.train.augment and not cifar.val.augment and not cifar.test.augment
    assert cifar.train.images.shape == (90, 3, 32, 32) and cifar.train.batch_size == 32
    assert all(isinstance(batches, TrainingData) for batches in (cifar.train, cifar.val, cifar.test))
    assert not make_batches(
        synthetic_dataset("cifar10", num_train=20, num_test=10), augment=False
    ).train.augment


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (dict(val_size=600), "val_size must be an integer from 0 to 599"),
        (dict(val_size=-1), "val_size"),
        (dict(val_size=100, train_subset=501), "train_subset must be an integer from 1 to 500"),
        (dict(test_subset=0), "test_subset"),
    ],
)
def test_make_batches_rejects_sizes_that_do_not_fit(arguments, fragment):
    with pytest.raises(ValueError, match=fragment):
        make_batches(synthetic_dataset("mnist"), **arguments)


# ---------------------------------------------------------------------------------------------
# The real datasets (only when COURSE_DATA_DIR is set)
# ---------------------------------------------------------------------------------------------


def real_dataset(name: str) -> ImageDataset:
    if not os.environ.get("COURSE_DATA_DIR"):
        pytest.skip(
            "COURSE_DATA_DIR is not set: point it at a folder with mnist.npz and cifar10.npz "
            "to test the real datasets"
        )
    return load_dataset(name)


@pytest.fixture(scope="module")
def real_mnist() -> ImageDataset:
    return real_dataset("mnist")


@pytest.fixture(scope="module")
def real_cifar10() -> ImageDataset:
    return real_dataset("cifar10")


def test_real_mnist_has_the_known_sizes_labels_and_statistics(real_mnist):
    assert real_mnist.x_train.shape == (60000, 28, 28) and real_mnist.x_test.shape == (10000, 28, 28)
    assert real_mnist.x_train.dtype == torch.uint8 and real_mnist.y_train.dtype == torch.int64
    assert torch.bincount(real_mnist.y_train).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert torch.bincount(real_mnist.y_test).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    assert real_mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert real_mnist.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert [round(m, 4) for m in real_mnist.mean] == [0.1307]
    assert [round(s, 4) for s in real_mnist.std] == [0.3081]
    assert real_mnist.image_shape == (1, 28, 28) and real_mnist.classes == MNIST_CLASSES


def test_real_cifar10_has_the_known_sizes_labels_and_statistics(real_cifar10):
    assert real_cifar10.x_train.shape == (50000, 32, 32, 3) and real_cifar10.x_test.shape == (
        10000,
        32,
        32,
        3,
    )
    assert torch.bincount(real_cifar10.y_train).tolist() == [5000] * 10
    assert torch.bincount(real_cifar10.y_test).tolist() == [1000] * 10
    assert real_cifar10.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert real_cifar10.y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert [round(m, 4) for m in real_cifar10.mean] == [0.4914, 0.4822, 0.4465]
    assert [round(s, 4) for s in real_cifar10.std] == [0.2470, 0.2435, 0.2616]
    assert real_cifar10.image_shape == (3, 32, 32) and real_cifar10.classes == CIFAR10_CLASSES


@pytest.mark.parametrize("dataset_fixture", ["real_mnist", "real_cifar10"])
def test_real_training_batches_have_mean_0_and_std_1_per_channel(dataset_fixture, request):
    dataset = request.getfixturevalue(dataset_fixture)
    train = make_batches(dataset, batch_size=1000, augment=False).train
    channels = dataset.channels
    total = torch.zeros(channels, dtype=torch.float64)
    total_of_squares = torch.zeros(channels, dtype=torch.float64)
    for x, _ in train:
        # float32 sums of one batch (about a million values per channel) are exact enough here.
        total += x.sum(dim=(0, 2, 3)).double()
        total_of_squares += (x * x).sum(dim=(0, 2, 3)).double()
    count = train.num_samples * dataset.image_shape[1] * dataset.image_shape[2]
    mean = total / count
    std = (total_of_squares / count - mean**2).sqrt()
    torch.testing.assert_close(mean, torch.zeros(channels, dtype=torch.float64), rtol=0, atol=1e-4)
    torch.testing.assert_close(std, torch.ones(channels, dtype=torch.float64), rtol=0, atol=1e-4)
