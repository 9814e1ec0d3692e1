"""Measuring a trained classifier: loss, accuracy, predictions, confusion matrix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.precision import resolve_precision


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in evaluation mode for a ``with`` block, then restore every module's mode.

    Evaluation mode matters for batch normalisation (running statistics instead of the
    batch's) and dropout (off). Each submodule gets back its *own* mode: ``model.train()``
    would also switch back a batch-norm layer that was deliberately frozen in eval mode.

    Example::

        with eval_mode(model), torch.no_grad():
            logits = model(x)
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@dataclass
class EvalResult:
    """What :func:`evaluate` measured on a dataset.

    Attributes:
        loss: mean cross-entropy over all samples.
        accuracy: fraction of samples classified correctly, in [0, 1].
        predictions: (N,) int64, the predicted class of each sample (on the CPU).
        probabilities: (N, K) float32, the softmax outputs (on the CPU).
        targets: (N,) int64, the true classes (on the CPU).
    """

    loss: float
    accuracy: float
    predictions: torch.Tensor
    probabilities: torch.Tensor
    targets: torch.Tensor

    @property
    def num_samples(self) -> int:
        return int(self.targets.numel())

    def __repr__(self) -> str:
        return f"EvalResult(loss={self.loss:.4f}, accuracy={self.accuracy:.2%}, samples={self.num_samples})"


def _stores_channels_last(model: nn.Module) -> bool:
    """True when the model's 2-D convolutions keep their weights channels-last.

    :func:`course_utils.training.fit` lays a convolutional model out channels-last; its
    inputs should then be laid out the same way (a convolution given mixed layouts converts
    them itself, more slowly). The first convolution whose weight tells the two layouts apart
    decides: a weight with one input channel or a 1x1 kernel is both at once. Models without
    convolutions: False.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            channels_last = module.weight.is_contiguous(memory_format=torch.channels_last)
            if channels_last != module.weight.is_contiguous():
                return channels_last
    return False


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    mixed_precision: str | bool = "auto",
) -> EvalResult:
    """Run ``model`` over every batch of ``data`` in evaluation mode.

    The model decides where and how: each batch is moved to the model's device, and 4-D
    inputs are laid out channels-last when the model's convolutions are (as :func:`fit
    <course_utils.training.fit>` leaves them).

    Args:
        model: a classifier returning logits ``(B, K)``.
        data: batches ``(x, y)``, x ``(B, C, H, W)`` float (or what the model takes), y
            ``(B,)`` int64, stored on any device; e.g. a :class:`course_utils.data.Batches`
            (never shuffled or augmented for evaluation).
        mixed_precision: as in :func:`course_utils.training.fit`.

    Returns:
        An :class:`EvalResult`. The model's training mode is restored afterwards.

    Raises:
        ValueError: ``data`` holds no batches.
    """
    device = next(model.parameters()).device
    precision = resolve_precision(mixed_precision, device)
    channels_last = _stores_channels_last(model)
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    predictions, probabilities, targets = [], [], []
    # Asynchronous copies only towards a GPU: a copy to the CPU must be complete before it is read.
    non_blocking = device.type == "cuda"
    with eval_mode(model):
        for x, y in data:
            x, y = x.to(device, non_blocking=non_blocking), y.to(device, non_blocking=non_blocking)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.dtype is not None):
                logits = model(x)
            logits = logits.float()
            total_loss += F.cross_entropy(logits, y, reduction="sum").double()
            probs = logits.softmax(dim=1)
            probabilities.append(probs.cpu())
            predictions.append(probs.argmax(dim=1).cpu())
            targets.append(y.cpu())
    if not targets:
        raise ValueError("evaluate() got no batches: the dataset is empty")
    targets_all = torch.cat(targets)
    predictions_all = torch.cat(predictions)
    return EvalResult(
        loss=float(total_loss.item()) / targets_all.numel(),
        accuracy=float((predictions_all == targets_all).double().mean()),
        predictions=predictions_all,
        probabilities=torch.cat(probabilities),
        targets=targets_all,
    )


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Count how often each true class was predicted as each class.

    Args:
        targets: (N,) int, true classes in ``0..num_classes-1``.
        predictions: (N,) int, predicted classes.
        num_classes: K.

    Returns:
        (K, K) int64 matrix; entry ``[i, j]`` counts samples of true class ``i`` predicted
        as class ``j`` (rows are true classes, columns predictions).
    """
    targets = torch.as_tensor(targets).long().flatten().cpu()
    predictions = torch.as_tensor(predictions).long().flatten().cpu()
    if targets.shape != predictions.shape:
        raise ValueError(
            f"targets {tuple(targets.shape)} and predictions {tuple(predictions.shape)} differ in length"
        )
    for name, values in (("targets", targets), ("predictions", predictions)):
        if values.numel() and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}, found {values.min()}..{values.max()}")
    flat = targets * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(matrix: torch.Tensor) -> torch.Tensor:
    """Accuracy of each true class from a confusion matrix.

    Args:
        matrix: (K, K) counts from :func:`confusion_matrix`.

    Returns:
        (K,) float64: the diagonal over each row's total (``nan`` for a class with no samples).
    """
    matrix = torch.as_tensor(matrix).double()
    totals = matrix.sum(dim=1)
    return matrix.diagonal() / totals
