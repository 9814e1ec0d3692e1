"""The course's models: LeNet-5, an MLP, ResNets for CIFAR-10, a recurrent network and a TCN.

Image models take ``x: (N, C, H, W) float`` (already normalised) and return logits ``(N, num_classes)``:
unnormalised scores that ``nn.CrossEntropyLoss`` turns into a loss, so none ends with a softmax. Sequence
models take ``x: (N, T, D) float``. Each class names its paper and where it departs from it, and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


# --- LeNet-5 and the MLP ---------------------------------------------------------------------------
class LeNet5(nn.Module):
    """LeNet-5 as it is taught today: two convolution + pooling stages, then three linear layers.

    LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document recognition"
    (1998). One MNIST batch as it flows through (``padding=2``; 61,706 parameters)::

        x                               (N, 1, 28, 28)
        conv1  5x5, 6 maps, pad 2, ReLU (N, 6, 28, 28)    卷积 convolution
        pool1  max 2x2, stride 2        (N, 6, 14, 14)    池化 pooling
        conv2  5x5, 16 maps, ReLU       (N, 16, 10, 10)
        pool2  max 2x2, stride 2        (N, 16, 5, 5)     flattened to (N, 400)
        fc1 400 -> 120, fc2 120 -> 84 (each + ReLU), fc3 84 -> 10     (N, 10) logits

    Departs from the paper (0.95% MNIST test error), which pads the digit to 32x32 for an unpadded C1
    (the same maps); ReLU, not ``1.7159 tanh(2x / 3)``; max-pooling, not trainable squashed averages;
    every conv1 map feeds every conv2 map (the paper's C3 reads 3 to 6, to save connections and break
    symmetry); softmax cross-entropy, not RBF units comparing F6's 84 outputs with 7x12 digit bitmaps.
    For 32x32 images (CIFAR-10, ``in_channels=3``) use ``padding=0``: pool2 then gives 5x5 maps too.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, padding: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=padding)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(F.relu(self.conv1(x)))  # (N, 6, 14, 14)
        x = self.pool2(F.relu(self.conv2(x)))  # (N, 16, 5, 5)
        x = torch.flatten(x, 1)  # (N, 400)
        x = F.relu(self.fc1(x))  # (N, 120)
        x = F.relu(self.fc2(x))  # (N, 84)
        return self.fc3(x)  # (N, num_classes) logits


class MLP(nn.Module):
    """A multilayer perceptron (多层感知机, MLP) with one hidden layer: the baseline without convolutions.

    ``x (N, C, H, W) -> flatten (N, in_features) -> fc1 + ReLU -> dropout -> fc2 -> (N, num_classes)``.
    101,770 parameters for MNIST, more than LeNet-5's 61,706. The blog post the course corrects
    calls it its "LeNet-5 example"; with no convolution it does not know that neighbouring pixels
    belong together. ``in_features`` is ``C * H * W`` (784 for MNIST, 3072 for CIFAR-10).
    """

    def __init__(
        self, in_features: int = 784, hidden: int = 128, num_classes: int = 10, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(dropout)  # Srivastava et al. (2014); active in training mode only
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)  # (N, in_features)
        x = self.dropout(F.relu(self.fc1(x)))  # (N, hidden)
        return self.fc2(x)  # (N, num_classes) logits


# --- ResNet for CIFAR-10 (He, Zhang, Ren & Sun 2016, section 4.2) ----------------------------------
def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    # No bias: the batch norm right after it subtracts the mean, cancelling any bias; its shift beta is one.
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """The paper's option A shortcut: subsample by the stride, then zero-pad the new channels.

    Where a stage halves the maps and doubles the channels, ``x`` no longer has the block's shape;
    option A fixes that without parameters, so a plain net and its residual twin have the same ones
    (section 4.2). ``(N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"option A can only add channels, got {in_channels} -> {out_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # a view: nothing is modified in place (autograd-safe)
        # F.pad lists (before, after) pairs from the last dimension backwards: W, H, then C.
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class BasicBlock(nn.Module):
    """The residual (残差) block of He et al. (2016), Figure 2: two 3x3 convolutions and a shortcut.

    ``out = ReLU(BN(conv2(ReLU(BN(conv1(x))))) + shortcut(x))``. The convolutions learn only the
    *residual* ``F(x) = H(x) - x``: where the identity is already right they drive ``F`` to zero,
    easier for an optimiser than making nonlinear layers reproduce the identity. This is why deep
    plain networks train worse than shallow ones ("degradation") and deep residual ones do not.
    ``x: (N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride)``. ``shortcut="A"`` adds
    ``x``, or :class:`ZeroPadShortcut` of it where the shape changes; ``"B"`` adds ``x``, or a 1x1
    convolution + BN of it there; ``None`` adds nothing (a block of the *plain* networks).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str | None = "A"
    ) -> None:
        super().__init__()
        if shortcut not in ("A", "B", None):
            raise ValueError(f"shortcut must be 'A', 'B' or None (plain), got {shortcut!r}")
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module | None = None
        if shortcut is not None and stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
        elif shortcut == "B":  # a learned projection, Eq. (2) of the paper, only where the shape changes
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)  # not `out +=`: an in-place add would break autograd here
        return F.relu(out)


