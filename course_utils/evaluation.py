"""Measuring a model: its loss and accuracy on data, its size, its FLOPs and how long it takes.

* :func:`evaluate`: loss, accuracy and predictions over a dataset, for classifiers and sequence tasks.
* :func:`confusion_matrix`, :func:`per_class_accuracy`: which classes are mistaken for which.
* :func:`count_parameters`, :func:`model_summary`, :func:`flops_per_image`: what is inside a model,
  never by formula: the model runs once on a blank input and PyTorch reports what happened, so the
  numbers stay right when a learner changes the model.
* :class:`Timer`, :func:`measure_latency`: time honestly (wait for the GPU, warm up, take the median).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_utils.environment import choose_precision
from course_utils.tables import format_table


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in evaluation mode for a ``with`` block, then restore every module's mode.

    Evaluation mode matters for batch normalisation (running statistics instead of the batch's) and
    dropout (off). Each submodule gets back its *own* mode: ``model.train()`` would also switch back
    a batch-norm layer deliberately frozen in eval mode. ``with eval_mode(model), torch.no_grad(): ...``
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


# Loss and accuracy over a dataset ---------------------------------------------------------------


@dataclass
class EvalResult:
    """What :func:`evaluate` measured on N samples (images or sequences); all tensors on the CPU.

    Attributes:
        loss: the mean loss over every answer (every step of a per-step task).
        accuracy: fraction of answers right, in [0, 1]; None for a regression (``loss="mse"``).
        predictions: (N,) or (N, T) int64, the predicted classes; for a regression the (N,) outputs.
        probabilities: (N, K) or (N, T, K) float32, the softmax outputs; None for a regression.
        targets: (N,) or (N, T), the true answers as given.
    """

    loss: float
    accuracy: float | None
    predictions: torch.Tensor
    probabilities: torch.Tensor | None
    targets: torch.Tensor

    @property
    def num_samples(self) -> int:
        """N, the number of images or sequences (not of answers)."""
        return len(self.targets)

    def __repr__(self) -> str:
        accuracy = "" if self.accuracy is None else f", accuracy={self.accuracy:.2%}"
        return f"EvalResult(loss={self.loss:.4f}{accuracy}, samples={self.num_samples})"


def _stores_channels_last(model: nn.Module) -> bool:
    """True when the model's 2-D convolutions keep their weights channels-last, as ``fit`` may leave them.

    Inputs should then be channels-last too (given mixed layouts, a convolution converts, more slowly).
    The first weight that tells the layouts apart decides: one with a 1x1 kernel or one input channel is both.
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
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    loss: str = "cross_entropy",
    mixed_precision: str = "auto",
) -> EvalResult:
    """Run ``model`` over every batch in evaluation mode (modes restored after) and measure it.

    The model decides where and how: each batch moves to the model's device, and 4-D inputs are laid
    out channels-last when the model's convolutions are (as ``fit`` leaves them).

    Args:
        model: returns ``(B, K)`` logits (one answer per sample), ``(B, T, K)`` logits (one per
            step), or ``(B,)`` / ``(B, 1)`` numbers (a regression) for a batch of B samples.
        batches: pairs ``(x, y)`` on any device, e.g. a :class:`course_utils.data.Batches`, never
            shuffled or augmented. ``x``: what the model takes, e.g. ``(B, C, H, W)`` images or
            ``(B, T, D)`` sequences; ``y``: ``(B,)`` or ``(B, T)`` int64 classes for
            ``"cross_entropy"``, ``(B,)`` floats for ``"mse"`` (mean squared error, the adding problem).
        mixed_precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``, as in ``fit``.

    Raises:
        ValueError: an unknown ``loss``, or no batches at all.
    """
    if loss not in ("cross_entropy", "mse"):
        raise ValueError(f"loss must be 'cross_entropy' or 'mse', got {loss!r}")
    device = next(model.parameters()).device
    precision = choose_precision(mixed_precision, device)
    channels_last = _stores_channels_last(model)
    # Asynchronous copies only towards a GPU: a copy to the CPU must be complete before it is read.
    non_blocking = device.type == "cuda"
    total_loss, correct, answers = 0.0, 0, 0
    predictions, probabilities, targets = [], [], []
    with eval_mode(model):
        for x, y in batches:
            x, y = x.to(device, non_blocking=non_blocking), y.to(device, non_blocking=non_blocking)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.dtype is not None):
                outputs = model(x).float()  # the loss and softmax in float32, whatever autocast used
            if loss == "mse":
                outputs = outputs.reshape(y.shape)  # (B, 1) -> (B,)
                total_loss += F.mse_loss(outputs, y.float(), reduction="sum").item()
                predictions.append(outputs.cpu())
            else:
                # cross_entropy wants the classes in dim 1: (B, T, K) -> (B, K, T); (B, K) stays.
                total_loss += F.cross_entropy(outputs.movedim(-1, 1), y, reduction="sum").item()
                predicted = outputs.argmax(dim=-1)  # (B,) or (B, T)
                correct += int((predicted == y).sum())
                predictions.append(predicted.cpu())
                probabilities.append(outputs.softmax(dim=-1).cpu())
            answers += y.numel()
            targets.append(y.cpu())
    if not targets:
        raise ValueError("evaluate() got no batches: the dataset is empty")
    return EvalResult(
        loss=total_loss / answers,
        accuracy=None if loss == "mse" else correct / answers,
        predictions=torch.cat(predictions),
        probabilities=None if loss == "mse" else torch.cat(probabilities),
        targets=torch.cat(targets),
    )


