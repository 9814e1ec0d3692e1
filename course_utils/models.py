"""The course's models: LeNet-5, a multilayer perceptron, ResNets for CIFAR, and an RNN that reads images.

Every image model takes a batch of images ``x: (N, C, H, W) float`` (already normalised) and
returns logits ``(N, num_classes)``: unnormalised scores, one per class, that
``nn.CrossEntropyLoss`` turns into a loss. None of them ends with a softmax. The two sequence
models take sequences ``x: (N, T, D) float`` instead.

Each class mirrors a paper and says in comments where it follows the paper and where it
departs from it:

* :class:`LeNet5`: LeCun, Bottou, Bengio & Haffner (1998), in the modern form taught today.
* :class:`MLP`: the multilayer perceptron (多层感知机) baseline.
* :class:`BasicBlock`, :class:`ResNet` and the builders :func:`resnet20` ... :func:`resnet110`:
  He, Zhang, Ren & Sun (2016), section 4.2 (the CIFAR-10 networks), in the layout of
  akamaster/pytorch_resnet_cifar10.
* :class:`SequenceRNN`: a recurrent network (循环神经网络, RNN) that reads an image as a
  sequence of vectors: its rows, or its pixels.
* :class:`RecurrentSequenceModel` and :class:`TCN`: models for sequences ``(N, T, D)``, for the
  tasks of :mod:`course_utils.sequences`: a recurrent network, and the temporal convolutional
  network of Bai, Kolter & Koltun (2018), causal dilated 1-D convolutions in residual blocks.

:func:`build_model` builds any of them from its name, for notebooks whose model is a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LeNet5",
    "MLP",
    "BasicBlock",
    "ZeroPadShortcut",
    "ResNet",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "SequenceRNN",
    "init_recurrent_weights",
    "RecurrentSequenceModel",
    "CausalConv1d",
    "TemporalBlock",
    "TCN",
    "MODEL_NAMES",
    "build_model",
]


# --------------------------------------------------------------------------------------
# LeNet-5
# --------------------------------------------------------------------------------------


class LeNet5(nn.Module):
    """LeNet-5 as it is taught today: two convolution + pooling stages, then three linear layers.

    Layers and the shape of one batch as it flows through (MNIST, ``padding=2``)::

        x                               (N, 1, 28, 28)
        conv1  5x5, 6 maps, pad 2, ReLU (N, 6, 28, 28)    卷积 convolution
        pool1  max 2x2, stride 2        (N, 6, 14, 14)    池化 pooling
        conv2  5x5, 16 maps, ReLU       (N, 16, 10, 10)
        pool2  max 2x2, stride 2        (N, 16, 5, 5)
        flatten                         (N, 400)
        fc1    linear 400 -> 120, ReLU  (N, 120)
        fc2    linear 120 -> 84, ReLU   (N, 84)
        fc3    linear 84 -> 10          (N, 10)  logits

    61,706 parameters for ``in_channels=1``. ``conv1`` and ``conv2`` are attributes so that a
    notebook can hook them to look at their feature maps (the hooks see the maps before
    the ReLU) and plot the six 5x5 filters in ``conv1.weight``.

    How this differs from LeCun, Bottou, Bengio & Haffner, "Gradient-based learning
    applied to document recognition" (Proc. IEEE, 1998):

    * Input: the paper feeds 32x32 images (the 28x28 digit centred in a larger field) to
      an unpadded convolution; here the first convolution pads the 28x28 image by 2,
      which gives the same 28x28 maps after C1.
    * Activation: the paper uses a scaled hyperbolic tangent, ``1.7159 * tanh(2x / 3)``;
      here ReLU.
    * Pooling: the paper's "subsampling" layers S2 and S4 average each 2x2 block,
      multiply it by a trainable coefficient, add a trainable bias and pass the result
      through the sigmoid-like squashing function; here a parameter-free max-pool.
    * C3: in the paper not every S2 map feeds every C3 map. A fixed connection table
      links each of the 16 C3 maps to 3, 4 or 6 of the 6 S2 maps, to keep the number of
      connections down and to break the symmetry between maps. Here every map of conv1
      feeds every map of conv2.
    * C5: the paper's C5 is a 5x5 convolution with 120 maps; on a 5x5 input it is
      equivalent to the linear layer fc1 here.
    * Output: the paper's output layer is made of Euclidean radial basis function (RBF)
      units, each scoring the distance between F6's 84 outputs and a fixed 7x12 bitmap
      of its digit, trained with a special loss; here a linear layer whose logits go to
      a softmax cross-entropy loss.

    The paper reports 0.95% test error on MNIST without distortions (0.8% with distorted
    training images).

    Args:
        in_channels: colour channels of the input, 1 for MNIST, 3 for CIFAR-10.
        num_classes: number of classes, the size of the output.
        padding: zero padding of ``conv1``. The default 2 turns a 28x28 image into the
            32x32 field the network was designed for. A 32x32 image (CIFAR-10) already has
            that size: pass ``padding=0``, so that pool2 still gives 5x5 maps (16 * 5 * 5 = 400
            features for fc1).

    Shapes:
        x: ``(N, in_channels, 28, 28)`` float with ``padding=2``, or
        ``(N, in_channels, 32, 32)`` with ``padding=0``. Returns logits ``(N, num_classes)``.
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