class ResNet(nn.Module):
    """A residual network (残差网络) for 32x32 images: He, Zhang, Ren & Sun (2016), section 4.2.

    "Deep Residual Learning for Image Recognition" (CVPR 2016). One CIFAR-10 batch::

        x                                   (N, 3, 32, 32)
        conv1 3x3, 16 maps + bn1 + ReLU     (N, 16, 32, 32)   no max-pool on 32x32 images
        layer1: n blocks, 16 maps           (N, 16, 32, 32)
        layer2: n blocks, 32 maps           (N, 32, 16, 16)   stride 2 in its first block
        layer3: n blocks, 64 maps           (N, 64, 8, 8)     stride 2 in its first block
        avgpool (global), fc 64 -> 10       (N, 10) logits

    ``depth = 6n + 2`` weighted layers: ResNet-20, 32, 44, 56, 110 (n = 3, 5, 7, 9, 18) have 269,722,
    464,154, 658,586, 853,018, 1,727,962 parameters with option A (the paper: 0.27M to 1.7M).
    ``shortcut="A"``, the paper's choice on CIFAR-10, adds no parameters; ``"B"`` projects with 1x1
    convolutions where the shape changes (option C, projections everywhere, is ImageNet-only).
    ``plain=True`` removes every shortcut: the plain nets of Figure 6, worse the deeper they are.
    Departs from akamaster/pytorch_resnet_cifar10 in two details: option A pads the new channels after
    the old ones, not on both sides (the paper does not say), and ``fc`` starts near zero.
    """

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        shortcut: str = "A",
        plain: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"ResNet depth must be 6n + 2 with n >= 1 (8, 14, 20, 56, ...), got {depth!r}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' (zero-padding) or 'B' (1x1 projection), got {shortcut!r}")
        self.depth, self.num_blocks, self.plain = depth, (depth - 2) // 6, plain
        block_shortcut = None if plain else shortcut
        self.conv1 = _conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_stage(16, 16, 1, block_shortcut)
        self.layer2 = self._make_stage(16, 32, 2, block_shortcut)  # stride 2: half the size, twice the maps
        self.layer3 = self._make_stage(32, 64, 2, block_shortcut)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        self._init_weights()

    def _make_stage(self, c_in: int, c_out: int, stride: int, shortcut: str | None) -> nn.Sequential:
        # Only the first block of a stage changes the shape; the others keep it.
        blocks = [BasicBlock(c_in, c_out, stride, shortcut)]
        blocks += [BasicBlock(c_out, c_out, 1, shortcut) for _ in range(self.num_blocks - 1)]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # As the paper, "Delving deep into rectifiers" (He et al., 2015): N(0, 2 / n) keeps the
                # variance through ReLUs, of activations (n = fan_in) or gradients (fan_out, torchvision's).
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)  # every BN starts as the identity
                nn.init.zeros_(module.bias)
        # The paper does not say how it initialises fc. Near-zero logits make the first loss close
        # to ln(num_classes) (2.30 for 10): a quick check that a training loop starts where it should.
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # (N, 16, 32, 32)
        x = self.layer1(x)  # (N, 16, 32, 32)
        x = self.layer2(x)  # (N, 32, 16, 16)
        x = self.layer3(x)  # (N, 64, 8, 8)
        x = torch.flatten(self.avgpool(x), 1)  # (N, 64)
        return self.fc(x)  # (N, num_classes) logits


def resnet20(**kwargs: Any) -> ResNet:
    """ResNet-20 (n = 3), 269,722 parameters with option A. ``kwargs`` go to :class:`ResNet`."""
    return ResNet(depth=20, **kwargs)


