"""Tests for course_utils/models.py: parameter counts, shapes, shortcuts, initialisation, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.models import (
    MLP,
    TCN,
    BasicBlock,
    CausalConv1d,
    LeNet5,
    ResNet,
    SequenceRNN,
    ZeroPadShortcut,
    init_recurrent_weights,
    resnet20,
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mnist_batch(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28)


def cifar_batch(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------------------
# Parameter counts, pinned
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (LeNet5, 61_706),
        (lambda: LeNet5(in_channels=3, padding=0), 62_006),  # conv1 gains 2 * 6 * 25 weights
        (MLP, 101_770),
        (lambda: MLP(in_features=3 * 32 * 32), 394_634),
        (resnet20, 269_722),
        (lambda: ResNet(depth=32), 464_154),
        (lambda: ResNet(depth=44), 658_586),
        (lambda: ResNet(depth=56), 853_018),
        (lambda: ResNet(depth=110), 1_727_962),
        (lambda: resnet20(shortcut="B"), 272_474),
        # The row LSTM of notebook 04 on MNIST and on CIFAR-10, as the old image-only SequenceRNN.
        (SequenceRNN, 82_186),
        (lambda: SequenceRNN(input_size=96), 117_002),
        # The recurrent models of the sequence tasks, as the old RecurrentSequenceModel: the adding
        # problem (2 inputs, 1 output) and the copy task (10 inputs, 10 outputs at every step).
        (lambda: SequenceRNN(2, 64, cell="lstm", num_classes=1), 17_473),
        (lambda: SequenceRNN(2, 74, cell="gru", num_classes=1), 17_391),
        (lambda: SequenceRNN(2, 128, cell="rnn", num_classes=1), 17_025),
        (lambda: SequenceRNN(10, 64, cell="lstm", num_classes=10, outputs="every_step"), 20_106),
        (lambda: SequenceRNN(10, 74, cell="gru", num_classes=10, outputs="every_step"), 19_842),
        (lambda: SequenceRNN(10, 128, cell="rnn", num_classes=10, outputs="every_step"), 19_210),
        (lambda: TCN(2, 1, channels=[24] * 6, kernel_size=3), 19_825),
    ],
)
def test_parameter_counts(build, expected: int) -> None:
    assert n_params(build()) == expected


def test_lenet5_parameter_count_by_hand() -> None:
    conv1 = 1 * 6 * 5 * 5 + 6
    conv2 = 6 * 16 * 5 * 5 + 16
    fc = (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert conv1 + conv2 + fc == 61_706 == n_params(LeNet5())


def test_mlp_parameter_count_by_hand() -> None:
    assert (784 * 128 + 128) + (128 * 10 + 10) == 101_770 == n_params(MLP())


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_resnet_parameter_count_by_hand(depth: int) -> None:
    n = (depth - 2) // 6

    def conv_bn(c_in: int, c_out: int, k: int = 3) -> int:
        return c_in * c_out * k * k + 2 * c_out  # conv without bias, BN scale and shift

    def stage(c_in: int, c_out: int) -> int:
        first = conv_bn(c_in, c_out) + conv_bn(c_out, c_out)
        return first + (n - 1) * 2 * conv_bn(c_out, c_out)

    option_a = conv_bn(3, 16) + stage(16, 16) + stage(16, 32) + stage(32, 64) + 64 * 10 + 10
    assert n_params(ResNet(depth)) == option_a
    assert n_params(ResNet(depth, plain=True)) == option_a  # option A adds no parameters
    projections = conv_bn(16, 32, k=1) + conv_bn(32, 64, k=1)
    assert n_params(ResNet(depth, shortcut="B")) == option_a + projections == option_a + 2_752


@pytest.mark.parametrize(("cell", "gates"), [("rnn", 1), ("lstm", 4), ("gru", 3)])
@pytest.mark.parametrize(("d", "h", "k"), [(28, 128, 10), (96, 32, 10), (2, 32, 1), (10, 16, 10)])
def test_sequence_rnn_parameter_count_by_hand(cell: str, gates: int, d: int, h: int, k: int) -> None:
    one_layer = gates * (h * (d + h) + 2 * h)  # weight_ih, weight_hh, bias_ih, bias_hh
    assert n_params(SequenceRNN(d, h, cell=cell, num_classes=k)) == one_layer + (h + 1) * k
    second_layer = gates * (h * (h + h) + 2 * h)  # reads the h outputs of layer 1
    assert n_params(SequenceRNN(d, h, cell=cell, num_classes=k, num_layers=2)) == (
        one_layer + second_layer + (h + 1) * k
    )


# --------------------------------------------------------------------------------------
# Output shapes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "x"),
    [
        (LeNet5, mnist_batch()),
        (lambda: LeNet5(in_channels=3, padding=0), cifar_batch()),
        (MLP, mnist_batch()),
        (lambda: MLP(in_features=3 * 32 * 32), cifar_batch()),
        (resnet20, cifar_batch()),
        (lambda: resnet20(in_channels=1), mnist_batch()),
        (lambda: resnet20(shortcut="B"), cifar_batch()),
        (lambda: resnet20(plain=True), cifar_batch()),
        (SequenceRNN, mnist_batch()),
        (lambda: SequenceRNN(input_size=96), cifar_batch()),
        (lambda: SequenceRNN(input_size=1, sequence="pixels", hidden_size=16), mnist_batch()),
        (lambda: SequenceRNN(input_size=3, sequence="pixels", hidden_size=16), cifar_batch()),
        (lambda: SequenceRNN(cell="rnn"), mnist_batch()),
        (lambda: SequenceRNN(cell="gru"), mnist_batch()),
        (lambda: SequenceRNN(input_size=96, cell="gru", num_layers=2), cifar_batch()),
    ],
)
def test_output_is_logits_of_shape_n_by_10(build, x: torch.Tensor) -> None:
    model = build()
    out = model(x)
    assert out.shape == (2, 10)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_num_classes() -> None:
    assert LeNet5(num_classes=7)(mnist_batch()).shape == (2, 7)
    assert MLP(num_classes=7)(mnist_batch()).shape == (2, 7)
    assert resnet20(num_classes=100)(cifar_batch()).shape == (2, 100)
    assert SequenceRNN(num_classes=7)(mnist_batch()).shape == (2, 7)


def test_lenet5_feature_maps_can_be_hooked() -> None:
    model = LeNet5()
    shapes = {}
    for name in ("conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "fc3"):
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
        )
    model(mnist_batch())
    assert shapes == {
        "conv1": (6, 28, 28),
        "pool1": (6, 14, 14),
        "conv2": (16, 10, 10),
        "pool2": (16, 5, 5),
        "fc1": (120,),
        "fc2": (84,),
        "fc3": (10,),
    }
    assert model.conv1.weight.shape == (6, 1, 5, 5)


def test_resnet_stage_shapes_and_named_parts() -> None:
    model = resnet20()
    x = cifar_batch()
    stem = F.relu(model.bn1(model.conv1(x)))
    assert stem.shape == (2, 16, 32, 32)
    a = model.layer1(stem)
    b = model.layer2(a)
    c = model.layer3(b)
    assert (a.shape, b.shape, c.shape) == ((2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8))
    assert all(len(stage) == 3 for stage in (model.layer1, model.layer2, model.layer3))
    assert model.fc.in_features == 64
    assert model.depth == 20 and model.num_blocks == 3
    assert ResNet(depth=56).depth == 56 and ResNet(depth=56).num_blocks == 9


# --------------------------------------------------------------------------------------
# ResNet: shortcuts, plain networks, depth
# --------------------------------------------------------------------------------------


def blocks(model: nn.Module) -> list[BasicBlock]:
    return [m for m in model.modules() if isinstance(m, BasicBlock)]


def test_no_max_pool_anywhere_in_resnet() -> None:
    for model in (resnet20(), resnet20(shortcut="B"), resnet20(plain=True)):
        assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_depth_is_6n_plus_2_weighted_layers(depth: int) -> None:
    model = ResNet(depth)
    convs_in_blocks = sum(isinstance(m, nn.Conv2d) for b in blocks(model) for m in (b.conv1, b.conv2))
    assert len(blocks(model)) == 3 * (depth - 2) // 6
    assert 1 + convs_in_blocks + 1 == depth  # stem conv + block convs + fc


def test_option_a_shortcuts_have_no_parameters() -> None:
    model = resnet20(shortcut="A")
    shortcuts = [b.shortcut for b in blocks(model)]
    assert all(s is not None for s in shortcuts)
    assert sum(n_params(s) for s in shortcuts) == 0
    # Stride 2 only at the first block of stages 2 and 3: two zero-padding shortcuts.
    assert [type(s).__name__ for s in shortcuts].count("ZeroPadShortcut") == 2
    assert sum(isinstance(s, nn.Identity) for s in shortcuts) == 7


def test_option_b_projects_with_1x1_convs_only_where_the_shape_changes() -> None:
    model = resnet20(shortcut="B")
    shortcuts = [b.shortcut for b in blocks(model)]
    projections = [s for s in shortcuts if not isinstance(s, nn.Identity)]
    assert len(projections) == 2
    for s, (c_in, c_out) in zip(projections, [(16, 32), (32, 64)], strict=True):
        conv = s[0]
        assert isinstance(conv, nn.Conv2d) and isinstance(s[1], nn.BatchNorm2d)
        assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
        assert (conv.in_channels, conv.out_channels) == (c_in, c_out)


def test_plain_network_has_no_shortcut_anywhere() -> None:
    model = resnet20(plain=True)
    assert len(blocks(model)) == 9
    assert all(b.shortcut is None for b in blocks(model))
    assert not any(isinstance(m, (ZeroPadShortcut, nn.Identity)) for m in model.modules())


def zeroed_block(shortcut: str | None) -> BasicBlock:
    block = BasicBlock(8, 8, stride=1, shortcut=shortcut).eval()
    with torch.no_grad():
        block.conv1.weight.zero_()
        block.conv2.weight.zero_()
    return block


def test_plain_block_adds_nothing() -> None:
    # With both convolutions zeroed the residual branch outputs 0 (fresh BN in eval mode is
    # the identity). A plain block then outputs ReLU(0) = 0 ...
    x = torch.rand(2, 8, 6, 6)
    assert torch.equal(zeroed_block(None)(x), torch.zeros_like(x))


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_residual_block_passes_its_input_through(shortcut: str) -> None:
    # ... while a residual block outputs ReLU(0 + x) = x for a non-negative x.
    x = torch.rand(2, 8, 6, 6)
    assert torch.equal(zeroed_block(shortcut)(x), x)


def test_zero_pad_shortcut_subsamples_and_appends_zero_channels() -> None:
    x = torch.randn(2, 16, 32, 32)
    out = ZeroPadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 16, 16)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(out[:, 16:], torch.zeros(2, 16, 16, 16))


def test_zero_pad_shortcut_cannot_remove_channels() -> None:
    with pytest.raises(ValueError, match="only add channels"):
        ZeroPadShortcut(32, 16)


@pytest.mark.parametrize("depth", [0, 2, 5, 19, 21, 22, 100, 20.0, "20"])
def test_resnet_rejects_depths_that_are_not_6n_plus_2(depth) -> None:
    with pytest.raises(ValueError, match=r"6n \+ 2"):
        ResNet(depth)


def test_resnet_accepts_the_smallest_depth() -> None:
    assert len(blocks(ResNet(8))) == 3


@pytest.mark.parametrize("shortcut", ["C", "a", None, "identity"])
def test_resnet_rejects_unknown_shortcuts(shortcut) -> None:
    with pytest.raises(ValueError, match="shortcut"):
        ResNet(20, shortcut=shortcut)


@pytest.mark.parametrize("shortcut", ["C", "a", "identity"])
def test_basic_block_rejects_unknown_shortcuts(shortcut: str) -> None:
    with pytest.raises(ValueError, match=r"'A', 'B' or None"):
        BasicBlock(16, 32, stride=2, shortcut=shortcut)


def test_resnet_initialisation() -> None:
    model = resnet20()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
    # He initialisation, fan_out: std = sqrt(2 / (k * k * out_channels)).
    w = model.layer3[1].conv1.weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.05)
    # The classifier starts near zero, so the first loss is close to ln(10).
    x, y = cifar_batch(32), torch.randint(0, 10, (32,))
    assert F.cross_entropy(model(x), y).item() == pytest.approx(math.log(10), abs=0.05)


def test_resnet_channels_last_and_bf16_autocast() -> None:
    model = ResNet(8).eval()
    x = cifar_batch()
    with torch.no_grad():
        reference = model(x)
        cl_model = ResNet(8).eval()
        cl_model.load_state_dict(model.state_dict())
        cl_model = cl_model.to(memory_format=torch.channels_last)
        channels_last = cl_model(x.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(x)
    torch.testing.assert_close(channels_last, reference, rtol=1e-4, atol=1e-5)
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.float(), reference, rtol=0.1, atol=0.05)


def test_resnet_compiles_as_one_graph() -> None:
    # fullgraph=True fails on any graph break. The "aot_eager" backend traces forward and
    # backward like the default inductor backend does, without generating C++ (slow on CPU).
    torch._dynamo.reset()
    model = ResNet(8)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = cifar_batch()
    torch.testing.assert_close(compiled(x), model(x))
    compiled(x).sum().backward()
    assert model.conv1.weight.grad is not None


def test_sequence_rnn_runs_under_torch_compile() -> None:
    # Dynamo does not trace nn.LSTM: it breaks the graph there and runs the layer eagerly.
    torch._dynamo.reset()
    model = SequenceRNN(hidden_size=16)
    x = mnist_batch()
    torch.testing.assert_close(torch.compile(model, backend="aot_eager")(x), model(x))


# --------------------------------------------------------------------------------------
# SequenceRNN: images and sequences, final state, validation, initialisation
# --------------------------------------------------------------------------------------


def test_rows_of_a_colour_image_put_the_channels_side_by_side() -> None:
    x = cifar_batch()
    seq = SequenceRNN(input_size=96).to_sequence(x)
    assert seq.shape == (2, 32, 96)
    # Step t holds row t of the red, then the green, then the blue channel.
    torch.testing.assert_close(seq[1, 5], torch.cat([x[1, 0, 5], x[1, 1, 5], x[1, 2, 5]]))


def test_rows_of_mnist_are_the_rows() -> None:
    x = mnist_batch()
    assert torch.equal(SequenceRNN().to_sequence(x), x[:, 0])


def test_pixels_are_read_in_reading_order() -> None:
    x = mnist_batch()
    seq = SequenceRNN(input_size=1, sequence="pixels").to_sequence(x)
    assert seq.shape == (2, 784, 1)
    assert torch.equal(seq[:, 28 * 3 + 7, 0], x[:, 0, 3, 7])
    rgb = SequenceRNN(input_size=3, sequence="pixels").to_sequence(cifar_batch())
    assert rgb.shape == (2, 1024, 3)


def test_sequences_are_read_as_they_are() -> None:
    x = torch.randn(3, 7, 5)
    model = SequenceRNN(input_size=5, hidden_size=8, sequence="pixels")  # `sequence` is for images only
    assert model.to_sequence(x) is x


def test_an_image_and_its_rows_as_a_sequence_give_the_same_answer() -> None:
    # One model for both: an MNIST image (N, 1, 28, 28) is the sequence of its 28 rows (N, 28, 28).
    for outputs in ("last", "every_step"):
        model = SequenceRNN(hidden_size=16, cell="gru", outputs=outputs).eval()
        x = mnist_batch()
        with torch.no_grad():
            assert torch.equal(model(x), model(x[:, 0]))
        cifar = SequenceRNN(input_size=96, hidden_size=16, outputs=outputs).eval()
        x = cifar_batch()
        with torch.no_grad():
            assert torch.equal(cifar(x), cifar(cifar.to_sequence(x)))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_classifies_from_the_final_hidden_state(cell: str) -> None:
    model = SequenceRNN(cell=cell, hidden_size=16, num_layers=2).eval()
    x = mnist_batch()
    with torch.no_grad():
        out, final = model.rnn(model.to_sequence(x))
        h_n = final[0] if cell == "lstm" else final  # an LSTM returns (h_n, c_n): h, not the memory c
        torch.testing.assert_close(model(x), model.fc(out[:, -1]))
        torch.testing.assert_close(model(x), model.fc(h_n[-1]))  # the top layer's state


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_every_step_reads_the_state_after_each_step(cell: str) -> None:
    model = SequenceRNN(cell=cell, hidden_size=16, outputs="every_step").eval()
    x = mnist_batch()
    with torch.no_grad():
        out, _ = model.rnn(x[:, 0])
        every = model(x)
        assert every.shape == (2, 28, 10)
        torch.testing.assert_close(every, model.fc(out))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_last_and_every_step_share_weights_and_agree_on_the_last_step(cell: str) -> None:
    torch.manual_seed(1)
    last = SequenceRNN(5, 8, cell=cell, num_classes=3).eval()
    torch.manual_seed(1)
    every = SequenceRNN(5, 8, cell=cell, num_classes=3, outputs="every_step").eval()
    x = torch.randn(4, 11, 5)
    with torch.no_grad():
        assert last(x).shape == (4, 3) and every(x).shape == (4, 11, 3)
        torch.testing.assert_close(every(x)[:, -1], last(x))


def test_sequence_rnn_uses_the_requested_cell() -> None:
    assert (
        isinstance(SequenceRNN(cell="rnn").rnn, nn.RNN) and SequenceRNN(cell="rnn").rnn.nonlinearity == "tanh"
    )
    assert isinstance(SequenceRNN(cell="lstm").rnn, nn.LSTM)
    assert isinstance(SequenceRNN(cell="gru").rnn, nn.GRU)
    assert SequenceRNN().rnn.batch_first
    assert SequenceRNN(num_layers=2).rnn.num_layers == 2
    assert SequenceRNN(cell="gru").cell == "gru"


def test_sequence_rnn_says_which_input_size_cifar_needs() -> None:
    with pytest.raises(ValueError) as error:
        SequenceRNN(input_size=28)(cifar_batch())
    message = str(error.value)
    assert "input_size=28" in message and "(2, 3, 32, 32)" in message and "use input_size=96" in message


def test_sequence_rnn_pixels_input_size_error() -> None:
    with pytest.raises(ValueError, match=r"input_size=28.*use input_size=1"):
        SequenceRNN(input_size=28, sequence="pixels")(mnist_batch())


def test_sequence_rnn_says_which_input_size_a_sequence_needs() -> None:
    with pytest.raises(ValueError, match=r"input_size=2.*\(4, 10, 3\).*use input_size=3"):
        SequenceRNN(input_size=2)(torch.randn(4, 10, 3))


@pytest.mark.parametrize("shape", [(2, 784), (2, 1, 1, 28, 28), (28,)])
def test_sequence_rnn_rejects_inputs_that_are_neither_images_nor_sequences(shape: tuple) -> None:
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or sequences \(N, T, D\)"):
        SequenceRNN()(torch.randn(*shape))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cell": "transformer"}, "cell must be one of"),
        ({"cell": "LSTM"}, "cell must be one of"),
        ({"sequence": "columns"}, "sequence must be"),
        ({"outputs": "first"}, "outputs must be"),
        ({"outputs": "all"}, "outputs must be"),
    ],
)
def test_sequence_rnn_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SequenceRNN(**kwargs)


def test_sequence_rnn_initialisation() -> None:
    model = SequenceRNN(hidden_size=32)
    bias = model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0
    # Gates in PyTorch's order: input, forget, cell, output. Only the forget gate starts at 1.
    assert torch.equal(bias[32:64], torch.ones(32))
    assert torch.equal(bias[:32], torch.zeros(32)) and torch.equal(bias[64:], torch.zeros(64))
    for gate in model.rnn.weight_hh_l0.detach().split(32):
        torch.testing.assert_close(gate @ gate.T, torch.eye(32), atol=1e-5, rtol=0)


def test_sequence_rnn_input_weights_are_xavier_and_other_cells_have_zero_biases() -> None:
    for cell, gates in (("rnn", 1), ("gru", 3)):
        model = SequenceRNN(cell=cell, hidden_size=32)
        # Xavier uniform draws from +-sqrt(6 / (fan_in + fan_out));
        # PyTorch's default, +-1/sqrt(hidden_size) = +-0.18, is narrower.
        limit = (6 / (28 + gates * 32)) ** 0.5
        weight = model.rnn.weight_ih_l0.detach()
        assert weight.abs().max() <= limit and weight.abs().max() > 1 / 32**0.5
        # No forget gate there: every bias starts at zero.
        assert not model.rnn.bias_ih_l0.any() and not model.rnn.bias_hh_l0.any()


def test_init_recurrent_weights_on_a_bare_layer_and_every_layer_of_a_stack() -> None:
    rnn = nn.LSTM(3, 8)
    init_recurrent_weights(rnn)
    assert torch.equal(rnn.bias_ih_l0[8:16], torch.ones(8)) and not rnn.bias_hh_l0.any()
    stacked = SequenceRNN(2, 8, cell="lstm", num_classes=1, num_layers=2).rnn
    assert torch.equal(stacked.bias_ih_l1[8:16], torch.ones(8))
    for gate in stacked.weight_hh_l1.detach().split(8):
        torch.testing.assert_close(gate @ gate.T, torch.eye(8), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_an_image_model_and_a_sequence_model_start_alike(cell: str) -> None:
    # Built from the same seed, a model for MNIST rows and one for 28-value sequences get the
    # same weights: one initialisation, init_recurrent_weights, for images and for sequences.
    torch.manual_seed(3)
    image_model = SequenceRNN(input_size=28, hidden_size=16, cell=cell)
    torch.manual_seed(3)
    sequence_model = SequenceRNN(28, 16, cell=cell, num_classes=10)
    for a, b in zip(image_model.parameters(), sequence_model.parameters(), strict=True):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------------------
# Every model trains: one gradient step
# --------------------------------------------------------------------------------------


def assert_one_step_lowers_the_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One SGD step on (x, y): every gradient is finite and the loss on the same batch falls."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    before.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    with torch.no_grad():
        after = F.cross_entropy(model(x), y)
    assert after.item() < before.item()


@pytest.mark.parametrize(
    ("build", "x"),
    [
        (LeNet5, mnist_batch(4)),
        (MLP, mnist_batch(4)),
        (lambda: ResNet(8), cifar_batch(4)),
        (lambda: ResNet(8, shortcut="B"), cifar_batch(4)),
        (lambda: ResNet(8, plain=True), cifar_batch(4)),
        (lambda: SequenceRNN(cell="rnn", hidden_size=16), mnist_batch(4)),
        (lambda: SequenceRNN(cell="lstm", hidden_size=16), mnist_batch(4)),
        (lambda: SequenceRNN(cell="gru", hidden_size=16, num_layers=2), mnist_batch(4)),
    ],
)
def test_one_gradient_step_lowers_the_loss_on_the_batch(build, x: torch.Tensor) -> None:
    model = build().train()
    if any(isinstance(m, nn.Dropout) for m in model.modules()):
        model.eval()  # dropout would make the two losses incomparable; on the CPU gradients still flow
    assert_one_step_lowers_the_loss(model, x, torch.tensor([0, 1, 2, 3]))


@pytest.mark.parametrize(
    "build",
    [
        lambda: TCN(2, 3, channels=[8, 8], kernel_size=3),
        lambda: TCN(2, 3, channels=[8, 8], kernel_size=3, weight_norm=False),
        lambda: SequenceRNN(2, 8, cell="rnn", num_classes=3),
        lambda: SequenceRNN(2, 8, cell="lstm", num_classes=3),
        lambda: SequenceRNN(2, 8, cell="gru", num_classes=3),
    ],
)
def test_one_gradient_step_lowers_the_loss_of_a_sequence_model(build) -> None:
    model = build().train()
    assert_one_step_lowers_the_loss(model, torch.randn(4, 12, 2), torch.tensor([0, 1, 2, 0]))


# --------------------------------------------------------------------------------------
# Sequence models: TCN, and SequenceRNN on sequences
# --------------------------------------------------------------------------------------


def input_gradient(model: nn.Module, x: torch.Tensor, step: int) -> torch.Tensor:
    """How much the output at `step` (summed over the batch and outputs) moves with each input step.

    Returns ``(T,)``: the absolute input gradient summed over the batch and the input channels.
    """
    x = x.clone().requires_grad_(True)
    model.eval()
    out = model(x)  # (N, T, K)
    (gradient,) = torch.autograd.grad(out[:, step].sum(), x)
    return gradient.abs().sum(dim=(0, 2))


@pytest.mark.parametrize(("kernel_size", "levels"), [(2, 1), (2, 3), (3, 4), (4, 5), (8, 2)])
def test_tcn_receptive_field_formula(kernel_size: int, levels: int) -> None:
    model = TCN(2, 1, channels=[4] * levels, kernel_size=kernel_size)
    assert model.levels == levels
    assert model.receptive_field == 1 + 2 * (kernel_size - 1) * (2**levels - 1)
    # Level i is dilated by 2**i.
    assert [block.conv1.dilation[0] for block in model.blocks] == [2**i for i in range(levels)]


@pytest.mark.parametrize(("kernel_size", "levels"), [(2, 3), (3, 2), (4, 3)])
@pytest.mark.parametrize("weight_norm", [True, False])
def test_tcn_is_causal_and_sees_exactly_its_receptive_field(
    kernel_size: int, levels: int, weight_norm: bool
) -> None:
    model = TCN(
        3, 2, channels=[6] * levels, kernel_size=kernel_size, weight_norm=weight_norm, outputs="every_step"
    )
    field = model.receptive_field
    length = field + 10
    x = torch.randn(8, length, 3)
    step = length - 3
    reach = input_gradient(model, x, step)
    # Causal: nothing after `step` matters. Exactly the `field` steps ending at `step` do.
    assert torch.all(reach[step + 1 :] == 0)
    assert torch.all(reach[step - field + 1 : step + 1] > 0)
    assert torch.all(reach[: step - field + 1] == 0)
    # Near the start the window is cut by the zero padding: step 4 sees steps 0..4 only.
    early = input_gradient(model, x, 4)
    assert torch.all(early[:5] > 0) and torch.all(early[5:] == 0)


def test_sequence_rnn_is_causal_and_reaches_back_to_the_start() -> None:
    model = SequenceRNN(3, 8, cell="gru", num_classes=2, outputs="every_step")
    reach = input_gradient(model, torch.randn(4, 20, 3), 12)
    assert torch.all(reach[13:] == 0) and torch.all(reach[:13] > 0)  # unlike a TCN, no fixed window


def test_tcn_outputs_last_or_every_step() -> None:
    x = torch.randn(4, 11, 5)
    torch.manual_seed(1)
    last = TCN(5, 3, channels=[8, 8, 6], kernel_size=3).eval()
    torch.manual_seed(1)
    every = TCN(5, 3, channels=[8, 8, 6], kernel_size=3, outputs="every_step").eval()
    with torch.no_grad():
        assert last(x).shape == (4, 3)
        assert every(x).shape == (4, 11, 3)
        # The same weights: the last step's output is the one-output model's answer.
        torch.testing.assert_close(every(x)[:, -1], last(x))


def test_tcn_blocks_have_the_papers_parts() -> None:
    model = TCN(2, 1, channels=[8, 8, 16], kernel_size=3, dropout=0.1)
    first, second, third = model.blocks
    # A 1x1 convolution on the residual path only where the number of channels changes.
    assert isinstance(first.shortcut, nn.Conv1d) and first.shortcut.kernel_size == (1,)
    assert isinstance(second.shortcut, nn.Identity)
    assert isinstance(third.shortcut, nn.Conv1d) and third.shortcut.out_channels == 16
    assert first.dropout.p == 0.1
    # Weight norm: the weight is g * v / ||v||, stored as two parameters.
    assert nn.utils.parametrize.is_parametrized(first.conv1, "weight")
    plain = TCN(2, 1, channels=[8], weight_norm=False)
    assert not nn.utils.parametrize.is_parametrized(plain.blocks[0].conv1)


def test_causal_conv1d_pads_on_the_left_only() -> None:
    conv = CausalConv1d(1, 1, kernel_size=3, dilation=2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[1.0, 10.0, 100.0]]]))
        conv.bias.zero_()
    x = torch.arange(1.0, 8.0).view(1, 1, 7)
    out = conv(x)
    assert out.shape == (1, 1, 7)
    # out[t] = 1 * x[t - 4] + 10 * x[t - 2] + 100 * x[t], with zeros before the start.
    assert out[0, 0, 6].item() == 3 + 10 * 5 + 100 * 7
    assert out[0, 0, 0].item() == 100 * 1


def tcn_parameters(input_size: int, output_size: int, channels: list[int], k: int) -> int:
    """Parameters of a weight-normed TCN, counted by hand: per convolution C_in * C_out * k weights,
    C_out biases and C_out weight-norm gains; a 1x1 shortcut where the width changes; the head."""
    total, width = 0, input_size
    for c in channels:
        total += (width * c * k + 2 * c) + (c * c * k + 2 * c)
        if width != c:
            total += width * c + c
        width = c
    return total + width * output_size + output_size


@pytest.mark.parametrize(
    ("input_size", "output_size", "channels", "k"),
    [(2, 1, [24] * 6, 3), (10, 10, [24] * 4, 3), (1, 10, [32] * 4, 8), (3, 2, [4, 8], 2)],
)
def test_tcn_parameter_count(input_size: int, output_size: int, channels: list[int], k: int) -> None:
    model = TCN(input_size, output_size, channels=channels, kernel_size=k)
    assert n_params(model) == tcn_parameters(input_size, output_size, channels, k)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: TCN(2, 1, channels=[]), "channels"),
        (lambda: TCN(2, 1, channels=[8, 0]), "channels"),
        (lambda: TCN(2, 1, kernel_size=1), "kernel_size"),
        (lambda: TCN(2, 1, outputs="all"), "outputs must be"),
    ],
)
def test_tcn_rejects_bad_arguments(build, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


def test_tcn_says_which_input_it_needs() -> None:
    model = TCN(2, 1)
    with pytest.raises(ValueError, match=r"\(N, T, input_size=2\).*\(4, 1, 28, 28\)"):
        model(torch.randn(4, 1, 28, 28))
    with pytest.raises(ValueError, match=r"input_size=2.*\(4, 10, 3\)"):
        model(torch.randn(4, 10, 3))