# --------------------------------------------------------------------------------------
# Multilayer perceptron
# --------------------------------------------------------------------------------------


class MLP(nn.Module):
    """A multilayer perceptron (多层感知机, MLP) with one hidden layer: the baseline without convolutions.

    Layers::

        x                             (N, 1, 28, 28)
        flatten                       (N, 784)
        fc1      linear 784 -> 128    (N, 128), then ReLU
        dropout  p = 0.2              (N, 128)  (active only in training mode)
        fc2      linear 128 -> 10     (N, 10)   logits

    101,770 parameters with the defaults. This is the network that the blog post the
    course corrects presents as its "LeNet-5 example". It is not LeNet-5: it has no
    convolution and no pooling, so it does not know that neighbouring pixels belong
    together, and it has more parameters than LeNet-5 (101,770 against 61,706).
    Compare the two in the notebooks.

    Args:
        in_features: values per image, ``C * H * W`` (784 for MNIST, 3072 for CIFAR-10).
        hidden: width of the hidden layer.
        num_classes: number of classes, the size of the output.
        dropout: probability of zeroing each hidden unit during training
            (Srivastava et al., 2014).

    Shapes:
        x: ``(N, C, H, W)`` float (or already flat ``(N, in_features)``). Returns logits
        ``(N, num_classes)``.
    """

    def __init__(
        self, in_features: int = 784, hidden: int = 128, num_classes: int = 10, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(x)  # (N, in_features)
        x = self.dropout(F.relu(self.fc1(x)))  # (N, hidden)
        return self.fc2(x)  # (N, num_classes) logits


# --------------------------------------------------------------------------------------
# ResNet for CIFAR-10 (He, Zhang, Ren & Sun 2016, section 4.2)
# --------------------------------------------------------------------------------------

SHORTCUT_OPTIONS = ("A", "B")


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    # No bias: the batch normalisation right after the convolution subtracts the mean,
    # which would cancel any bias; BN's own shift (beta) plays that role.
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """The paper's option A shortcut: subsample by the stride, then zero-pad the new channels.

    Where a stage halves the feature map and doubles the channels, ``x`` no longer has the
    shape of the block's output. Option A keeps the shortcut free of parameters: take every
    ``stride``-th pixel of ``x`` and append ``out_channels - in_channels`` channels of zeros.
    He et al. use it for all their CIFAR-10 networks (section 4.2), so that a plain net and
    its residual counterpart have exactly the same parameters.

    Shapes:
        x: ``(N, in_channels, H, W)``. Returns ``(N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"option A can only add channels, got {in_channels} -> {out_channels}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A strided slice and F.pad are plain tensor ops: autograd, torch.compile, channels_last
        # and bf16 autocast all handle them, and nothing is modified in place.
        x = x[:, :, :: self.stride, :: self.stride]
        # F.pad lists (before, after) pairs from the last dimension backwards: W, H, then C.
        return F.pad(x, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class BasicBlock(nn.Module):
    """The residual (残差) building block of He et al. (2016), Figure 2: two 3x3 convolutions, a shortcut.

    ``out = ReLU(BN(conv2(ReLU(BN(conv1(x))))) + shortcut(x))``

    The two convolutions only have to learn the *residual* ``F(x) = H(x) - x`` between the
    block's input and the output it should produce. If the identity is already right, the
    block only has to drive ``F`` towards zero, which is easier for an optimiser than
    making a stack of nonlinear layers reproduce the identity. This is the paper's
    explanation of why deep plain networks train worse than shallow ones ("degradation")
    while deep residual networks do not.

    Args:
        in_channels: channels of the input ``x``.
        out_channels: channels of the output, also the width of both convolutions.
        stride: stride of the first convolution; 2 halves the height and width.
        shortcut: ``"A"`` identity, or zero-padding where the shape changes (parameter-free);
            ``"B"`` identity, or a 1x1 convolution + BN projection where the shape changes;
            ``None``: no shortcut at all, a block of the paper's *plain* networks.

    Attributes:
        shortcut: the module applied to ``x`` before the addition (``nn.Identity``,
            :class:`ZeroPadShortcut` or ``nn.Sequential(conv 1x1, BN)``), or ``None`` for a
            plain block, whose forward then adds nothing.

    Shapes:
        x: ``(N, in_channels, H, W)``. Returns ``(N, out_channels, H / stride, W / stride)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str | None = "A"
    ) -> None:
        super().__init__()
        if shortcut is not None and shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(f"shortcut must be 'A', 'B' or None (plain), got {shortcut!r}")
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

        self.shortcut: nn.Module | None
        shape_changes = stride != 1 or in_channels != out_channels
        if shortcut is None:
            self.shortcut = None
        elif not shape_changes:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
        else:  # "B": a learned projection, Eq. (2) of the paper, only where the shape changes
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
    """A residual network (残差网络) for 32x32 images, as in section 4.2 of He, Zhang, Ren & Sun (2016).

    "Deep Residual Learning for Image Recognition" (CVPR 2016) trains these networks on
    CIFAR-10. The layout, with the shape of one batch of CIFAR-10 images::

        x                                   (N, 3, 32, 32)
        conv1 3x3, 16 maps + bn1 + ReLU     (N, 16, 32, 32)   the stem: no max-pool on 32x32 images
        layer1: n blocks, 16 maps           (N, 16, 32, 32)
        layer2: n blocks, 32 maps, stride 2 (N, 32, 16, 16)   in its first block
        layer3: n blocks, 64 maps, stride 2 (N, 64, 8, 8)     in its first block
        avgpool: global average pooling     (N, 64)
        fc: linear 64 -> 10                 (N, 10)  logits

    Each block holds two 3x3 convolutions, so the depth is ``6n + 2`` weighted layers
    (conv1 and fc included): 20, 32, 44, 56 and 110 for n = 3, 5, 7, 9, 18. Parameters
    with option A: 269,722 / 464,154 / 658,586 / 853,018 / 1,727,962 (the paper rounds
    them to 0.27M, 0.46M, 0.66M, 0.85M, 1.7M).

    Shortcuts: option A (the paper's choice on CIFAR-10) adds no parameters; option B
    projects with a 1x1 convolution where the shape changes. The paper also has an
    option C (projections on every block) that it only tries on ImageNet; it is not
    implemented here. ``plain=True`` removes every shortcut: the plain networks of
    Figure 6, whose training error grows with depth.

    Differences from akamaster/pytorch_resnet_cifar10, whose layout this follows: option A
    pads the new channels after the old ones rather than on both sides (the paper does not
    say which; the parameters and the result are the same), and the final linear layer
    starts near zero (see ``_init_weights``).

    Args:
        depth: number of weighted layers, ``6n + 2``.
        num_classes: number of classes, the size of the output.
        shortcut: ``"A"`` (zero-padding) or ``"B"`` (1x1 projection) where the shape changes.
        plain: build the network without any shortcut.
        in_channels: colour channels of the input (3 for CIFAR-10, 1 for MNIST; any
            image size works thanks to the global average pooling).

    Raises:
        ValueError: ``depth`` is not ``6n + 2`` with ``n >= 1``, or ``shortcut`` is not
            ``"A"`` or ``"B"``.

    Shapes:
        x: ``(N, in_channels, H, W)`` float. Returns logits ``(N, num_classes)``.
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
            raise ValueError(
                f"ResNet depth must be 6n + 2 with n >= 1 blocks per stage "
                f"(8, 14, 20, 32, 44, 56, 110, ...), got {depth!r}"
            )
        if shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(f"shortcut must be 'A' (zero-padding) or 'B' (1x1 projection), got {shortcut!r}")
        self.depth = depth
        self.num_blocks = (depth - 2) // 6
        self.plain = plain
        block_shortcut = None if plain else shortcut

        self.conv1 = _conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_stage(16, 16, stride=1, shortcut=block_shortcut)
        self.layer2 = self._make_stage(16, 32, stride=2, shortcut=block_shortcut)
        self.layer3 = self._make_stage(32, 64, stride=2, shortcut=block_shortcut)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        self._init_weights()

    def _make_stage(
        self, in_channels: int, out_channels: int, stride: int, shortcut: str | None
    ) -> nn.Sequential:
        # Only the first block of a stage changes the shape; the others keep it.
        blocks = [BasicBlock(in_channels, out_channels, stride, shortcut)]
        blocks += [BasicBlock(out_channels, out_channels, 1, shortcut) for _ in range(self.num_blocks - 1)]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # He et al. (2016) initialise "as in [13]": He, Zhang, Ren & Sun (2015), "Delving
                # deep into rectifiers", which draws weights from N(0, 2 / n) so that the signal
                # keeps its variance through ReLU layers. With n = fan_in the forward activations
                # keep their scale; with n = fan_out (k * k * out_channels) the backward
                # gradients do, and the 2015 paper shows that either one keeps the other
                # from vanishing or exploding. We use fan_out, as fb.resnet.torch (the
                # reproduction of these CIFAR results) and torchvision do.
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                # Every BN starts as the identity: scale 1, shift 0.
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # The paper does not say how it initialises the classifier. Small weights and zero
        # bias make all logits start near 0, so the first loss is close to ln(num_classes)
        # (2.30 for 10 classes): a quick check that a training loop starts where it should.
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


def resnet32(**kwargs: Any) -> ResNet:
    """ResNet-32 (n = 5), 464,154 parameters with option A. ``kwargs`` go to :class:`ResNet`."""
    return ResNet(depth=32, **kwargs)


def resnet44(**kwargs: Any) -> ResNet:
    """ResNet-44 (n = 7), 658,586 parameters with option A. ``kwargs`` go to :class:`ResNet`."""
    return ResNet(depth=44, **kwargs)


def resnet56(**kwargs: Any) -> ResNet:
    """ResNet-56 (n = 9), 853,018 parameters with option A. ``kwargs`` go to :class:`ResNet`."""
    return ResNet(depth=56, **kwargs)


def resnet110(**kwargs: Any) -> ResNet:
    """ResNet-110 (n = 18), 1,727,962 parameters with option A. ``kwargs`` go to :class:`ResNet`."""
    return ResNet(depth=110, **kwargs)


# --------------------------------------------------------------------------------------
# A recurrent network that reads an image as a sequence
# --------------------------------------------------------------------------------------

RNN_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
SEQUENCE_ORDERS = ("rows", "pixels")


def init_recurrent_weights(rnn: nn.RNNBase) -> None:
    """Initialise a recurrent layer as the course's recurrent models do (in place).

    * ``weight_hh`` (recurrent weights): an orthogonal matrix per gate (Saxe, McClelland &
      Ganguli, 2014).
    * ``weight_ih`` (input weights): Xavier uniform (Glorot & Bengio, 2010).
    * Biases: zero, except the forget gate of an ``nn.LSTM``, whose ``bias_ih`` part starts at 1
      (Gers, Schmidhuber & Cummins, 2000; Jozefowicz, Zaremba & Sutskever, 2015).

    :class:`SequenceRNN` explains why. Used by it and by :class:`RecurrentSequenceModel`, so
    that the two start alike.

    Args:
        rnn: an ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` (any number of layers and directions).
    """
    hidden = rnn.hidden_size
    for name, param in rnn.named_parameters():
        if name.startswith("weight_hh"):
            # Recurrent weights: an orthogonal matrix for each gate (Saxe, McClelland &
            # Ganguli, 2014). Multiplying the state by an orthogonal matrix keeps its
            # length, so over many steps the state and the gradients neither vanish nor
            # blow up just because of the initial weights.
            for gate in param.data.split(hidden, dim=0):
                nn.init.orthogonal_(gate)
        elif name.startswith("weight_ih"):
            nn.init.xavier_uniform_(param)  # Glorot & Bengio (2010): keeps the input's scale
        elif name.startswith("bias"):
            nn.init.zeros_(param)
            if isinstance(rnn, nn.LSTM) and name.startswith("bias_ih"):
                # PyTorch orders the LSTM gates (input, forget, cell, output). A forget-gate
                # bias of 1 starts the gate near sigmoid(1) = 0.73, so the cell keeps most
                # of its memory while the network is still untrained and gradients reach
                # early time steps (Gers et al., 2000; Jozefowicz, Zaremba & Sutskever,
                # 2015). Only bias_ih gets it: PyTorch adds bias_ih and bias_hh.
                nn.init.ones_(param.data[hidden : 2 * hidden])


class SequenceRNN(nn.Module):
    """A recurrent classifier (循环神经网络, RNN) that reads an image as a sequence of vectors.

    An image becomes a sequence of ``T`` time steps of ``input_size`` values each:

    * ``sequence="rows"``: its rows, one per step, all channels of the row side by side.
      MNIST: 28 steps of 28 values. CIFAR-10: 32 steps of 3 * 32 = 96 values
      (``x`` is permuted to ``(N, H, C, W)`` and reshaped to ``(N, H, C * W)``).
    * ``sequence="pixels"``: its pixels, one per step in reading order, each its ``C``
      channel values. Pixel-by-pixel MNIST: 784 steps of 1 value, a classic test of
      long-range memory (Le, Jaitly & Hinton, 2015). Slow: the steps cannot run in parallel.

    The recurrent layer (``nn.RNN`` with tanh, ``nn.LSTM`` or ``nn.GRU``) carries a hidden
    state ``h_t = f(x_t, h_{t-1})`` from step to step. After the last step, ``fc`` classifies
    the top layer's final hidden state. A bidirectional network has two: the forward
    direction's, after it has read steps 0 to T-1, and the backward direction's, after it
    has read steps T-1 back to 0; ``fc`` sees the two concatenated.

    Initialisation (not PyTorch's default, which draws every weight and bias of a recurrent
    layer uniformly from ``±1/sqrt(hidden_size)``): the aim is a network that, before any
    training, neither forgets nor explodes over the 28 to 784 steps it reads.

    * Recurrent weights ``weight_hh``: an orthogonal matrix per gate (Saxe, McClelland &
      Ganguli, 2014). Multiplying the state by an orthogonal matrix keeps its length, so
      over many steps the state and its gradients neither vanish nor blow up because of
      the initial weights alone.
    * Input weights ``weight_ih``: Xavier (Glorot & Bengio, 2010) uniform, which keeps the
      scale of the input in the gate pre-activations.
    * Biases: zero, except the LSTM's forget gate, which starts at 1 (Gers, Schmidhuber &
      Cummins, 2000; Jozefowicz, Zaremba & Sutskever, 2015): the gate is then open
      (``sigmoid(1) = 0.73``), so the untrained cell keeps most of its memory and gradients
      reach early steps. The RNN and the GRU have no forget gate.
    * ``fc`` keeps PyTorch's default initialisation of ``nn.Linear``.

    History: Jordan (1986, "Serial order: a parallel distributed processing approach")
    fed a network's output back into it at the next step; Elman (1990, "Finding structure
    in time") fed back the hidden state, the form all three cells here use. Such networks
    are trained by backpropagation through time, from Rumelhart, Hinton & Williams (1986,
    "Learning representations by back-propagating errors" and the PDP chapter "Learning
    internal representations by error propagation"). The long short-term memory (LSTM)
    of Hochreiter & Schmidhuber (1997) adds a memory cell with gates so that gradients
    survive over long sequences; the forget gate came later (Gers, Schmidhuber & Cummins,
    2000). The gated recurrent unit (GRU) of Cho et al. (2014) is a lighter gated cell.

    ``torch.compile`` works, but TorchDynamo does not trace ``nn.RNN``/``nn.LSTM``/``nn.GRU``
    (as of PyTorch 2.14): it breaks the graph there and runs the recurrent layer eagerly,
    so compiling this model gains little. ``fullgraph=True`` fails for that reason.

    Args:
        input_size: values per time step: ``C * W`` for rows, ``C`` for pixels.
        hidden_size: size of the hidden state.
        num_layers: stacked recurrent layers.
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        bidirectional: also read the sequence backwards.
        num_classes: number of classes, the size of the output.
        dropout: dropout between stacked recurrent layers (only with ``num_layers > 1``).
        sequence: ``"rows"`` or ``"pixels"``.

    Attributes:
        rnn: the ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` module (``batch_first=True``).
        fc: the linear classifier, ``hidden_size * num_directions -> num_classes``.

    Raises:
        ValueError: at construction, an unknown ``cell`` or ``sequence``, or ``dropout`` with a
            single layer (PyTorch would only warn and ignore it); in ``forward``, an
            input that is not ``(N, C, H, W)`` or whose rows (or pixels) do not have
            ``input_size`` values.

    Shapes:
        x: ``(N, C, H, W)`` float. Returns logits ``(N, num_classes)``.
    """

    def __init__(
        self,
        input_size: int = 28,
        hidden_size: int = 128,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = False,
        num_classes: int = 10,
        dropout: float = 0.0,
        sequence: str = "rows",
    ) -> None:
        super().__init__()
        if cell not in RNN_CELLS:
            raise ValueError(f"cell must be one of {', '.join(map(repr, RNN_CELLS))}, got {cell!r}")
        if sequence not in SEQUENCE_ORDERS:
            raise ValueError(f"sequence must be 'rows' or 'pixels', got {sequence!r}")
        if dropout and num_layers == 1:
            raise ValueError("dropout acts between stacked recurrent layers: use num_layers > 1 or dropout=0")
        self.input_size = input_size
        self.cell = cell
        self.sequence = sequence
        self.bidirectional = bidirectional
        rnn_class = RNN_CELLS[cell]
        self.rnn = rnn_class(
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout,
            bidirectional=bidirectional,
        )
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        init_recurrent_weights(self.rnn)

    def to_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Turn images ``(N, C, H, W)`` into a sequence ``(N, T, input_size)``.

        Rows: ``T = H`` steps of ``C * W`` values. Pixels: ``T = H * W`` steps of ``C`` values.

        Raises:
            ValueError: ``x`` is not 4-dimensional or its rows (pixels) have the wrong size.
        """
        if x.dim() != 4:
            raise ValueError(
                f"SequenceRNN expects images of shape (N, C, H, W), got a tensor of shape {tuple(x.shape)}"
            )
        n, c, h, w = x.shape
        if self.sequence == "rows":
            if c * w != self.input_size:
                raise ValueError(
                    f"SequenceRNN(sequence='rows', input_size={self.input_size}) expects C*W = "
                    f"{self.input_size} values per row, got images of shape (N, {c}, {h}, {w}): "
                    f"use input_size={c * w} for these images (28 for MNIST, 96 for CIFAR-10)"
                )
            # (N, C, H, W) -> (N, H, C, W) -> (N, H, C * W): step t sees row t of every channel.
            return x.permute(0, 2, 1, 3).reshape(n, h, c * w)
        if c != self.input_size:
            raise ValueError(
                f"SequenceRNN(sequence='pixels', input_size={self.input_size}) expects C = "
                f"{self.input_size} values per pixel, got images of shape (N, {c}, {h}, {w}): "
                f"use input_size={c} for these images (1 for MNIST, 3 for CIFAR-10)"
            )
        # (N, C, H, W) -> (N, C, H * W) -> (N, H * W, C): pixels in reading order.
        return x.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.to_sequence(x)  # (N, T, input_size)
        _, h_n = self.rnn(seq)  # h_n: (num_layers * num_directions, N, hidden_size)
        if self.cell == "lstm":
            h_n = h_n[0]  # an LSTM returns (h_n, c_n): classify from h, not from the cell memory c
        # The top layer's final state; for two directions, the forward one then the backward one.
        h = torch.cat([h_n[-2], h_n[-1]], dim=1) if self.bidirectional else h_n[-1]
        return self.fc(h)  # (N, num_classes) logits