# --- A recurrent network, for sequences and for images read row by row ------------------------------
RNN_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def init_recurrent_weights(rnn: nn.RNNBase) -> None:
    """Initialise an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` in place, as :class:`SequenceRNN` does.

    Not PyTorch's default (all uniform in ``±1/sqrt(hidden_size)``): the aim is a network that,
    before any training, neither forgets nor explodes over tens to hundreds of steps.
    """
    hidden = rnn.hidden_size
    for name, param in rnn.named_parameters():
        if name.startswith("weight_hh"):
            # An orthogonal matrix per gate (Saxe, McClelland & Ganguli, 2014) keeps the state's
            # length, so the state and the gradients neither vanish nor blow up over many steps.
            for gate in param.data.split(hidden, dim=0):
                nn.init.orthogonal_(gate)
        elif name.startswith("weight_ih"):
            nn.init.xavier_uniform_(param)  # Glorot & Bengio (2010): keeps the input's scale
        elif name.startswith("bias"):
            nn.init.zeros_(param)
            if isinstance(rnn, nn.LSTM) and name.startswith("bias_ih"):
                # Gates in PyTorch's order: input, forget, cell, output. A forget bias of 1 opens the
                # gate, sigmoid(1) = 0.73: the untrained cell keeps its memory and gradients reach early
                # steps (Gers et al., 2000; Jozefowicz et al., 2015). PyTorch adds bias_ih and bias_hh.
                nn.init.ones_(param.data[hidden : 2 * hidden])


