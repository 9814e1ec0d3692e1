"""course_utils.data: datasets load exactly or fail clearly; batches cover, shuffle and augment as promised.

Most tests use small synthetic tensors. The tests of the real MNIST and CIFAR-10 files run when
COURSE_DATA_DIR names a folder holding mnist.npz and cifar10.npz
(``COURSE_DATA_DIR=/path/to/data pytest tests/test_data.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils.data import (
    AUGMENT_PADDING,
    CIFAR10_CLASSES,
    MNIST_CLASSES,
    Batches,
    BatchSplits,
    DatasetError,
    ImageDataset,
    TrainingData,
    crop_and_flip,
    default_data_dir,
    denormalize,
    load_dataset,
    make_batches,
    permute_pixels,
    shift_images,
    stratified_indices,
    train_val_split,
)

NAMES = ("mnist", "cifar10")
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
    """All batches of one epoch, concatenated."""
    xs, ys = zip(*batches)
    return torch.cat(xs), torch.cat(ys)


def raw_pixels(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Undo (x / 255 - mean) / std: float (N, C, H, W) -> uint8 (N, C, H, W)."""
    mean_tensor, std_tensor = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    return ((x.double() * std_tensor + mean_tensor) * 255).round().to(torch.uint8)


def find_crop_windows(outputs: torch.Tensor, originals: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Which window of the zero-padded original each augmented output is.

    Args:
        outputs, originals: uint8 (N, C, H, W), outputs[i] augmented from originals[i].

    Returns:
        ``(matches, rows, columns, flipped)``: matches (N,) counts the windows of padded image i, plain
        or mirrored, equal to output i. When every count is 1, rows and columns (N,) give each window's
        top-left corner in the padded image (0..8) and flipped (N,) whether it is mirrored.
    """
    height, width = originals.shape[2:]
    windows = F.pad(originals, [AUGMENT_PADDING] * 4).unfold(2, height, 1).unfold(3, width, 1)
    target = outputs[:, :, None, None]  # windows: (N, C, 9, 9, H, W)
    plain = (windows == target).all(dim=5).all(dim=4).all(dim=1)  # (N, 9, 9)
    mirrored = (windows.flip(-1) == target).all(dim=5).all(dim=4).all(dim=1)
    equal = torch.stack([plain, mirrored], dim=1)  # (N, 2, 9, 9)
    _, flipped, rows, columns = torch.nonzero(equal, as_tuple=True)  # one entry per match, image by image
    return equal.flatten(1).sum(dim=1), rows, columns, flipped.bool()


def id_images(name: str, count: int) -> torch.Tensor:
    """uint8 images whose first two pixels spell their index: pixel 0 = i % 256, pixel 1 = i // 256."""
    images = torch.zeros(count, *IMAGE_SHAPES[name], dtype=torch.uint8)
    index = torch.arange(count).view(-1, *([1] * (images.dim() - 3)))
    images[:, 0, 0] = (index % 256).to(torch.uint8)
    images[:, 0, 1] = (index // 256).to(torch.uint8)
    return images


def image_ids(stored: torch.Tensor) -> torch.Tensor:
    """The indices spelled by id_images, read from Batches.inputs (N, C, H, W)."""
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


def image_batches(count: int = 96, seed: int = 0, **options) -> Batches:
    """Shuffled, augmented batches of random 8x8 colour images labelled 0..count-1."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (count, 8, 8, 3), dtype=torch.uint8, generator=generator)
    settings = dict(mean=(0.5,) * 3, std=(0.25,) * 3, batch_size=32, shuffle=True, augment=True, seed=seed)
    return Batches(images, torch.arange(count), **{**settings, **options})


# ---------------------------------------------------------------------------------------------
# Where the data live
# ---------------------------------------------------------------------------------------------


def test_default_data_dir_prefers_argument_then_environment_then_repository(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "from_env"))
    assert default_data_dir(tmp_path / "given") == tmp_path / "given"
    assert default_data_dir(str(tmp_path / "given")) == tmp_path / "given"
    assert default_data_dir() == tmp_path / "from_env"
    monkeypatch.setenv("COURSE_DATA_DIR", "  ")  # blank: as if unset
    assert default_data_dir() == Path(__file__).resolve().parent.parent / "data"
    monkeypatch.delenv("COURSE_DATA_DIR")
    assert default_data_dir() == Path(__file__).resolve().parent.parent / "data"


def test_class_names():
    assert MNIST_CLASSES == ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
    assert CIFAR10_CLASSES[0] == "airplane" and CIFAR10_CLASSES[-1] == "truck" and len(CIFAR10_CLASSES) == 10


# ---------------------------------------------------------------------------------------------
# load_dataset from .npz files
# ---------------------------------------------------------------------------------------------


def test_an_unknown_dataset_name_lists_the_known_ones(tmp_path):
    with pytest.raises(DatasetError, match="'imagenet'.*mnist, cifar10"):
        load_dataset("imagenet", tmp_path)


@pytest.mark.parametrize("name", NAMES)
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
    assert f"of shape {(channels, *IMAGE_SHAPES[name][:2])}," in repr(dataset)  # (C, H, W)
    assert dataset.classes == (MNIST_CLASSES if name == "mnist" else CIFAR10_CLASSES)
    # mean and std per channel of the training images only, on the [0, 1] scale.
    pixels = arrays["x_train"].reshape(-1, channels) / 255.0
    np.testing.assert_allclose(dataset.mean, pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(dataset.std, pixels.std(axis=0), rtol=1e-12)
    assert name in repr(dataset) and "30 training" in repr(dataset)


def test_load_dataset_accepts_int64_labels_and_ignores_extra_arrays(tmp_path):
    arrays = synthetic_arrays("mnist")
    arrays["y_train"] = arrays["y_train"].astype(np.int64)
    np.savez(tmp_path / "mnist.npz", notes=np.zeros(3), **arrays)
    assert np.array_equal(load_dataset("mnist", tmp_path).y_train.numpy(), arrays["y_train"])


PAYLOAD_RAN: list[str] = []


def record_payload() -> str:
    PAYLOAD_RAN.append("unpickled")
    return "payload"


class Payload:
    """An object whose unpickling runs code: what a hostile .npz could carry."""

    def __reduce__(self):
        return (record_payload, ())


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path: Path) -> None:
    path.write_bytes(b"this is not a zip archive\n" * 100)


def resave(**changes: np.ndarray | None):
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


FIX = "Delete"  # every damaged-file message says how to get a good copy
BAD_FILES = {
    # case: (dataset, how the good file is spoiled, fragments the message must contain)
    "truncated": ("mnist", truncate, ["not a readable .npz", FIX]),
    "not a zip": ("cifar10", garble, ["not a readable .npz", FIX]),
    "pickled objects": (
        "mnist",
        resave(y_test=np.array([Payload()] * 20, dtype=object)),
        ["allow_pickle", FIX],
    ),
    "missing array": ("mnist", resave(y_test=None), ["lacks the arrays y_test", FIX]),
    "float images": (
        "mnist",
        resave(x_train=np.zeros((30, 28, 28), np.float32)),
        ["x_train is float32", "expected uint8 pixels of shape (N, 28, 28)", FIX],
    ),
    "extra axis": ("mnist", resave(x_test=np.zeros((20, 28, 28, 1), np.uint8)), ["(20, 28, 28, 1)", FIX]),
    "channels first": (
        "cifar10",
        resave(x_train=np.zeros((30, 3, 32, 32), np.uint8)),
        ["(30, 3, 32, 32)", "(N, 32, 32, 3)", FIX],
    ),
    "no images": (
        "mnist",
        resave(x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, np.uint8)),
        ["x_test", "(0, 28, 28)", FIX],
    ),
    "label count": (
        "mnist",
        resave(y_train=np.zeros(29, np.uint8)),
        ["y_train", "(29,)", "one label per image"],
    ),
    "float labels": ("mnist", resave(y_test=np.zeros(20, np.float64)), ["y_test is float64", FIX]),
    "label 10": ("cifar10", resave(y_train=np.full(30, 10, np.uint8)), ["y_train", "outside 0..9", FIX]),
    "negative label": ("mnist", resave(y_test=np.array([0] * 19 + [-1])), ["y_test", "outside 0..9", FIX]),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_damaged_or_wrong_file_raises_a_clear_dataset_error(case, tmp_path):
    name, spoil, fragments = BAD_FILES[case]
    path = tmp_path / f"{name}.npz"
    np.savez(path, **synthetic_arrays(name))
    spoil(path)
    PAYLOAD_RAN.clear()
    with pytest.raises(DatasetError) as caught:
        load_dataset(name, tmp_path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert PAYLOAD_RAN == []  # allow_pickle=False: nothing in the file was ever run


def test_a_folder_named_like_the_dataset_file_is_reported_as_a_folder(tmp_path):
    (tmp_path / "mnist.npz").mkdir()
    with pytest.raises(DatasetError, match=r"mnist\.npz is not a regular file \(a folder\?\)"):
        load_dataset("mnist", tmp_path)


def check_permission_message(message: str, path: Path) -> None:
    assert str(path) in message and "you may not read" in message and "not damaged" in message
    assert f"chmod a+r {path}" in message and "COURSE_DATA_DIR" in message
    assert "Delete" not in message  # a file you may not read is not damaged: no advice to delete it


@pytest.mark.skipif(
    getattr(os, "geteuid", lambda: -1)() == 0,
    reason="running as root, who may read any file whatever its mode: the refusal cannot happen "
    "(the next test simulates it)",
)
def test_a_file_you_may_not_read_is_a_permission_problem_not_damage(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, **synthetic_arrays("mnist"))
    path.chmod(0)
    try:
        with pytest.raises(DatasetError) as caught:
            load_dataset("mnist", tmp_path)
    finally:
        path.chmod(0o600)
    check_permission_message(str(caught.value), path)
    assert "----------" in str(caught.value)


def test_a_refused_read_names_the_owner_and_the_fix(tmp_path, monkeypatch):
    import pwd

    path = tmp_path / "mnist.npz"
    np.savez(path, **synthetic_arrays("mnist"))
    path.chmod(0o600)

    def refuse(file, *args, **kwargs):  # what open() raises for another user's 0600 file
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(np, "load", refuse)
    with pytest.raises(DatasetError) as caught:
        load_dataset("mnist", tmp_path)
    message = str(caught.value)
    check_permission_message(message, path)
    owner = pwd.getpwuid(path.stat().st_uid).pw_name
    assert f"belongs to {owner}" in message and f"Ask {owner}" in message and "-rw-------" in message


# ---------------------------------------------------------------------------------------------
# No .npz file: the download with torchvision
# ---------------------------------------------------------------------------------------------

# torchvision's error when the host cannot be resolved: several lines.
OFFLINE_ERROR = (
    "Error downloading train-images-idx3-ubyte.gz:\nTried https://ossci-datasets.s3.amazonaws.com/mnist/,"
    " got:\n<urlopen error [Errno -3] Temporary failure in name resolution>\n"
)


@pytest.fixture
def offline_torchvision(monkeypatch):
    """torchvision's MNIST and CIFAR10 fail as they do without a network, after making their folders."""
    import torchvision.datasets

    def offline(folder: str) -> type:
        class Offline:
            def __init__(self, root, train=True, download=False):
                (Path(root) / folder).mkdir(parents=True, exist_ok=True)
                raise RuntimeError(OFFLINE_ERROR)

        return Offline

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline("MNIST/raw"))
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline("cifar-10-batches-py"))


