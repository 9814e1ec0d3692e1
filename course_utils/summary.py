"""Look inside a model: its parameters, the shape of every layer's output, and its FLOPs.

* :func:`count_parameters`: how many numbers training adjusts.
* :func:`model_summary`: one forward pass with hooks, a row per layer (name, type,
  output shape, parameters), printed as a table.
* :func:`flops_per_image`: floating-point operations of one forward pass, counted by
  PyTorch's own ``torch.utils.flop_counter.FlopCounterMode``.

Nothing here computes a shape or a FLOP count by formula: the model runs once on a blank
image and PyTorch reports what happened. That way the numbers stay right when a learner
changes the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_utils.evaluation import eval_mode
from course_utils.tables import format_table

__all__ = ["SummaryRow", "ModelSummary", "count_parameters", "model_summary", "flops_per_image"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Count the numbers in a model's parameters.

    Args:
        model: any module.
        trainable_only: count only parameters with ``requires_grad=True`` (those the
            optimiser updates); ``False`` counts frozen ones too. Buffers such as
            BatchNorm's running mean and variance are never counted: they are statistics,
            not learned by gradient descent.

    Returns:
        The number of scalars, e.g. 61,706 for ``LeNet5()``. A parameter shared by two
        layers is counted once.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass
class SummaryRow:
    """One row of a :class:`ModelSummary`.

    Attributes:
        name: the module's dotted name in the model, e.g. ``"layer2.0.conv1"``, the name
            to use with ``model.get_submodule``.
        layer_type: the module's class name, e.g. ``"Conv2d"``.
        output_shape: shape of the module's output tensor for a batch of one image,
            batch dimension included, e.g. ``(1, 6, 28, 28)``. For modules that return a
            tuple (``nn.LSTM`` returns ``output, (h_n, c_n)``) the shape of the first tensor,
            the output sequence.
        num_params: parameters of the module and everything inside it.
        is_block: ``True`` for a row that groups the layer rows below it (a residual block);
            its parameters are already in those rows.
        depth: nesting level under the model, 0 for ``conv1``, 1 for ``layer1.0``, ...
    """

    name: str
    layer_type: str
    output_shape: tuple[int, ...]
    num_params: int
    is_block: bool = False
    depth: int = 0


@dataclass
class ModelSummary:
    """What :func:`model_summary` found: a row per layer, in the order the forward pass ran them.

    ``str(summary)`` (or ``print(summary)``) gives the table of :meth:`to_table`.

    Attributes:
        rows: one :class:`SummaryRow` per layer.
        input_shape: the shape that was fed in, batch of one included, e.g. ``(1, 1, 28, 28)``.
        output_shape: the shape of the model's output, e.g. ``(1, 10)``.
        total_params: all parameters, each counted once.
        trainable_params: those with ``requires_grad=True``.
    """

    rows: list[SummaryRow] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    total_params: int = 0
    trainable_params: int = 0

    def to_table(self) -> str:
        """The summary as fixed-width text, one line per row, totals at the bottom."""
        headers = ("Layer", "Type", "Output shape", "Params")
        lines = [
            (
                "  " * row.depth + row.name,
                row.layer_type,
                _format_shape(row.output_shape),
                # A block's parameters are already counted in its layers: show them in
                # parentheses so the column does not seem to add up to more than the total.
                f"({row.num_params:,})" if row.is_block else f"{row.num_params:,}",
            )
            for row in self.rows
        ]
        table = format_table(lines, headers, align="lllr").splitlines()
        rule = "-" * max(len(line) for line in table)
        out = [table[0], rule, *table[1:], rule]
        out.append(f"Input shape: {_format_shape(self.input_shape)}")
        out.append(f"Output shape: {_format_shape(self.output_shape)}")
        out.append(f"Total parameters: {self.total_params:,}")
        out.append(f"Trainable parameters: {self.trainable_params:,}")
        out.append(f"Non-trainable parameters: {self.total_params - self.trainable_params:,}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.to_table()


def _format_shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _first_tensor(output: object) -> torch.Tensor | None:
    """The first tensor in a module's output: the tensor itself, or the first one in a tuple/list."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _is_block(module: nn.Module) -> bool:
    """A module with children whose forward is more than running them in a row (a residual block).

    ``nn.Sequential`` and ``nn.ModuleList`` only group layers; their children get rows of
    their own, so they get none.
    """
    has_children = next(module.children(), None) is not None
    return has_children and not isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict))