# --------------------------------------------------------------------------------------
# Models for sequences: a recurrent network and a temporal convolutional network (TCN)
# --------------------------------------------------------------------------------------

#: What a sequence model returns: one output after the last step, or one output per step.
SEQUENCE_OUTPUTS = ("last", "every_step")


def _check_sequence_outputs(outputs: str) -> None:
    if outputs not in SEQUENCE_OUTPUTS:
        raise ValueError(
            f"outputs must be 'last' (one output per sequence, e.g. the adding problem or sequential "
            f"MNIST) or 'every_step' (one per time step, e.g. the copy-memory task), got {outputs!r}"
        )


def _check_sequence_input(model_name: str, x: torch.Tensor, input_size: int) -> None:
    if x.dim() != 3 or x.shape[2] != input_size:
        raise ValueError(
            f"{model_name} expects sequences of shape (N, T, input_size={input_size}), got a tensor of "
            f"shape {tuple(x.shape)}; for images use SequenceRNN, or course_utils.sequences.pixel_sequences "
            f"to turn them into sequences"
        )


class RecurrentSequenceModel(nn.Module):
    """A recurrent network (RNN, LSTM or GRU) for sequences that are already ``(N, T, input_size)``.

    The sequence counterpart of :class:`SequenceRNN` (which reads *images*): the same
    recurrent layer, initialised the same way (:func:`init_recurrent_weights`: orthogonal
    recurrent weights, forget-gate bias 1), followed by a linear layer ``fc``:

    * ``outputs="last"``: ``fc`` reads the top layer's state after the last step, for tasks
      with one answer per sequence (the adding problem, sequential MNIST).
    * ``outputs="every_step"``: ``fc`` reads the state after every step, for tasks that answer at
      every step (the copy-memory task). The state at step ``t`` has seen steps ``0..t`` only,
      so the model is causal, like :class:`TCN`.

    Parameters: ``g * (H * (D + H) + 2 * H) + (H + 1) * K`` for one layer with ``g`` gates
    (1 for the RNN, 4 for the LSTM, 3 for the GRU), input size ``D``, hidden size ``H`` and
    ``K`` outputs (PyTorch keeps two bias vectors, ``bias_ih`` and ``bias_hh``).

    Args:
        input_size: values per time step ``D``.
        output_size: values per output ``K`` (1 for a regression, the number of classes for a
            classification).
        hidden_size: size of the hidden state ``H``.
        cell: ``"rnn"`` (tanh), ``"lstm"`` or ``"gru"``.
        num_layers: stacked recurrent layers.
        outputs: ``"last"`` or ``"every_step"``.

    Raises:
        ValueError: an unknown ``cell`` or ``outputs``; in ``forward``, an input that is not
            ``(N, T, input_size)``.

    Shapes:
        x: ``(N, T, input_size)`` float. Returns ``(N, output_size)`` for ``outputs="last"``,
        ``(N, T, output_size)`` for ``outputs="every_step"``.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 64,
        cell: str = "lstm",
        num_layers: int = 1,
        outputs: str = "last",
    ) -> None:
        super().__init__()
        if cell not in RNN_CELLS:
            raise ValueError(f"cell must be one of {', '.join(map(repr, RNN_CELLS))}, got {cell!r}")
        _check_sequence_outputs(outputs)
        self.input_size = input_size
        self.cell = cell
        self.outputs = outputs
        self.rnn = RNN_CELLS[cell](input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)
        init_recurrent_weights(self.rnn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_sequence_input(type(self).__name__, x, self.input_size)
        states, _ = self.rnn(x)  # (N, T, hidden_size): the top layer's state after every step
        if self.outputs == "last":
            return self.fc(states[:, -1])  # (N, output_size)
        return self.fc(states)  # (N, T, output_size)


class CausalConv1d(nn.Conv1d):
    """A 1-D convolution whose output at step ``t`` sees inputs at steps ``<= t`` only.

    It pads ``(kernel_size - 1) * dilation`` zeros on the left of the sequence, none on the
    right, then convolves without padding: output step ``t`` reads inputs ``t``,
    ``t - dilation``, ..., ``t - (kernel_size - 1) * dilation``, and the output is as long as
    the input. (Bai et al.'s code pads both sides and cuts the extra steps off the right
    end, its ``Chomp1d``; the result is the same.)

    Shapes:
        x: ``(N, in_channels, T)``. Returns ``(N, out_channels, T)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_padding = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_padding, 0)))


