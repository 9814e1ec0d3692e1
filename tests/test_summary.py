"""Tests for course_utils/summary.py: parameter counts, layer-by-layer summaries, FLOPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils.models import MLP, LeNet5, ResNet, SequenceRNN, resnet20, resnet56
from course_utils.summary import (
    ModelSummary,
    SummaryRow,
    count_parameters,
    flops_per_image,
    model_summary,
)

MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)


# --------------------------------------------------------------------------------------
# count_parameters
# --------------------------------------------------------------------------------------


def test_count_parameters() -> None:
    assert count_parameters(LeNet5()) == 61_706
    assert count_parameters(MLP()) == 101_770
    assert count_parameters(resnet20()) == 269_722


def test_count_parameters_trainable_only() -> None:
    model = LeNet5()
    model.conv1.requires_grad_(False)  # freeze the first layer: 6 * 25 weights + 6 biases
    assert count_parameters(model) == 61_706 - 156
    assert count_parameters(model, trainable_only=False) == 61_706


def test_count_parameters_ignores_batchnorm_statistics() -> None:
    bn = nn.BatchNorm2d(16)  # 16 scales + 16 shifts; running mean and variance are buffers
    assert count_parameters(bn) == 32


# --------------------------------------------------------------------------------------
# model_summary
# --------------------------------------------------------------------------------------


def test_lenet5_summary_rows() -> None:
    summary = model_summary(LeNet5(), MNIST)
    assert isinstance(summary, ModelSummary)
    assert all(isinstance(row, SummaryRow) for row in summary.rows)
    assert [(r.name, r.layer_type, r.output_shape, r.num_params) for r in summary.rows] == [
        ("conv1", "Conv2d", (1, 6, 28, 28), 156),
        ("pool1", "MaxPool2d", (1, 6, 14, 14), 0),
        ("conv2", "Conv2d", (1, 16, 10, 10), 2_416),
        ("pool2", "MaxPool2d", (1, 16, 5, 5), 0),
        ("fc1", "Linear", (1, 120), 48_120),
        ("fc2", "Linear", (1, 84), 10_164),
        ("fc3", "Linear", (1, 10), 850),
    ]
    assert summary.total_params == summary.trainable_params == 61_706
    assert summary.input_shape == (1, 1, 28, 28)
    assert summary.output_shape == (1, 10)


def test_summary_table_is_readable_text() -> None:
    summary = model_summary(LeNet5(), MNIST)
    table = summary.to_table()
    assert str(summary) == table
    lines = table.splitlines()
    assert lines[0].split() == ["Layer", "Type", "Output", "shape", "Params"]
    conv1 = next(line for line in lines if line.startswith("conv1"))
    assert "[1, 6, 28, 28]" in conv1 and conv1.endswith("156")
    assert "Total parameters: 61,706" in table
    assert "48,120" in table


def test_mlp_summary() -> None:
    summary = model_summary(MLP(), MNIST)
    assert [(r.name, r.output_shape) for r in summary.rows] == [
        ("flatten", (1, 784)),
        ("fc1", (1, 128)),
        ("dropout", (1, 128)),
        ("fc2", (1, 10)),
    ]
    assert summary.total_params == 101_770


@pytest.mark.parametrize(
    ("kwargs", "shortcut_type"),
    [({}, "ZeroPadShortcut"), ({"shortcut": "B"}, "Conv2d"), ({"plain": True}, None)],
)
def test_resnet_summary(kwargs: dict, shortcut_type: str | None) -> None:
    model = resnet20(**kwargs)
    summary = model_summary(model, CIFAR)
    rows = {r.name: r for r in summary.rows}
    assert rows["conv1"].output_shape == (1, 16, 32, 32)
    assert rows["layer1.2"].output_shape == (1, 16, 32, 32)
    assert rows["layer2.0"].output_shape == (1, 32, 16, 16)
    assert rows["layer3.2"].output_shape == (1, 64, 8, 8)
    assert rows["avgpool"].output_shape == (1, 64, 1, 1)
    assert rows["fc"].output_shape == (1, 10)
    # Blocks get a row (listed before their layers, indented under them); stages do not.
    blocks = [r for r in summary.rows if r.is_block]
    assert [r.name for r in blocks] == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    assert all(r.layer_type == "BasicBlock" for r in blocks)
    assert "layer1" not in rows
    names = [r.name for r in summary.rows]
    assert names.index("layer2.0") < names.index("layer2.0.conv1")
    assert rows["layer2.0.conv1"].depth == 1 and rows["conv1"].depth == 0
    # Every parameter is in exactly one layer row; block rows repeat their layers' total.
    assert sum(r.num_params for r in summary.rows if not r.is_block) == summary.total_params
    assert rows["layer1.0"].num_params == 2 * (16 * 16 * 9 + 32)
    assert summary.total_params == count_parameters(model)
    if shortcut_type == "Conv2d":
        assert rows["layer2.0.shortcut.0"].output_shape == (1, 32, 16, 16)
        assert rows["layer2.0.shortcut.0"].num_params == 16 * 32
    elif shortcut_type == "ZeroPadShortcut":
        assert rows["layer2.0.shortcut"].layer_type == "ZeroPadShortcut"
        assert rows["layer2.0.shortcut"].output_shape == (1, 32, 16, 16)
    else:
        assert not any("shortcut" in name for name in names)
    assert "(4,672)" in summary.to_table()  # a block's total, in parentheses


@pytest.mark.parametrize(
    ("kwargs", "input_size", "rnn_shape", "rnn_type"),
    [
        ({}, MNIST, (1, 28, 128), "LSTM"),
        ({"cell": "gru", "bidirectional": True}, MNIST, (1, 28, 256), "GRU"),
        ({"cell": "rnn", "input_size": 96, "num_layers": 2}, CIFAR, (1, 32, 128), "RNN"),
        ({"sequence": "pixels", "input_size": 1, "hidden_size": 8}, MNIST, (1, 784, 8), "LSTM"),
    ],
)
def test_sequence_rnn_summary_shows_the_output_sequence(kwargs, input_size, rnn_shape, rnn_type) -> None:
    # nn.LSTM returns (output, (h_n, c_n)); the row shows the output sequence (N, T, D * H).
    summary = model_summary(SequenceRNN(**kwargs), input_size)
    assert [(r.name, r.layer_type, r.output_shape) for r in summary.rows] == [
        ("rnn", rnn_type, rnn_shape),
        ("fc", "Linear", (1, 10)),
    ]


def test_summary_restores_every_module_mode_and_leaves_batchnorm_alone() -> None:
    model = resnet20().train()
    model.layer2.eval()  # a mixed state, as when part of a model is frozen
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model_summary(model, CIFAR)
    flops_per_image(model, CIFAR)
    assert model.training and model.layer1.training and model.layer3[0].bn1.training
    assert not model.layer2.training and not model.layer2[0].bn1.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key  # running statistics did not move


def test_summary_removes_its_hooks() -> None:
    model = LeNet5()
    model_summary(model, MNIST)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_summary_with_a_wrong_input_size_raises() -> None:
    with pytest.raises(RuntimeError):
        model_summary(LeNet5(), (1, 32, 32))  # needs padding=0 for 32x32 inputs


# --------------------------------------------------------------------------------------
# flops_per_image
# --------------------------------------------------------------------------------------


def conv_flops(c_in: int, k: int, c_out: int, h_out: int, w_out: int) -> int:
    return 2 * c_in * k * k * c_out * h_out * w_out


def linear_flops(n_in: int, n_out: int) -> int:
    return 2 * n_in * n_out


def test_lenet5_flops_by_hand() -> None:
    expected = (
        conv_flops(1, 5, 6, 28, 28)  # conv1: 235,200
        + conv_flops(6, 5, 16, 10, 10)  # conv2: 480,000
        + linear_flops(400, 120)
        + linear_flops(120, 84)
        + linear_flops(84, 10)
    )
    assert expected == 833_040
    assert flops_per_image(LeNet5(), MNIST) == expected


def test_mlp_flops_by_hand() -> None:
    assert flops_per_image(MLP(), MNIST) == linear_flops(784, 128) + linear_flops(128, 10) == 203_264


def resnet_flops_by_hand(n: int, projections: bool = False) -> int:
    stem = conv_flops(3, 3, 16, 32, 32)
    stage1 = 2 * n * conv_flops(16, 3, 16, 32, 32)
    stage2 = conv_flops(16, 3, 32, 16, 16) + (2 * n - 1) * conv_flops(32, 3, 32, 16, 16)
    stage3 = conv_flops(32, 3, 64, 8, 8) + (2 * n - 1) * conv_flops(64, 3, 64, 8, 8)
    shortcut = conv_flops(16, 1, 32, 16, 16) + conv_flops(32, 1, 64, 8, 8) if projections else 0
    return stem + stage1 + stage2 + stage3 + shortcut + linear_flops(64, 10)


def test_resnet20_flops() -> None:
    # About 41 million multiply-adds, which FlopCounterMode counts as 2 FLOPs each.
    flops = flops_per_image(resnet20(), CIFAR)
    assert flops == resnet_flops_by_hand(3) == 81_102_080
    assert 80e6 < flops < 83e6
    # Option A and the plain net add no FLOPs that are counted; option B adds its 1x1 convs.
    assert flops_per_image(resnet20(plain=True), CIFAR) == flops
    assert flops_per_image(resnet20(shortcut="B"), CIFAR) == resnet_flops_by_hand(3, True) == 81_626_368


def test_resnet56_flops() -> None:
    assert flops_per_image(resnet56(), CIFAR) == resnet_flops_by_hand(9) == 250_971_392


def test_resnet_flops_on_mnist() -> None:
    model = ResNet(8, in_channels=1)
    expected = (
        conv_flops(1, 3, 16, 28, 28)
        + 2 * conv_flops(16, 3, 16, 28, 28)
        + conv_flops(16, 3, 32, 14, 14)
        + conv_flops(32, 3, 32, 14, 14)
        + conv_flops(32, 3, 64, 7, 7)
        + conv_flops(64, 3, 64, 7, 7)
        + linear_flops(64, 10)
    )
    assert flops_per_image(model, MNIST) == expected


def recurrent_flops(gates: int, i: int, h: int, t: int, num_layers: int = 1, directions: int = 1) -> int:
    """2 FLOPs per multiply-add; per step and direction, gates * (I * H + H * H) multiply-adds."""
    total = 0
    for layer in range(num_layers):
        layer_input = i if layer == 0 else directions * h
        total += directions * 2 * gates * (layer_input * h + h * h) * t
    return total


def test_lstm_flops_one_layer() -> None:
    # The formula of the brief: 2 * 4 * (I * H + H * H) * T for one LSTM layer.
    model = SequenceRNN(cell="lstm", hidden_size=128)
    expected = 2 * 4 * (28 * 128 + 128 * 128) * 28 + linear_flops(128, 10)
    assert expected == recurrent_flops(4, 28, 128, 28) + linear_flops(128, 10) == 4_475_392
    assert flops_per_image(model, MNIST) == expected


@pytest.mark.parametrize(("cell", "gates"), [("rnn", 1), ("lstm", 4), ("gru", 3)])
@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, False), (2, True)])
def test_recurrent_flops(cell: str, gates: int, num_layers: int, bidirectional: bool) -> None:
    model = SequenceRNN(cell=cell, hidden_size=32, num_layers=num_layers, bidirectional=bidirectional)
    directions = 2 if bidirectional else 1
    expected = recurrent_flops(gates, 28, 32, 28, num_layers, directions) + linear_flops(directions * 32, 10)
    assert flops_per_image(model, MNIST) == expected


def test_recurrent_flops_pixels_and_cifar_rows() -> None:
    pixels = SequenceRNN(input_size=1, hidden_size=16, sequence="pixels")
    assert flops_per_image(pixels, MNIST) == recurrent_flops(4, 1, 16, 784) + linear_flops(16, 10)
    rows = SequenceRNN(input_size=96, hidden_size=16, cell="gru")
    assert flops_per_image(rows, CIFAR) == recurrent_flops(3, 96, 16, 32) + linear_flops(16, 10)


def test_flops_counting_leaves_the_backend_flags_as_they_were() -> None:
    before = (torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled)
    flops_per_image(SequenceRNN(hidden_size=8), MNIST)
    assert (torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled) == before