def confusion_matrix(targets: torch.Tensor, predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Count how often each true class was predicted as each class.

    ``targets``, ``predictions``: (N,) int classes in ``0..K-1``, ``K = num_classes``. Returns (K, K)
    int64: entry ``[i, j]`` counts samples of true class ``i`` predicted as class ``j``.

    Raises:
        ValueError: different lengths, or a class outside ``0..K-1``.
    """
    targets = torch.as_tensor(targets).long().flatten().cpu()
    predictions = torch.as_tensor(predictions).long().flatten().cpu()
    if targets.shape != predictions.shape:
        raise ValueError(f"targets ({len(targets)}) and predictions ({len(predictions)}) differ in length")
    for name, values in (("targets", targets), ("predictions", predictions)):
        if values.numel() and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}, found {values.min()}..{values.max()}")
    # Each (true, predicted) pair becomes one number, true * K + predicted: one bincount counts them all.
    flat = targets * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(matrix: torch.Tensor) -> torch.Tensor:
    """Accuracy of each true class: (K, K) counts -> (K,) float64, the diagonal over each row's total.

    A class with no samples gets ``nan``.
    """
    matrix = torch.as_tensor(matrix).double()
    return matrix.diagonal() / matrix.sum(dim=1)


# What is inside a model: parameters, layer shapes, FLOPs ----------------------------------------


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Count the numbers in a model's parameters, e.g. 61,706 for ``LeNet5()``; a shared one counts once.

    ``trainable_only``: only those with ``requires_grad=True`` (what the optimiser updates). Buffers,
    such as BatchNorm's running mean and variance, are statistics, not learned: never counted.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _blank_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """A batch of one input of zeros, ``(1, *input_shape)``, on the device and in the dtype of the model."""
    parameter = next(model.parameters())
    return torch.zeros((1, *input_shape), device=parameter.device, dtype=parameter.dtype)


@dataclass
class SummaryRow:
    """One layer of a :class:`ModelSummary`.

    Attributes:
        name: the dotted name in the model, e.g. ``"layer2.0.conv1"`` (for ``model.get_submodule``).
        layer_type: the class name, e.g. ``"Conv2d"``.
        output_shape: what it returned for one input, e.g. ``(1, 6, 28, 28)`` (of a tuple, as
            ``nn.LSTM`` returns, the first tensor: the output sequence).
        num_params: parameters of the layer and everything inside it.
        is_block: a block (e.g. residual) over the rows below it, whose parameters it repeats.
        depth: how many blocks it sits in: 0 for ``conv1``, 1 for ``layer1.0.conv1``.
    """

    name: str
    layer_type: str
    output_shape: tuple[int, ...]
    num_params: int
    is_block: bool
    depth: int


@dataclass
class ModelSummary:
    """What :func:`model_summary` found; ``print(summary)`` shows it as a table."""

    rows: list[SummaryRow]
    input_shape: tuple[int, ...]  # the batch of one included, e.g. (1, 1, 28, 28)
    output_shape: tuple[int, ...]
    total_params: int
    trainable_params: int

    def __str__(self) -> str:
        lines = [
            (
                "  " * row.depth + row.name,
                row.layer_type,
                str(list(row.output_shape)),  # "[1, 6, 28, 28]"
                # A block's parameters are already in its layers' rows: in parentheses, so that
                # the column does not seem to add up to more than the total.
                f"({row.num_params:,})" if row.is_block else f"{row.num_params:,}",
            )
            for row in self.rows
        ]
        table = format_table(lines, ("Layer", "Type", "Output shape", "Params"), align="lllr").splitlines()
        rule = "-" * max(map(len, table))
        return "\n".join([table[0], rule, *table[1:], rule]) + (
            f"\nInput shape: {list(self.input_shape)}\nOutput shape: {list(self.output_shape)}"
            f"\nTotal parameters: {self.total_params:,}\nTrainable parameters: {self.trainable_params:,}"
            f"\nNon-trainable parameters: {self.total_params - self.trainable_params:,}"
        )


def model_summary(model: nn.Module, input_shape: tuple[int, ...]) -> ModelSummary:
    """Run one input of zeros through the model and record what every layer outputs.

    Every layer (a module without submodules: ``Conv2d``, ``ReLU``, ``LSTM``, ...) gets a row, in
    the order the forward pass runs them. So does every block whose forward does more than run
    its children in a row (a residual ``BasicBlock`` adds its shortcut), listed before its layers
    and indented over them; ``nn.Sequential`` only groups layers and gets no row. Functions
    called in ``forward`` (``F.relu``, ``torch.flatten``) are not modules and get no row.
    It runs in eval mode (dropout off; BatchNorm keeps the blank input out of its running averages)
    without gradients; the model is not changed.

    Args:
        input_shape: ONE input's shape, without the batch dimension: ``(1, 28, 28)`` for MNIST.

    Returns:
        A :class:`ModelSummary`: ``summary.rows`` to read in code, ``print(summary)`` for the table.
    """
    names = {module: name for name, module in model.named_modules() if module is not model}
    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    blocks = [n for m, n in names.items() if list(m.children()) and not isinstance(m, containers)]
    rows: list[SummaryRow] = []
    running: list[SummaryRow] = []  # rows whose forward has started and not yet returned

    def start(module: nn.Module, inputs: object) -> None:
        # A row is listed when its module's forward starts, so that a block comes before its layers ...
        name = names[module]
        depth = sum(name.startswith(block + ".") for block in blocks)  # "layer1.0.conv1" is in "layer1.0"
        params = count_parameters(module, trainable_only=False)
        rows.append(SummaryRow(name, type(module).__name__, (), params, name in blocks, depth))
        running.append(rows[-1])

    def finish(module: nn.Module, inputs: object, output: object) -> None:
        # ... and given its shape when it returns; nn.LSTM returns (output sequence, (h_n, c_n)).
        running.pop().output_shape = tuple((output[0] if isinstance(output, tuple) else output).shape)

    # Hooks on the layers (modules without children) and the blocks; containers get none.
    handles = []
    for module, name in names.items():
        if name in blocks or not list(module.children()):
            handles.append(module.register_forward_pre_hook(start))
            handles.append(module.register_forward_hook(finish))
    x = _blank_input(model, input_shape)
    try:
        with eval_mode(model), torch.no_grad():
            output = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return ModelSummary(
        rows=rows,
        input_shape=tuple(x.shape),
        output_shape=tuple(output.shape),
        total_params=count_parameters(model, trainable_only=False),
        trainable_params=count_parameters(model),
    )


@contextlib.contextmanager
def _recurrent_layers_as_matmuls() -> Iterator[None]:
    """Switch off the oneDNN (CPU) and cuDNN (GPU) kernels while FLOPs are counted.

    ``FlopCounterMode`` counts only operators it has a rule for, and a fused recurrent one has none
    (0 FLOPs): oneDNN's ``mkldnn_rnn_layer`` for ``nn.LSTM`` on the CPU, cuDNN's ``_cudnn_rnn`` on a
    GPU. Without them PyTorch runs the same arithmetic as matrix products the counter sees.
    """
    mkldnn, cudnn = torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled
    torch.backends.mkldnn.enabled = torch.backends.cudnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled = mkldnn, cudnn


def flops_per_image(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations (FLOPs) of one forward pass on one input, e.g. 833,040 for LeNet-5.

    The model runs once on zeros of ``input_shape`` (ONE input, as in :func:`model_summary`; eval
    mode, no gradients) inside ``FlopCounterMode``, which counts what PyTorch actually executes:

    * A multiply-add counts as 2 FLOPs: a convolution is ``2 * C_in * k * k * C_out * H_out *
      W_out`` (per group), a linear layer ``2 * in_features * out_features``. Papers that count
      multiply-adds ("MACs", or "FLOPs" in He et al. 2016) give half of this number.
    * Only matrix products, convolutions and attention count. Bias additions, BatchNorm,
      activations, pooling, residual additions and gate nonlinearities do not: a few percent.
    * A recurrent layer counts every matrix product of every step: ``2 * 4 * (I * H + H * H) * T``
      for an LSTM layer with input size I, hidden size H and T steps (4 gates; 3 for a GRU, 1 for
      a plain RNN), twice that when bidirectional.
    """
    x = _blank_input(model, input_shape)
    counter = FlopCounterMode(display=False)
    with eval_mode(model), torch.no_grad(), _recurrent_layers_as_matmuls(), counter:
        model(x)
    return int(counter.get_total_flops())


# Time -------------------------------------------------------------------------------------------


def _synchronize(device: torch.device) -> None:
    """Wait until queued GPU work is done: GPU calls return before the work finishes."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Timer:
    """A context manager that measures wall time, waiting for ``device`` at both ends.

    Example::

        with Timer("cuda") as timer:
            fit(...)
        print(f"{timer.seconds:.1f} s")
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds = float("nan")

    def __enter__(self) -> Timer:
        _synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        _synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


@dataclass(frozen=True)
class Latency:
    """Median and spread (``low``, ``high``) of ``repeats`` timings, in seconds."""

    median: float
    low: float
    high: float
    repeats: int

    def __str__(self) -> str:
        spread = f"min {self.low * 1e3:.2f}, max {self.high * 1e3:.2f}"
        return f"{self.median * 1e3:.2f} ms ({spread}, n={self.repeats})"


@torch.no_grad()
def measure_latency(model: nn.Module, x: torch.Tensor, *, warmup: int = 5, repeats: int = 30) -> Latency:
    """Time ``model(x)`` in evaluation mode (modes restored after); ``model`` on ``x``'s device.

    ``x`` is one batch, e.g. (1, 1, 28, 28) for a single image. ``warmup`` untimed calls come first
    (caches, kernel selection, lazy initialisation), then ``repeats`` timed ones: the median is
    robust to the odd slow one.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times = []
    with eval_mode(model):
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            with Timer(x.device) as timer:
                model(x)
            times.append(timer.seconds)
    return Latency(statistics.median(times), min(times), max(times), repeats)
