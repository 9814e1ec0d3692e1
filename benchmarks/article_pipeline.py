"""The source article's way of feeding and training a model, for fair comparisons.

The article (and most tutorials) train like this: a ``torchvision`` dataset returns one PIL
image at a time, per-image transforms (``RandomCrop``, ``RandomHorizontalFlip``,
``ToTensor``, ``Normalize``) run in ``DataLoader`` worker processes, each batch is copied to
the device, and the model runs in float32. The benchmarks run the same model through this
pipeline and through the course's (whole dataset as tensors on the device, augmentation on
the device, bf16 autocast, channels-last) on the same machine, in the same run.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch

# The source article's CIFAR-10 normalisation constants (its std values are not the
# dataset's std; they are kept here because this module reproduces the article's pipeline).
ARTICLE_MEAN = (0.4914, 0.4822, 0.4465)
ARTICLE_STD = (0.2023, 0.1994, 0.2010)

# From ../shared/data/SHA256SUMS: the real datasets this course was measured on.
EXPECTED_SHA256 = {
    "mnist.npz": "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64",
    "cifar10.npz": "a44cc18e4ad961b5158c7da062a6232fb65938b615bf013046199b823b75c43d",
}


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_data(data_dir: Path, name: str) -> str:
    """Stop with a clear message unless ``data_dir/name`` is the expected real dataset."""
    path = data_dir / name
    if not path.is_file():
        raise SystemExit(f"{path} is missing: put the real {name} there (../shared/data/install.sh DIR)")
    found = sha256(path)
    if found != EXPECTED_SHA256[name]:
        raise SystemExit(f"{path}: SHA-256 {found} does not match the expected {EXPECTED_SHA256[name]}")
    return found


def synchronize() -> None:
    """Wait for queued GPU work, so that wall-clock times are right."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class ArrayImages(torch.utils.data.Dataset):
    """What torchvision's MNIST/CIFAR10 classes do per item: a PIL image, then the transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        image = Image.fromarray(self.images[index], mode="L" if self.images.ndim == 3 else None)
        return self.transform(image), int(self.labels[index])


def article_loader(dataset, train: bool, batch_size: int, workers: int = 4, limit: int | None = None):
    """A ``DataLoader`` with the article's transforms over an :class:`ImageDataset`'s arrays.

    Args:
        dataset: from ``course_utils.data.load_dataset``.
        train: training split (shuffled, augmented for CIFAR-10) or test split.
        batch_size: images per batch (the article uses 128 for training, 100 for testing).
        workers: worker processes (the article's default is 4).
        limit: use only the first ``limit`` images (for smoke runs of the benchmarks).
    """
    import torchvision.transforms as T

    if dataset.name == "cifar10":
        steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if train else []
        transform = T.Compose([*steps, T.ToTensor(), T.Normalize(ARTICLE_MEAN, ARTICLE_STD)])
    else:
        transform = T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])
    images = (dataset.x_train if train else dataset.x_test).numpy()
    labels = (dataset.y_train if train else dataset.y_test).numpy()
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return torch.utils.data.DataLoader(
        ArrayImages(images, labels, transform),
        batch_size=batch_size,
        shuffle=train,
        num_workers=workers,
        persistent_workers=workers > 0,
    )


def article_train_epoch(model, loader, optimizer, criterion, device, max_steps=None) -> tuple[int, float]:
    """The article's loop: fp32, ``inputs.to(device)`` per batch. Returns (images seen, seconds)."""
    model.train()
    seen = 0
    synchronize()
    start = time.perf_counter()
    for step, (inputs, targets) in enumerate(loader):
        if max_steps is not None and step >= max_steps:
            break
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
        seen += len(targets)
    synchronize()
    return seen, time.perf_counter() - start


@torch.no_grad()
def article_test(model, loader, device) -> float:
    """Test accuracy the article's way (fp32, batch by batch)."""
    model.eval()
    correct = total = 0
    for inputs, targets in loader:
        outputs = model(inputs.to(device))
        correct += (outputs.argmax(1).cpu() == targets).sum().item()
        total += len(targets)
    return correct / total
