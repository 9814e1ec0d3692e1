"""course_utils.evaluation: evaluate, confusion matrix, parameters, summaries, FLOPs and timing."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.evaluation import (
    EvalResult,
    Latency,
    ModelSummary,
    SummaryRow,
    Timer,
    confusion_matrix,
    count_parameters,
    eval_mode,
    evaluate,
    flops_per_image,
    measure_latency,
    model_summary,
    per_class_accuracy,
)
from course_utils.models import MLP, BasicBlock, LeNet5, ResNet, SequenceRNN, resnet20

MNIST = (1, 28, 28)
CIFAR = (3, 32, 32)


# eval_mode -----------------------------------------------------------------------------------


def test_eval_mode_restores_each_module_s_own_mode():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout(0.5))
    model.train()
    model[1].eval()  # a batch-norm layer frozen on purpose, inside a model that trains
    with eval_mode(model):
        assert not any(module.training for module in model.modules())
    assert model.training and model[0].training and model[2].training
    assert not model[1].training, "the frozen batch norm must stay in eval mode"


# evaluate ------------------------------------------------------------------------------------


class Passthrough(nn.Module):
    """Returns its input as the outputs (plus a zero parameter), so the answer is known in advance."""

    def __init__(self):
        super().__init__()
        self.zero = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x + self.zero


def test_evaluate_counts_exactly():
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]])
    targets = torch.tensor([0, 1, 1, 0])
    batches = [(logits[:2], targets[:2]), (logits[2:], targets[2:])]
    model = Passthrough().train()
    result = evaluate(model, batches, mixed_precision="fp32")
    assert isinstance(result, EvalResult)
    assert result.accuracy == 0.75 and result.num_samples == 4
    assert result.predictions.tolist() == [0, 1, 2, 0]
    assert result.targets.tolist() == [0, 1, 1, 0]
    assert result.probabilities.shape == (4, 3)
    assert torch.allclose(result.probabilities.sum(1), torch.ones(4))
    assert result.loss == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-6)
    assert model.training  # mode restored
    assert repr(result) == f"EvalResult(loss={result.loss:.4f}, accuracy=75.00%, samples=4)"


def test_evaluate_per_step_cross_entropy_counts_every_step():
    # 3 sequences of 4 steps, 5 classes: outputs (B, T, K) against targets (B, T).
    logits = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    targets = logits.argmax(dim=-1)
    targets[0, :2] = (targets[0, :2] + 1) % 5  # two of the twelve answers wrong
    batches = [(logits[:2], targets[:2]), (logits[2:], targets[2:])]
    result = evaluate(Passthrough(), batches, mixed_precision="fp32")
    assert result.num_samples == 3  # sequences, not answers
    assert result.accuracy == pytest.approx(10 / 12)
    expected = F.cross_entropy(logits.reshape(-1, 5), targets.reshape(-1)).item()  # the mean over every step
    assert result.loss == pytest.approx(expected, rel=1e-6)
    assert result.predictions.shape == result.targets.shape == (3, 4)
    assert torch.equal(result.predictions, logits.argmax(dim=-1))
    assert result.probabilities.shape == (3, 4, 5)
    assert torch.allclose(result.probabilities.sum(-1), torch.ones(3, 4))


@pytest.mark.parametrize("column", [False, True])
def test_evaluate_mse_is_a_regression(column):
    outputs = torch.tensor([0.5, 1.0, 1.5, 2.0])
    targets = torch.tensor([0.5, 0.0, 1.5, 1.0])
    given = outputs[:, None] if column else outputs  # (B, 1) or (B,)
    batches = [(given[:3], targets[:3]), (given[3:], targets[3:])]
    result = evaluate(Passthrough(), batches, loss="mse", mixed_precision="fp32")
    assert result.loss == pytest.approx((1.0 + 1.0) / 4)
    assert result.accuracy is None and result.probabilities is None
    assert torch.equal(result.predictions, outputs) and torch.equal(result.targets, targets)
    assert result.num_samples == 4
    assert repr(result) == "EvalResult(loss=0.5000, samples=4)"


def test_evaluate_on_a_sequence_model():
    # A small recurrent classifier on sequences (N, T, D): one answer per sequence.
    class LastStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 8, batch_first=True)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    x, y = torch.randn(10, 6, 3), torch.randint(0, 4, (10,))
    result = evaluate(LastStep(), [(x[:5], y[:5]), (x[5:], y[5:])], mixed_precision="fp32")
    assert result.probabilities.shape == (10, 4) and 0 <= result.accuracy <= 1


def test_evaluate_refuses_empty_data_and_unknown_losses():
    with pytest.raises(ValueError, match="no batches"):
        evaluate(Passthrough(), [])
    with pytest.raises(ValueError, match="loss must be"):
        evaluate(Passthrough(), [(torch.zeros(1, 2), torch.zeros(1))], loss="l1")


class RecordsLayout(nn.Module):
    """Convolutions that remember whether each input came channels-last.

    The first one, 1x1, has a weight that is both contiguous and channels-last: evaluate
    must look at the second to tell the model's layout.
    """

    def __init__(self):
        super().__init__()
        self.pointwise = nn.Conv2d(3, 3, 1)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.channels_last_inputs = []

    def forward(self, x):
        self.channels_last_inputs.append(x.is_contiguous(memory_format=torch.channels_last))
        return self.conv(self.pointwise(x)).mean(dim=(2, 3))


@pytest.mark.parametrize("channels_last", [False, True])
def test_evaluate_follows_the_models_memory_layout(channels_last):
    model = RecordsLayout()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    x = torch.randn(6, 3, 4, 4)  # plain (N, C, H, W) batches, as Batches yields them
    batches = [(x[:4], torch.tensor([0, 1, 2, 0])), (x[4:], torch.tensor([1, 2]))]
    plain = evaluate(RecordsLayout(), batches, mixed_precision="fp32")
    result = evaluate(model, batches, mixed_precision="fp32")
    assert model.channels_last_inputs == [channels_last] * 2
    assert result.num_samples == plain.num_samples == 6


def test_evaluate_in_bfloat16_gives_float32_outputs():
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0]])
    result = evaluate(nn.Linear(3, 3), [(logits, torch.tensor([0, 1]))], mixed_precision="bf16")
    assert result.probabilities.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_evaluate_moves_each_batch_to_the_models_device():
    logits = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    model = Passthrough().to("cuda")
    result = evaluate(model, [(logits, torch.tensor([0, 1, 1]))], mixed_precision="fp32")
    assert result.accuracy == pytest.approx(2 / 3) and result.predictions.device.type == "cpu"


# confusion_matrix, per_class_accuracy --------------------------------------------------------


def test_confusion_matrix_rows_are_true_classes():
    matrix = confusion_matrix(torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 0, 2]), 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert per_class_accuracy(matrix).tolist() == pytest.approx([0.5, 1.0, 2 / 3])


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="predictions must lie in 0..2"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 3)


# count_parameters ----------------------------------------------------------------------------


def test_count_parameters():
    assert count_parameters(LeNet5()) == 61_706
    assert count_parameters(MLP()) == 101_770
    assert count_parameters(resnet20()) == 269_722


def test_count_parameters_trainable_only():
    model = LeNet5()
    model.conv1.requires_grad_(False)  # freeze the first layer: 6 * 25 weights + 6 biases
    assert count_parameters(model) == 61_706 - 156
    assert count_parameters(model, trainable_only=False) == 61_706


def test_count_parameters_ignores_batchnorm_statistics():
    bn = nn.BatchNorm2d(16)  # 16 scales + 16 shifts; running mean and variance are buffers
    assert count_parameters(bn) == 32


# model_summary -------------------------------------------------------------------------------


def test_lenet5_summary_rows():
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


def test_summary_prints_the_table_notebook_02_shows():
    lines = str(model_summary(LeNet5(), MNIST)).splitlines()
    assert lines[:3] == [
        "Layer  Type       Output shape     Params",
        "-----------------------------------------",
        "conv1  Conv2d     [1, 6, 28, 28]      156",
    ]
    assert lines[8] == "fc3    Linear     [1, 10]             850"
    assert lines[9:] == [
        "-----------------------------------------",
        "Input shape: [1, 1, 28, 28]",
        "Output shape: [1, 10]",
        "Total parameters: 61,706",
        "Trainable parameters: 61,706",
        "Non-trainable parameters: 0",
    ]


def test_mlp_summary():
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
def test_resnet_summary(kwargs, shortcut_type):
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
    assert all(r.layer_type == BasicBlock.__name__ for r in blocks)
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
    table = str(summary)
    assert "(4,672)" in table  # a block's total, in parentheses
    assert "  layer1.0.conv1" in table  # indented under its block


class RowReader(nn.Module):
    """Reads images (N, C, H, W) row by row with a recurrent layer of any kind, then a linear layer."""

    def __init__(self, rnn: nn.RNNBase, pixels: bool = False):
        super().__init__()
        self.rnn, self.pixels = rnn, pixels
        self.fc = nn.Linear(rnn.hidden_size * (2 if rnn.bidirectional else 1), 10)

    def forward(self, x):
        n, c, h, w = x.shape
        steps = x.flatten(2).transpose(1, 2) if self.pixels else x.permute(0, 2, 1, 3).reshape(n, h, c * w)
        return self.fc(self.rnn(steps)[0][:, -1])


@pytest.mark.parametrize(
    ("model", "input_shape", "rnn_shape", "rnn_type"),
    [
        (SequenceRNN(input_size=28, hidden_size=128, cell="lstm"), MNIST, (1, 28, 128), "LSTM"),
        (RowReader(nn.GRU(28, 128, batch_first=True, bidirectional=True)), MNIST, (1, 28, 256), "GRU"),
        (RowReader(nn.RNN(96, 128, num_layers=2, batch_first=True)), CIFAR, (1, 32, 128), "RNN"),
        (RowReader(nn.LSTM(1, 8, batch_first=True), pixels=True), MNIST, (1, 784, 8), "LSTM"),
    ],
)
def test_recurrent_summary_shows_the_output_sequence(model, input_shape, rnn_shape, rnn_type):
    # nn.LSTM returns (output, (h_n, c_n)); the row shows the output sequence (N, T, D * H).
    summary = model_summary(model, input_shape)
    assert [(r.name, r.layer_type, r.output_shape) for r in summary.rows] == [
        ("rnn", rnn_type, rnn_shape),
        ("fc", "Linear", (1, 10)),
    ]


def test_summary_restores_every_module_mode_and_leaves_batchnorm_alone():
    model = resnet20().train()
    model.layer2.eval()  # a mixed state, as when part of a model is frozen
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model_summary(model, CIFAR)
    flops_per_image(model, CIFAR)
    assert model.training and model.layer1.training and model.layer3[0].bn1.training
    assert not model.layer2.training and not model.layer2[0].bn1.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key  # running statistics did not move


def test_summary_removes_its_hooks():
    model = LeNet5()
    model_summary(model, MNIST)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_summary_with_a_wrong_input_size_raises():
    with pytest.raises(RuntimeError):
        model_summary(LeNet5(), (1, 32, 32))  # needs padding=0 for 32x32 inputs


# flops_per_image -----------------------------------------------------------------------------


def conv_flops(c_in: int, k: int, c_out: int, h_out: int, w_out: int) -> int:
    return 2 * c_in * k * k * c_out * h_out * w_out


def linear_flops(n_in: int, n_out: int) -> int:
    return 2 * n_in * n_out


def test_lenet5_flops_by_hand():
    expected = (
        conv_flops(1, 5, 6, 28, 28)  # conv1: 235,200
        + conv_flops(6, 5, 16, 10, 10)  # conv2: 480,000
        + linear_flops(400, 120)
        + linear_flops(120, 84)
        + linear_flops(84, 10)
    )
    assert expected == 833_040
    assert flops_per_image(LeNet5(), MNIST) == expected


def test_mlp_flops_by_hand():
    assert flops_per_image(MLP(), MNIST) == linear_flops(784, 128) + linear_flops(128, 10) == 203_264


def resnet_flops_by_hand(n: int, projections: bool = False) -> int:
    stem = conv_flops(3, 3, 16, 32, 32)
    stage1 = 2 * n * conv_flops(16, 3, 16, 32, 32)
    stage2 = conv_flops(16, 3, 32, 16, 16) + (2 * n - 1) * conv_flops(32, 3, 32, 16, 16)
    stage3 = conv_flops(32, 3, 64, 8, 8) + (2 * n - 1) * conv_flops(64, 3, 64, 8, 8)
    shortcut = conv_flops(16, 1, 32, 16, 16) + conv_flops(32, 1, 64, 8, 8) if projections else 0
    return stem + stage1 + stage2 + stage3 + shortcut + linear_flops(64, 10)


def test_resnet20_flops():
    # About 41 million multiply-adds, which FlopCounterMode counts as 2 FLOPs each.
    flops = flops_per_image(resnet20(), CIFAR)
    assert flops == resnet_flops_by_hand(3) == 81_102_080
    # Option A and the plain net add no FLOPs that are counted; option B adds its 1x1 convs.
    assert flops_per_image(resnet20(plain=True), CIFAR) == flops
    assert flops_per_image(resnet20(shortcut="B"), CIFAR) == resnet_flops_by_hand(3, True) == 81_626_368


def test_resnet56_flops():
    assert flops_per_image(ResNet(depth=56), CIFAR) == resnet_flops_by_hand(9) == 250_971_392


def test_resnet_flops_on_mnist():
    expected = (
        conv_flops(1, 3, 16, 28, 28)
        + 2 * conv_flops(16, 3, 16, 28, 28)
        + conv_flops(16, 3, 32, 14, 14)
        + conv_flops(32, 3, 32, 14, 14)
        + conv_flops(32, 3, 64, 7, 7)
        + conv_flops(64, 3, 64, 7, 7)
        + linear_flops(64, 10)
    )
    assert flops_per_image(ResNet(depth=8, in_channels=1), MNIST) == expected


def recurrent_flops(gates: int, i: int, h: int, t: int, num_layers: int = 1, directions: int = 1) -> int:
    """2 FLOPs per multiply-add; per step and direction, gates * (I * H + H * H) multiply-adds."""
    total = 0
    for layer in range(num_layers):
        layer_input = i if layer == 0 else directions * h
        total += directions * 2 * gates * (layer_input * h + h * h) * t
    return total


def test_row_lstm_flops_one_layer():
    # 2 * 4 * (I * H + H * H) * T for one LSTM layer: every matrix product of every step.
    model = SequenceRNN(input_size=28, hidden_size=128, cell="lstm")
    expected = 2 * 4 * (28 * 128 + 128 * 128) * 28 + linear_flops(128, 10)
    assert expected == recurrent_flops(4, 28, 128, 28) + linear_flops(128, 10) == 4_475_392
    assert flops_per_image(model, MNIST) == expected


@pytest.mark.parametrize(("cell", "gates"), [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_sequence_rnn_flops(cell, gates):
    model = SequenceRNN(input_size=28, hidden_size=64, cell=cell)
    assert flops_per_image(model, MNIST) == recurrent_flops(gates, 28, 64, 28) + linear_flops(64, 10)


@pytest.mark.parametrize(("layer", "gates"), [(nn.RNN, 1), (nn.LSTM, 4), (nn.GRU, 3)])
@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, False), (2, True)])
def test_recurrent_flops(layer, gates, num_layers, bidirectional):
    model = RowReader(layer(28, 32, num_layers=num_layers, batch_first=True, bidirectional=bidirectional))
    directions = 2 if bidirectional else 1
    expected = recurrent_flops(gates, 28, 32, 28, num_layers, directions) + linear_flops(directions * 32, 10)
    assert flops_per_image(model, MNIST) == expected


def test_recurrent_flops_pixels_and_cifar_rows():
    pixels = RowReader(nn.LSTM(1, 16, batch_first=True), pixels=True)
    assert flops_per_image(pixels, MNIST) == recurrent_flops(4, 1, 16, 784) + linear_flops(16, 10)
    rows = RowReader(nn.GRU(96, 16, batch_first=True))
    assert flops_per_image(rows, CIFAR) == recurrent_flops(3, 96, 16, 32) + linear_flops(16, 10)


def test_flops_counting_leaves_the_backend_flags_as_they_were():
    before = (torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled)
    flops_per_image(SequenceRNN(input_size=28, hidden_size=8, cell="lstm"), MNIST)
    assert (torch.backends.mkldnn.enabled, torch.backends.cudnn.enabled) == before


# Timer, measure_latency ----------------------------------------------------------------------


def test_timer_measures_wall_time():
    with Timer() as timer:
        time.sleep(0.05)
    assert 0.04 < timer.seconds < 1.0


def test_measure_latency_restores_mode_and_orders_statistics():
    model = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5)).train()
    latency = measure_latency(model, torch.randn(4, 16), warmup=1, repeats=7)
    assert isinstance(latency, Latency) and latency.repeats == 7
    assert 0 < latency.low <= latency.median <= latency.high
    assert model.training
    assert "ms" in str(latency)


def test_measure_latency_rejects_zero_repeats():
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        measure_latency(nn.Linear(2, 2), torch.randn(1, 2), repeats=0)