class TemporalBlock(nn.Module):
    """The residual block of a TCN (Bai, Kolter & Koltun, 2018, Figure 1b).

    ``out = ReLU(x' + Dropout(ReLU(conv2(Dropout(ReLU(conv1(x)))))))``, where both
    convolutions are causal and dilated by ``dilation``, and ``x'`` is ``x`` itself, or a 1x1
    convolution of ``x`` when the number of channels changes (so that the two can be added).

    Args:
        in_channels, out_channels: channels of the input and of the output.
        kernel_size: taps of each convolution ``k``.
        dilation: the gap ``d`` between taps; the block sees ``1 + 2 (k - 1) d`` steps.
        dropout: dropout after each convolution's ReLU (the paper drops whole channels with
            spatial dropout; its code, like this block, drops single values).
        weight_norm: reparametrise each convolution's weight as ``g * v / ||v||`` (Salimans &
            Kingma, 2016), as the paper does.

    Shapes:
        x: ``(N, in_channels, T)``. Returns ``(N, out_channels, T)``.
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
        # The paper's 1x1 convolution on the residual path, only where the channels change.
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Conv1d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(F.relu(self.conv1(x)))
        out = self.dropout(F.relu(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


class TCN(nn.Module):
    """A temporal convolutional network (TCN): causal, dilated 1-D convolutions with residual blocks.

    Bai, Kolter & Koltun, "An empirical evaluation of generic convolutional and recurrent
    networks for sequence modeling" (2018), section 3. A stack of ``L = len(channels)``
    :class:`TemporalBlock` s, the block at level ``i`` (from 0) dilated by ``2**i``::

        x                                   (N, T, input_size)
        transpose                           (N, input_size, T)    channels first, for Conv1d
        block 0: dilation 1                 (N, channels[0], T)
        block 1: dilation 2                 (N, channels[1], T)
        ...
        block L-1: dilation 2**(L-1)        (N, channels[-1], T)
        fc on the last step, or on each     (N, output_size) or (N, T, output_size)

    Causal: every convolution pads on the left only, so the output at step ``t`` depends on
    the inputs at steps ``<= t``, as a recurrent network's state does. Unlike a recurrent
    network, all steps of a layer are computed at once, in parallel.

    Receptive field: each block adds ``2 (k - 1) 2**i`` steps, so the output at step ``t`` sees
    the ``1 + 2 (k - 1) (2**L - 1)`` steps ending at ``t`` (:attr:`receptive_field`): it grows
    exponentially with depth. Steps further back have no influence at all, so choose ``L`` and
    ``k`` such that the receptive field covers the sequence (the memory a task needs).

    How this differs from the paper's code (locuslab/TCN): the same blocks, ReLU, dropout, weight
    norm and 1x1 residual convolution. The paper's code also draws the convolution weights
    from N(0, 0.01) *after* wrapping them in weight norm, which the next forward pass
    overwrites (the weight is recomputed from ``g`` and ``v``); we keep PyTorch's default
    initialisation, which is what that code effectively uses.

    Args:
        input_size: values per time step.
        output_size: values per output (1 for a regression, the number of classes for a
            classification).
        channels: channels of each level; its length is the number of levels ``L``.
        kernel_size: taps of each convolution ``k`` (at least 2).
        dropout: dropout in each block (the paper uses 0 on the adding and copy tasks, 0.05 on
            sequential MNIST).
        weight_norm: weight normalisation of the convolutions, as in the paper.
        outputs: ``"last"``: ``fc`` reads the last step's features (one output per sequence);
            ``"every_step"``: ``fc`` reads every step's (one output per step).

    Raises:
        ValueError: an empty ``channels``, ``kernel_size < 2`` or an unknown ``outputs``; in
            ``forward``, an input that is not ``(N, T, input_size)``.

    Shapes:
        x: ``(N, T, input_size)`` float. Returns ``(N, output_size)`` for ``outputs="last"``,
        ``(N, T, output_size)`` for ``outputs="every_step"``.
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
        _check_sequence_outputs(outputs)
        self.input_size = input_size
        self.kernel_size = kernel_size
        self.outputs = outputs
        widths = (input_size, *channels)
        self.blocks = nn.Sequential(
            *(
                TemporalBlock(widths[i], widths[i + 1], kernel_size, 2**i, dropout, weight_norm)
                for i in range(len(channels))
            )
        )
        self.fc = nn.Linear(channels[-1], output_size)

    @property
    def levels(self) -> int:
        """The number of residual blocks ``L``."""
        return len(self.blocks)

    @property
    def receptive_field(self) -> int:
        """How many input steps the output at one step depends on: ``1 + 2 (k - 1) (2**L - 1)``."""
        return 1 + 2 * (self.kernel_size - 1) * (2**self.levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_sequence_input(type(self).__name__, x, self.input_size)
        features = self.blocks(x.transpose(1, 2))  # (N, channels[-1], T)
        if self.outputs == "last":
            return self.fc(features[:, :, -1])  # (N, output_size)
        return self.fc(features.transpose(1, 2))  # (N, T, output_size)


# --------------------------------------------------------------------------------------
# Build a model from its name
# --------------------------------------------------------------------------------------

_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "lenet5": LeNet5,
    "mlp": MLP,
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet44": resnet44,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "sequencernn": SequenceRNN,
}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model from its name, for notebooks whose model is a papermill parameter.

    Args:
        name: one of :data:`MODEL_NAMES`: ``"lenet5"``, ``"mlp"``, ``"resnet20"``,
            ``"resnet32"``, ``"resnet44"``, ``"resnet56"``, ``"resnet110"``, ``"sequencernn"``
            (case does not matter).
        **kwargs: passed on to the class or builder, e.g.
            ``build_model("resnet20", shortcut="B")`` or ``build_model("sequencernn", cell="gru")``.

    Returns:
        The new model, in training mode, on the CPU.

    Raises:
        ValueError: ``name`` is not one of :data:`MODEL_NAMES`.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    return _BUILDERS[key](**kwargs)