@pytest.mark.parametrize("name", NAMES)
def test_no_file_and_no_download_is_one_dataset_error_that_names_the_file_folder_and_fix(
    name, tmp_path, offline_torchvision, capsys
):
    folder = tmp_path / "new" / "data"
    with pytest.raises(DatasetError) as caught:
        load_dataset(name, folder)
    message = str(caught.value)
    for fragment in (
        f"{name}.npz is not in {folder}",  # the file and where it looked
        "download failed",
        "Temporary failure in name resolution",  # why
        f"Copy {name}.npz into {folder}",  # how to fix it
        "COURSE_DATA_DIR",
    ):
        assert fragment in message
    assert "\n" not in message  # torchvision's multi-line error, on one line
    assert "downloading it with torchvision" in capsys.readouterr().out
    # No data/, no MNIST/raw: nothing suggests that something came.
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", NAMES)
def test_a_failed_download_keeps_the_folders_that_were_there_before(name, tmp_path, offline_torchvision):
    existing = tmp_path / "existing"
    (existing / "mine").mkdir(parents=True)  # an empty folder of the user's own
    (existing / "MNIST").mkdir()  # torchvision's folder, there before: only the raw/ made now goes
    (existing / "notes.txt").write_text("mine too")
    with pytest.raises(DatasetError, match="download failed"):
        load_dataset(name, existing)
    assert sorted(entry.name for entry in existing.iterdir()) == ["MNIST", "mine", "notes.txt"]
    assert list((existing / "MNIST").iterdir()) == []

    empty = tmp_path / "empty"  # the data folder itself, empty, stays too
    empty.mkdir()
    with pytest.raises(DatasetError):
        load_dataset(name, empty)
    assert empty.is_dir() and list(empty.iterdir()) == []