def _input_device_dtype(
    model: nn.Module, device: str | torch.device | None
) -> tuple[torch.device, torch.dtype]:
    """Where to create the blank input, and its dtype: those of the model's first floating parameter."""
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = param.dtype if param is not None else torch.float32
    if device is None:
        device = param.device if param is not None else torch.device("cpu")
    return torch.device(device), dtype


def model_summary(
    model: nn.Module, input_size: tuple[int, ...], device: str | torch.device | None = None
) -> ModelSummary:
    """Run one image of zeros through the model and record what every layer outputs.

    Forward hooks (``register_forward_hook``) on the layers record each output's shape as
    the forward pass runs, so the rows come in the order the layers are used. Every leaf
    module (a layer with no submodules: ``Conv2d``, ``ReLU``, ``LSTM``, ...) gets a row;
    so does every block whose forward does more than run its children in a row (a
    :class:`~course_utils.models.BasicBlock`, whose output is the sum plus ReLU that no
    single layer returns), listed before the layers inside it. Layers called as functions
    in ``forward`` (``F.relu``, ``torch.flatten``) are not modules and get no row.

    The model runs in eval mode, so that dropout is off and BatchNorm neither normalises
    with the statistics of one blank image nor adds them to its running averages; it runs
    without gradients, and each submodule gets its previous mode back afterwards.

    Args:
        model: the model to inspect; it is not changed.
        input_size: the shape of ONE input, without the batch dimension, e.g. ``(1, 28, 28)``
            for MNIST or ``(3, 32, 32)`` for CIFAR-10.
        device: where to create the input; by default the device of the model's parameters.
            The model must already be there.

    Returns:
        A :class:`ModelSummary`: ``summary.rows`` to read in code, ``print(summary)`` for the
        table.

    Raises:
        Whatever the model raises for an input of this shape (a wrong ``input_size`` usually
        shows up as a shape mismatch in a linear layer).

    Example:
        >>> summary = model_summary(LeNet5(), (1, 28, 28))
        >>> [row.output_shape[1:] for row in summary.rows][:2]
        [(6, 28, 28), (6, 14, 14)]
    """
    device, dtype = _input_device_dtype(model, device)
    x = torch.zeros((1, *input_size), device=device, dtype=dtype)

    rows: list[SummaryRow] = []
    open_blocks: list[SummaryRow] = []  # blocks whose forward has started and not yet returned

    def new_row(
        name: str, module: nn.Module, depth: int, is_block: bool, shape: tuple[int, ...]
    ) -> SummaryRow:
        num_params = count_parameters(module, trainable_only=False)
        return SummaryRow(name, type(module).__name__, shape, num_params, is_block, depth)

    def block_started(name: str, module: nn.Module, depth: int) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object) -> None:
            row = new_row(name, module, depth, True, ())
            rows.append(row)  # listed before the layers it contains ...
            open_blocks.append(row)

        return hook

    def finished(name: str, module: nn.Module, depth: int, is_block: bool) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            tensor = _first_tensor(output)
            shape = tuple(tensor.shape) if tensor is not None else ()
            if is_block:
                open_blocks.pop().output_shape = shape  # ... and given its shape when it returns
            else:
                rows.append(new_row(name, module, depth, False, shape))

        return hook

    handles = []
    modules = [(name, module) for name, module in model.named_modules() if module is not model]
    block_names = [name for name, module in modules if _is_block(module)]
    for name, module in modules:
        block = name in block_names
        if not block and next(module.children(), None) is not None:
            continue  # a container such as nn.Sequential: its layers get the rows
        # Indent by the number of blocks this module sits in: "layer1.0.conv1" is inside "layer1.0".
        depth = sum(1 for outer in block_names if name.startswith(outer + "."))
        handles.append(module.register_forward_hook(finished(name, module, depth, block)))
        if block:
            handles.append(module.register_forward_pre_hook(block_started(name, module, depth)))

    try:
        with eval_mode(model), torch.no_grad():
            output = model(x)
    finally:
        for handle in handles:
            handle.remove()

    out_tensor = _first_tensor(output)
    return ModelSummary(
        rows=rows,
        input_shape=tuple(x.shape),
        output_shape=tuple(out_tensor.shape) if out_tensor is not None else (),
        total_params=count_parameters(model, trainable_only=False),
        trainable_params=count_parameters(model, trainable_only=True),
    )