class SequenceRNN(nn.Module):
    """A recurrent network (循环神经网络): an RNN, LSTM or GRU layer, then a linear layer ``fc``.

    The recurrent layer carries a hidden state ``h_t = f(x_t, h_{t-1})`` from step to step. It reads
    sequences ``x: (N, T, input_size)`` as they are, or images ``x: (N, C, H, W)`` row by row:
    ``T = H`` steps of a row's ``C * W`` values (MNIST: 28 steps of 28; CIFAR-10: 32 steps of 96).
    ``sequence="pixels"`` reads them pixel by pixel, ``T = H * W`` steps of ``C`` values: 784 steps
    for MNIST, a test of long memory (Le, Jaitly & Hinton, 2015), and slow.
    ``fc`` reads the top layer's ``h`` (an LSTM's ``h``, not its cell memory ``c``): after the last
    step for ``outputs="last"``, ``(N, num_classes)`` (an image's class, the adding problem); after
    every step for ``outputs="every_step"``, ``(N, T, num_classes)`` (the copy task). Step ``t`` has
    seen steps ``0..t`` only: the model is causal, like :class:`TCN`.

    Elman (1990) fed the hidden state back; the LSTM (Hochreiter & Schmidhuber, 1997) adds a gated
    memory cell that carries gradients far back; the GRU (Cho et al., 2014) is a lighter one. One layer
    with ``g`` gates (1, 4, 3) has ``g (H (D + H) + 2 H) + (H + 1) K`` parameters, ``K = num_classes``
    (1 for a regression): 82,186 for the MNIST row LSTM. Weights: :func:`init_recurrent_weights`.
    """

    def __init__(
        self,
        input_size: int = 28,
        hidden_size: int = 128,
        cell: str = "lstm",
        num_classes: int = 10,
        outputs: str = "last",
        num_layers: int = 1,
        sequence: str = "rows",
    ) -> None:
        super().__init__()
        if cell not in RNN_CELLS:
            raise ValueError(f"cell must be one of {', '.join(map(repr, RNN_CELLS))}, got {cell!r}")
        if sequence not in ("rows", "pixels"):
            raise ValueError(f"sequence must be 'rows' or 'pixels' (how images are read), got {sequence!r}")
        if outputs not in ("last", "every_step"):
            raise ValueError(f"outputs must be 'last' (one per sequence) or 'every_step', got {outputs!r}")
        self.input_size, self.cell, self.outputs, self.sequence = input_size, cell, outputs, sequence
        self.rnn = RNN_CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)
        init_recurrent_weights(self.rnn)

    def to_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` as a sequence ``(N, T, input_size)``; sequences pass unchanged."""
        shape = tuple(x.shape)
        if x.dim() not in (3, 4):
            raise ValueError(f"SequenceRNN expects images (N, C, H, W) or sequences (N, T, D), got {shape}")
        if x.dim() == 4 and self.sequence == "rows":
            x = x.permute(0, 2, 1, 3).flatten(2)  # (N, H, C * W): step t holds row t of every channel
        elif x.dim() == 4:
            x = x.flatten(2).transpose(1, 2)  # (N, H * W, C): one pixel per step, in reading order
        if x.shape[2] != self.input_size:
            raise ValueError(
                f"SequenceRNN(input_size={self.input_size}) reads x of shape {shape} as steps of "
                f"{x.shape[2]} values: use input_size={x.shape[2]} (rows: 28 for MNIST, 96 for CIFAR-10)"
            )
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(self.to_sequence(x))  # (N, T, hidden_size): the top layer's h at each step
        return self.fc(states[:, -1] if self.outputs == "last" else states)  # (N, [T,] num_classes)


# --- A temporal convolutional network (Bai, Kolter & Koltun 2018) ----------------------------------
class CausalConv1d(nn.Conv1d):
    """A 1-D convolution whose output at step ``t`` sees inputs at steps ``<= t`` only.

    It pads ``(kernel_size - 1) * dilation`` zeros on the left only: the output ``(N, C_out, T)`` is as
    long as the input ``(N, C_in, T)`` (Bai et al.'s code pads both sides, then cuts the right end off).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_padding = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_padding, 0)))


class TemporalBlock(nn.Module):
    """The residual block of a TCN (Bai, Kolter & Koltun, 2018, Figure 1b).

    ``out = ReLU(x' + Dropout(ReLU(conv2(Dropout(ReLU(conv1(x)))))))``, ``(N, C_in, T) -> (N, C_out,
    T)``: causal convolutions dilated by ``d`` (the block sees ``1 + 2 (k - 1) d`` steps); ``x'`` is
    ``x``, or a 1x1 convolution of it where the channels change. ``weight_norm``: ``g * v / ||v||``
    (Salimans & Kingma, 2016), as in the paper. Dropout drops values, not whole channels as the paper.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int,
        dropout: float = 0.0,
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = CausalConv1d(in_channels, out_channels, kernel_size, dilation)
        self.conv2 = CausalConv1d(out_channels, out_channels, kernel_size, dilation)
        if weight_norm:
            self.conv1 = nn.utils.parametrizations.weight_norm(self.conv1)
            self.conv2 = nn.utils.parametrizations.weight_norm(self.conv2)
        self.dropout = nn.Dropout(dropout)
        same = in_channels == out_channels  # else the residual path needs the paper's 1x1 convolution
        self.shortcut = nn.Identity() if same else nn.Conv1d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(F.relu(self.conv1(x)))
        out = self.dropout(F.relu(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class TCN(nn.Module):
    """A temporal convolutional network (TCN): causal, dilated 1-D convolutions in residual blocks.

    Bai, Kolter & Koltun, "An empirical evaluation of generic convolutional and recurrent networks
    for sequence modeling" (2018), section 3. ``L = len(channels)`` :class:`TemporalBlock` s::

        x, transposed for Conv1d            (N, input_size, T)
        block i, dilated by 2**i            (N, channels[i], T)
        fc on the last step, or on each     (N, output_size) or (N, T, output_size)

    Causal like a recurrent state (step ``t`` sees steps ``<= t`` only), but all steps of a layer are
    computed at once, in parallel. It sees the ``1 + 2 (k - 1) (2**L - 1)`` steps ending at ``t``
    (``receptive_field``, exponential in depth): choose ``L`` and ``k`` for the memory a task needs.
    The paper's code (locuslab/TCN) draws the weights from N(0, 0.01) *after* wrapping them in weight
    norm, which the next forward pass overwrites (from ``g`` and ``v``): PyTorch's default stays, here too.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        channels: Sequence[int] = (32, 32, 32, 32),
        kernel_size: int = 3,
        dropout: float = 0.0,
        weight_norm: bool = True,
        outputs: str = "last",
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"channels must be a non-empty list of positive integers, got {channels!r}")
        if not isinstance(kernel_size, int) or kernel_size < 2:
            raise ValueError(f"kernel_size must be an integer >= 2 (1 sees no past), got {kernel_size!r}")
        if outputs not in ("last", "every_step"):
            raise ValueError(f"outputs must be 'last' (one per sequence) or 'every_step', got {outputs!r}")
        self.input_size, self.kernel_size, self.outputs = input_size, kernel_size, outputs
        self.levels = len(channels)  # L, the number of residual blocks
        self.receptive_field = 1 + 2 * (kernel_size - 1) * (2**self.levels - 1)  # input steps one output sees
        widths = (input_size, *channels)
        blocks = [
            TemporalBlock(widths[i], widths[i + 1], kernel_size, 2**i, dropout, weight_norm)
            for i in range(self.levels)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels[-1], output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(
                f"TCN expects x: (N, T, input_size={self.input_size}), got {tuple(x.shape)}; for images, "
                f"course_utils.sequences.pixel_sequences makes the sequences"
            )
        features = self.blocks(x.transpose(1, 2)).transpose(1, 2)  # Conv1d wants (N, C, T); back to (N, T, C)
        return self.fc(features[:, -1] if self.outputs == "last" else features)  # (N, [T,] output_size)