class DownloadedMNIST:
    """What torchvision.datasets.MNIST gives after a download: uint8 tensor data, int64 tensor targets."""

    def __init__(self, root, train=True, download=False):
        arrays = synthetic_arrays("mnist", num_train=12, num_test=5, seed=1)
        split = "train" if train else "test"
        self.data = torch.from_numpy(arrays[f"x_{split}"])
        self.targets = torch.from_numpy(arrays[f"y_{split}"].astype(np.int64))


class DownloadedCIFAR10:
    """What torchvision.datasets.CIFAR10 gives: a uint8 numpy array (N, 32, 32, 3), a list of labels."""

    def __init__(self, root, train=True, download=False):
        arrays = synthetic_arrays("cifar10", num_train=10, num_test=3, seed=2)
        split = "train" if train else "test"
        self.data = arrays[f"x_{split}"]
        self.targets = arrays[f"y_{split}"].tolist()


@pytest.mark.parametrize(("name", "downloaded"), [("mnist", DownloadedMNIST), ("cifar10", DownloadedCIFAR10)])
def test_a_download_is_written_once_as_the_npz_and_read_from_it_after(
    name, downloaded, tmp_path, monkeypatch
):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, name.upper(), downloaded)
    folder = tmp_path / "data"  # created for the download
    dataset = load_dataset(name, folder)
    arrays = synthetic_arrays(name, *((12, 5, 1) if name == "mnist" else (10, 3, 2)))

    assert dataset.path == folder / f"{name}.npz"
    assert [entry.name for entry in folder.iterdir()] == [f"{name}.npz"]  # no temporary file left
    with np.load(folder / f"{name}.npz", allow_pickle=False) as archive:
        for key, array in arrays.items():
            assert archive[key].dtype == np.uint8 and np.array_equal(archive[key], array)
    for key, array in arrays.items():
        assert np.array_equal(getattr(dataset, key).numpy(), array)

    # The second load reads only the file: it works with torchvision unable to provide anything.
    monkeypatch.setattr(torchvision.datasets, name.upper(), None)
    again = load_dataset(name, folder)
    assert torch.equal(again.x_train, dataset.x_train) and again.mean == dataset.mean


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [None, 3])
def test_batches_yield_normalised_float_images_with_their_labels(channels):
    generator = torch.Generator().manual_seed(0)
    shape = (50, 6, 5) if channels is None else (50, 6, 5, channels)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (50,), generator=generator)
    mean, std = ((0.3,), (0.2,)) if channels is None else ((0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
    batches = Batches(images, labels, mean=mean, std=std, batch_size=16)

    as_nchw = images.unsqueeze(1) if channels is None else images.permute(0, 3, 1, 2)
    assert batches.inputs.dtype == torch.uint8 and torch.equal(batches.inputs, as_nchw)
    assert batches.num_samples == 50 and len(batches) == 4 and batches.device == torch.device("cpu")
    sizes = []
    for x, y in batches:
        assert x.dtype == torch.float32 and x.shape[1:] == (len(mean), 6, 5) and x.is_contiguous()
        assert y.dtype == torch.int64
        sizes.append(len(y))
    assert sizes == [16, 16, 16, 2]
    x, y = one_epoch(batches)
    mean_tensor, std_tensor = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    torch.testing.assert_close(x, (as_nchw.float() / 255 - mean_tensor) / std_tensor)
    assert torch.equal(y, labels)  # no shuffle: storage order
    torch.testing.assert_close(denormalize(x, mean, std), as_nchw.float() / 255)
    assert "50 samples" in repr(batches)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize(("num_samples", "batch_size"), [(100, 10), (101, 10), (130, 64), (7, 128), (1, 1)])
def test_every_sample_appears_once_per_epoch(num_samples, batch_size, shuffle, drop_last):
    # Label i goes with an image filled with i % 256: pairs must stay together.
    labels = torch.arange(num_samples)
    images = (labels % 256).to(torch.uint8).view(-1, 1, 1).expand(num_samples, 3, 4).contiguous()
    batches = Batches(
        images, labels, mean=(0.0,), std=(1.0,), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last
    )
    full_batches, remainder = divmod(num_samples, batch_size)
    assert len(batches) == full_batches + (1 if remainder and not drop_last else 0)
    for _epoch in range(2):
        seen = list(batches)
        assert len(seen) == len(batches)
        if not seen:
            continue
        if drop_last:
            assert all(len(y) == batch_size for _, y in seen)
        x, y = torch.cat([x for x, _ in seen]), torch.cat([y for _, y in seen])
        assert len(torch.unique(y)) == len(y) == (full_batches * batch_size if drop_last else num_samples)
        if not shuffle:
            assert torch.equal(y, labels[: len(y)])
        assert torch.equal((x[:, 0] * 255).round().long(), (y % 256).view(-1, 1, 1).expand(-1, 3, 4))


def test_the_batches_of_an_epoch_depend_on_the_seed_and_the_epoch_alone():
    first, second = image_batches(seed=7), image_batches(seed=7)
    epochs = [one_epoch(first) for _ in range(3)]
    for x, y in epochs:
        x_again, y_again = one_epoch(second)
        assert torch.equal(x, x_again) and torch.equal(y, y_again)
    # A plain loop over epochs sees a new order (and new crops) each time; another seed other orders.
    orders = [y for _, y in epochs]
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    assert not torch.equal(one_epoch(image_batches(seed=8))[1], orders[0])
    # The global random state is neither used nor changed.
    torch.manual_seed(123)
    state = torch.get_rng_state()
    torch.manual_seed(99)
    assert torch.equal(one_epoch(image_batches(seed=7))[0], epochs[0][0])
    torch.manual_seed(123)
    one_epoch(image_batches(seed=7))
    assert torch.equal(torch.get_rng_state(), state)


def test_set_epoch_replays_an_epoch_exactly():
    reference = image_batches()
    epochs = [one_epoch(reference) for _ in range(4)]
    resumed = image_batches()
    resumed.set_epoch(2)
    for expected_x, expected_y in epochs[2:]:
        x, y = one_epoch(resumed)
        assert torch.equal(x, expected_x) and torch.equal(y, expected_y)
    resumed.set_epoch(0)
    assert torch.equal(one_epoch(resumed)[0], epochs[0][0])
    # The epoch is counted when the iteration starts: a loop left early does not shift the next one.
    partial = image_batches()
    next(iter(partial))
    assert torch.equal(one_epoch(partial)[1], epochs[1][1])


def slow_crop_and_flip(images: torch.Tensor, corners: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """The reference, one image at a time: pad with black, cut the window, mirror it if asked."""
    count, channels, height, width = images.shape
    pad = AUGMENT_PADDING
    out = torch.empty_like(images)
    for i in range(count):
        padded = torch.zeros(channels, height + 2 * pad, width + 2 * pad, dtype=images.dtype)
        padded[:, pad : pad + height, pad : pad + width] = images[i]
        row, column = corners[i].tolist()
        window = padded[:, row : row + height, column : column + width]
        out[i] = window.flip(-1) if flips[i] else window
    return out


def test_crop_and_flip_matches_a_slow_reference():
    generator = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (64, 3, 7, 10), dtype=torch.uint8, generator=generator)
    corners = torch.randint(0, 2 * AUGMENT_PADDING + 1, (64, 2), generator=generator)
    flips = torch.rand(64, generator=generator) < 0.5
    corners[0], flips[0] = torch.tensor([AUGMENT_PADDING, AUGMENT_PADDING]), False  # the identity
    result = crop_and_flip(images, corners, flips)
    assert result.dtype == torch.uint8 and result.shape == images.shape
    assert torch.equal(result, slow_crop_and_flip(images, corners, flips))
    assert torch.equal(result[0], images[0])


def test_augmented_batches_are_windows_of_the_black_padded_image():
    generator = torch.Generator().manual_seed(3)
    # Pixels 1..255: a window that reaches into the padding holds 0s found nowhere in the image.
    images = torch.randint(1, 256, (400, 10, 10, 3), dtype=torch.uint8, generator=generator)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    batches = Batches(
        images, torch.arange(400), mean=mean, std=std, batch_size=64, shuffle=True, augment=True
    )
    x, y = one_epoch(batches)
    outputs = raw_pixels(x, mean, std)
    matches, rows, columns, flipped = find_crop_windows(outputs, images[y].permute(0, 3, 1, 2))
    assert (matches == 1).all()  # each output is exactly one window of its own padded image
    assert set(rows.tolist()) == set(range(9)) and set(columns.tolist()) == set(range(9))
    assert 0 < flipped.sum() < 400
    # Padding is black in the raw image, i.e. -mean/std after normalising.
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


def test_float_sequences_are_used_as_they_are():
    generator = torch.Generator().manual_seed(5)
    x, y = torch.randn(10, 6, 2, generator=generator), torch.rand(10, generator=generator)
    batches = Batches(x, y, batch_size=4, shuffle=True, seed=1)
    seen = list(batches)
    assert [tuple(bx.shape) for bx, _ in seen] == [(4, 6, 2), (4, 6, 2), (2, 6, 2)]
    for bx, by in seen:  # the same values, paired as given: no normalisation, no change of type
        assert bx.dtype == torch.float32 and by.dtype == torch.float32
        rows = [int(torch.nonzero((x == sample).all(dim=(1, 2)))) for sample in bx]
        assert torch.equal(bx, x[rows]) and torch.equal(by, y[rows])
    assert sorted(torch.cat([by for _, by in seen]).tolist()) == sorted(y.tolist())
    # (N, T) class targets of a per-step task stay as they are too.
    steps = torch.randint(0, 10, (10, 6), generator=generator)
    assert torch.equal(next(iter(Batches(x, steps, batch_size=10)))[1], steps)


def test_steps_per_epoch_takes_consecutive_passes_each_in_a_new_order():
    x, y = torch.randn(10, 3, 1), torch.arange(10)
    stepped = Batches(x, y, batch_size=4, shuffle=True, steps_per_epoch=5, seed=3)
    assert len(stepped) == 5
    epochs = [list(stepped) for _ in range(3)]  # 15 batches: 5 passes of 3 batches (4, 4, 2)
    assert [len(by) for _, by in epochs[0]] == [4, 4, 2, 4, 4]
    # The same batches as passes 0..4 of the plain epochs, one after another.
    plain = Batches(x, y, batch_size=4, shuffle=True, seed=3)
    expected = [batch for _ in range(5) for batch in plain]
    got = [batch for epoch in epochs for batch in epoch]
    assert all(torch.equal(bx, ex) and torch.equal(by, ey) for (bx, by), (ex, ey) in zip(got, expected))
    passes = [torch.cat([by for _, by in got[3 * p : 3 * p + 3]]) for p in range(5)]
    assert all(sorted(order.tolist()) == list(range(10)) for order in passes)  # each pass: every sample once
    assert all(not torch.equal(a, b) for a, b in zip(passes, passes[1:]))  # each pass a new order
    # set_epoch replays an epoch that starts in the middle of a pass.
    stepped.set_epoch(1)
    assert all(torch.equal(by, ey) for (_, by), (_, ey) in zip(stepped, epochs[1]))
    # More steps than one pass holds, with drop_last: only full batches.
    dropped = Batches(x, y, batch_size=4, steps_per_epoch=7, drop_last=True)
    assert [len(by) for _, by in dropped] == [4] * 7


BAD_BATCHES_ARGUMENTS = {
    # case: (changes to good arguments, fragment of the message)
    "batch size 0": (dict(batch_size=0), "batch_size must be a whole number >= 1"),
    "batch size 2.5": (dict(batch_size=2.5), "batch_size"),
    "steps 0": (dict(steps_per_epoch=0), "steps_per_epoch must be a whole number >= 1"),
    "steps with no full batch": (dict(steps_per_epoch=3, drop_last=True, batch_size=11), "drop_last"),
    "fewer labels": (dict(targets=torch.zeros(9, dtype=torch.long)), "10, 9"),
    "no samples": (
        dict(inputs=torch.zeros(0, 4, 4, dtype=torch.uint8), targets=torch.zeros(0, dtype=torch.long)),
        "> 0",
    ),
    "images without mean": (dict(mean=None), "mean and std"),
    "floats with mean": (dict(inputs=torch.zeros(10, 4, 4)), "other inputs neither"),
    "augmented floats": (dict(inputs=torch.zeros(10, 4, 4), mean=None, std=None, augment=True), "augmented"),
    "mean per channel": (dict(mean=(0.1, 0.2, 0.3)), "one value per channel (1)"),
    "zero std": (dict(std=(0.0,)), "std > 0"),
    "2-D images": (dict(inputs=torch.zeros(10, 16, dtype=torch.uint8)), "(N, H, W) or (N, H, W, C)"),
}


@pytest.mark.parametrize("case", BAD_BATCHES_ARGUMENTS)
def test_batches_reject_bad_arguments_clearly(case):
    changes, fragment = BAD_BATCHES_ARGUMENTS[case]
    good = dict(inputs=torch.zeros(10, 4, 4, dtype=torch.uint8), targets=torch.zeros(10, dtype=torch.long))
    arguments = {**good, "mean": (0.1,), "std": (0.3,), **changes}
    with pytest.raises(ValueError) as caught:
        Batches(arguments.pop("inputs"), arguments.pop("targets"), **arguments)
    assert fragment in str(caught.value)


def test_batches_are_training_data():
    assert isinstance(image_batches(), TrainingData)  # __iter__, __len__ and set_epoch: what fit needs
    assert not isinstance([(torch.zeros(1), torch.zeros(1))], TrainingData)  # no set_epoch


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_the_same_seed_gives_the_same_batches_on_gpu_and_cpu():
    on_cpu, on_gpu = image_batches(seed=3), image_batches(seed=3, device="cuda")
    assert on_gpu.inputs.device.type == "cuda"
    for _epoch in range(2):
        for (x_cpu, y_cpu), (x_gpu, y_gpu) in zip(on_cpu, on_gpu):
            assert x_gpu.device.type == "cuda" and y_gpu.device.type == "cuda"
            assert torch.equal(y_cpu, y_gpu.cpu())
            torch.testing.assert_close(x_cpu, x_gpu.cpu(), rtol=0, atol=1e-6)


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
    # uint8 labels, as in the .npz files, give the same subset.
    assert torch.equal(stratified_indices(labels.to(torch.uint8), 100, seed=1), chosen)


def test_stratified_indices_make_up_for_a_small_class():
    labels = torch.cat([torch.zeros(3), torch.ones(50), torch.full((50,), 2)]).long()
    counts = torch.bincount(labels[stratified_indices(labels, 60)], minlength=3)
    assert counts[0] == 3 and counts.sum() == 60 and sorted(counts[1:].tolist()) == [28, 29]


@pytest.mark.parametrize("size", [21, -1, 2.0, True])
def test_stratified_indices_reject_impossible_sizes(size):
    with pytest.raises(ValueError, match="from 0 to 20"):
        stratified_indices(torch.arange(20) % 4, size)


def test_train_val_split_is_disjoint_complete_and_stratified():
    labels = torch.arange(1000) % 10
    train, val = train_val_split(labels, 200, seed=3)
    assert len(val) == 200 and len(train) == 800
    assert torch.equal(torch.sort(torch.cat([train, val])).values, torch.arange(1000))
    assert torch.equal(torch.bincount(labels[val]), torch.full((10,), 20))
    again_train, again_val = train_val_split(labels, 200, seed=3)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    everything, none = train_val_split(labels, 0)
    assert len(none) == 0 and torch.equal(everything, torch.arange(1000))


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


@pytest.mark.parametrize("permutation", [torch.zeros(9, dtype=torch.long), torch.arange(8), torch.arange(10)])
def test_permute_pixels_rejects_a_non_permutation(permutation):
    with pytest.raises(ValueError, match="exactly once"):
        permute_pixels(torch.zeros(2, 3, 3, dtype=torch.uint8), permutation)


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


def test_denormalize_undoes_the_normalisation_and_clamps_to_the_displayable_range():
    x = torch.tensor([-10.0, 0.0, 10.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    shown = denormalize(x, (0.5, 0.5, 0.5), (0.1, 0.1, 0.1))
    assert shown.shape == x.shape
    assert torch.equal(shown[0, :, 0, 0], torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(denormalize(torch.zeros(1, 4, 4), (0.2,), (0.3,)), torch.full((1, 4, 4), 0.2))
    torch.testing.assert_close(denormalize(torch.ones(1, 4, 4), (0.2,), (0.3,)), torch.full((1, 4, 4), 0.5))


# ---------------------------------------------------------------------------------------------
# make_batches
# ---------------------------------------------------------------------------------------------


def test_make_batches_holds_out_disjoint_balanced_validation_and_subsets():
    dataset = synthetic_dataset("mnist")
    splits = make_batches(dataset, batch_size=32, val_size=100, train_subset=200, test_subset=50, seed=4)
    assert isinstance(splits, BatchSplits) and splits.classes == MNIST_CLASSES
    train_ids, val_ids, test_ids = (image_ids(b.inputs) for b in (splits.train, splits.val, splits.test))
    assert (len(train_ids), len(val_ids), len(test_ids)) == (200, 100, 50)
    assert len(np.intersect1d(train_ids.numpy(), val_ids.numpy())) == 0
    # Labels travel with their images (label = index % 10), and every split is class-balanced.
    for batches, ids, per_class in (
        (splits.train, train_ids, 20),
        (splits.val, val_ids, 10),
        (splits.test, test_ids, 5),
    ):
        assert torch.equal(batches.targets, ids % 10)
        assert torch.equal(torch.bincount(batches.targets, minlength=10), torch.full((10,), per_class))
        assert batches.mean == dataset.mean and batches.std == dataset.std
    assert splits.train.shuffle and splits.train.batch_size == 32 and not splits.train.augment
    for evaluation in (splits.val, splits.test):
        assert not evaluation.shuffle and not evaluation.augment and evaluation.batch_size == 1024
        assert torch.equal(one_epoch(evaluation)[1], evaluation.targets)  # storage order, every time
    again = make_batches(dataset, batch_size=32, val_size=100, train_subset=200, test_subset=50, seed=4)
    assert torch.equal(image_ids(again.train.inputs), train_ids)
    other = make_batches(dataset, batch_size=32, val_size=100, train_subset=200, test_subset=50, seed=5)
    assert not torch.equal(image_ids(other.val.inputs), val_ids)


def test_make_batches_defaults_use_everything_and_augment_only_cifar10():
    mnist = make_batches(synthetic_dataset("mnist"))
    assert mnist.val is None and mnist.train.num_samples == 600 and mnist.test.num_samples == 200
    assert not mnist.train.augment and mnist.train.batch_size == 128 and mnist.test.batch_size == 1024
    cifar = make_batches(
        synthetic_dataset("cifar10", num_train=100, num_test=20), 32, val_size=10, drop_last=True
    )
    assert cifar.train.augment and not cifar.val.augment and not cifar.test.augment
    assert cifar.train.inputs.shape == (90, 3, 32, 32) and len(cifar.train) == 90 // 32
    assert not cifar.val.drop_last and not cifar.test.drop_last  # every validation and test image counts
    assert not make_batches(synthetic_dataset("cifar10", 20, 10), augment=False).train.augment
    assert make_batches(synthetic_dataset("mnist"), augment=True).train.augment


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (dict(val_size=601), "from 0 to 600"),
        (dict(val_size=-1), "from 0 to 600"),
        (dict(val_size=100, train_subset=501), "train_subset must be from 1 to 500"),
        (dict(train_subset=0), "train_subset"),
        (dict(test_subset=201), "from 0 to 200"),
    ],
)
def test_make_batches_rejects_sizes_that_do_not_fit(arguments, fragment):
    with pytest.raises(ValueError, match=fragment):
        make_batches(synthetic_dataset("mnist"), **arguments)


# ---------------------------------------------------------------------------------------------
# The real datasets (where the data folder holds them: $COURSE_DATA_DIR, else data/)
# ---------------------------------------------------------------------------------------------


def real_dataset(name: str) -> ImageDataset:
    if not (default_data_dir() / f"{name}.npz").is_file():
        pytest.skip(f"no {name}.npz in {default_data_dir()} ($COURSE_DATA_DIR, else data/): not tested")
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
    assert "of shape (1, 28, 28)," in repr(real_mnist) and real_mnist.classes == MNIST_CLASSES


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
    assert "of shape (3, 32, 32)," in repr(real_cifar10) and real_cifar10.classes == CIFAR10_CLASSES


@pytest.mark.parametrize("dataset_fixture", ["real_mnist", "real_cifar10"])
def test_real_training_batches_have_mean_0_and_std_1_per_channel(dataset_fixture, request):
    dataset = request.getfixturevalue(dataset_fixture)
    x, _ = next(iter(make_batches(dataset, batch_size=10_000, augment=False).train))  # 10,000 at random
    pixels = x.transpose(0, 1).reshape(len(dataset.mean), -1).double()  # (C, values)
    # Normalised with the whole training set's statistics, a random 10,000 images are within about
    # 0.005 of mean 0 and std 1 (CIFAR-10 normalised with ImageNet's statistics is off by up to 0.18).
    torch.testing.assert_close(
        pixels.mean(dim=1), torch.zeros(len(dataset.mean), dtype=torch.float64), atol=0.02, rtol=0
    )
    torch.testing.assert_close(
        pixels.std(dim=1), torch.ones(len(dataset.mean), dtype=torch.float64), atol=0.02, rtol=0
    )


def test_notebook_04_quotes_where_the_test_digits_have_ink(real_mnist):
    """Notebook 04 (section 5a, exercise 5) says how many test digits have ink in their 4 bottom and 4 top
    rows, the rows a vertical shift of 4 pixels cuts off: those shares, measured here, are the ones quoted."""
    ink = real_mnist.x_test > 0  # (10000, 28, 28)
    bottom = f"{ink[:, -4:].flatten(1).any(1).float().mean().item():.1%}".replace("%", " %")
    top = f"{ink[:, :4].flatten(1).any(1).float().mean().item():.1%}".replace("%", " %")
    assert (bottom, top) == ("50.4 %", "14.5 %"), (bottom, top)
    notebook = json.loads((Path(__file__).resolve().parents[1] / "notebooks/04_cnn_vs_rnn.ipynb").read_text())
    prose = {cell["id"]: " ".join("".join(cell["source"]).split()) for cell in notebook["cells"]}
    assert "50.4 % have ink in their bottom 4 rows (14.5 % in their top 4)" in prose["d8b013b2"]
    assert "rows of 50.4 % of the test digits, the top 4 of 14.5 %" in prose["cy04-a5"]