@contextlib.contextmanager
def _recurrent_layers_as_matmuls() -> Iterator[None]:
    """Switch off the oneDNN (CPU) and cuDNN (GPU) kernels while FLOPs are counted.

    ``FlopCounterMode`` sees the ATen operators a forward pass calls and counts those it has
    a rule for: matrix products (``mm``, ``addmm``, ``bmm``, ...), convolutions and attention.
    Recurrent layers often run as one fused operator it has no rule for, and then count as
    0 FLOPs: on the CPU ``nn.LSTM`` calls oneDNN's ``aten.mkldnn_rnn_layer`` (``nn.RNN`` and
    ``nn.GRU`` run as a loop of ``addmm`` and are counted); on a GPU all three call cuDNN's
    ``aten._cudnn_rnn``. With both libraries off, PyTorch runs its own implementation: one
    ``addmm``/``mm`` for the input projection of all steps, then per step one with the
    recurrent weights, then the gate nonlinearities, and the counter sees every matrix
    product. The arithmetic is the same as in the fused kernels; only the speed differs,
    which does not matter for one image. Convolutions are counted either way.
    """
    mkldnn, cudnn = torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled
    torch.backends.mkldnn.enabled = False
    torch.backends.cudnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = mkldnn
        torch.backends.cudnn.enabled = cudnn


def flops_per_image(
    model: nn.Module, input_size: tuple[int, ...], device: str | torch.device | None = None
) -> int:
    """Floating-point operations (FLOPs) of one forward pass on one image.

    The model runs once on an image of zeros (batch of one, eval mode, no gradients, each
    submodule's mode restored afterwards) inside ``torch.utils.flop_counter.FlopCounterMode``,
    which counts what PyTorch actually executes.

    What is counted, and how:

    * A multiply-add counts as 2 FLOPs. A convolution is ``2 * C_in * k * k * C_out * H_out *
      W_out`` (per group), a linear layer ``2 * in_features * out_features``. Papers that
      count multiply-adds ("MACs", or "FLOPs" in He et al. 2016) give half of this number.
    * Only matrix products, convolutions and attention are counted. Bias additions,
      BatchNorm, activations, pooling, the residual additions and the gate nonlinearities
      of an LSTM are not: they are a few percent at most for these models.
    * Recurrent layers: every matrix product of every time step, e.g. ``2 * 4 * (I * H + H * H)
      * T`` for one LSTM layer with input size ``I``, hidden size ``H`` and ``T`` steps (4 gates;
      3 for a GRU, 1 for a plain RNN), twice that for a bidirectional layer. To make this
      possible recurrent layers run on PyTorch's own kernels while counting (see
      ``_recurrent_layers_as_matmuls``): FlopCounterMode has no rule for the fused oneDNN
      (CPU LSTM) and cuDNN (GPU RNN, LSTM, GRU) kernels and would otherwise count them as 0.

    Args:
        model: the model; it is not changed.
        input_size: the shape of ONE input, without the batch dimension, e.g. ``(1, 28, 28)``.
        device: where to create the input; by default the device of the model's parameters.

    Returns:
        FLOPs for one image, e.g. 833,040 for ``LeNet5()`` on ``(1, 28, 28)``.
    """
    device, dtype = _input_device_dtype(model, device)
    x = torch.zeros((1, *input_size), device=device, dtype=dtype)
    counter = FlopCounterMode(display=False)
    with eval_mode(model), torch.no_grad(), _recurrent_layers_as_matmuls(), counter:
        model(x)
    return int(counter.get_total_flops())
