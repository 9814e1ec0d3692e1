"""Tests for course_utils.diagrams: each diagram says what the real models and formulas say.

The texts of a figure are read from its artists (``fig.findobj(Text)``), so a number in a
diagram is checked against the number the code computes, never against a typed copy.
"""

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.text import Text

from course_utils.diagrams import (
    DIAGRAMS,
    conv_output_size,
    draw_lenet5_architecture,
    draw_residual_block,
    draw_sliding_window,
    draw_unrolled_rnn,
    main,
    window_cells,
)
from course_utils.models import BasicBlock, LeNet5
from course_utils.plots import new_figure
from course_utils.summary import count_parameters

matplotlib.use("Agg")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def texts(fig: Figure) -> str:
    """Every text drawn in the figure (titles, labels, annotations), joined by newlines."""
    return "\n".join(t.get_text() for t in fig.findobj(Text))


@pytest.mark.parametrize(
    ("n", "k", "p", "s", "d"),
    [(5, 3, 1, 2, 1), (28, 5, 2, 1, 1), (28, 5, 0, 1, 1), (32, 3, 1, 2, 1), (7, 3, 0, 1, 2), (6, 4, 1, 2, 1)],
)
def test_conv_output_size_matches_pytorch(n, k, p, s, d):
    out = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), padding=p, stride=s, dilation=d)
    assert conv_output_size(n, k, p, s, d) == out.shape[-1]


@pytest.mark.parametrize(("k", "p", "s", "d"), [(3, 1, 2, 1), (3, 0, 1, 2), (2, 0, 2, 1)])
def test_window_cells_are_the_inputs_each_output_depends_on(k, p, s, d):
    n = 6
    x = torch.randn(1, 1, n, n, requires_grad=True)
    out = F.conv2d(x, torch.ones(1, 1, k, k), padding=p, stride=s, dilation=d)
    for row in range(out.shape[2]):
        for col in range(out.shape[3]):
            (grad,) = torch.autograd.grad(out[0, 0, row, col], x, retain_graph=True)
            touched = {tuple(ij) for ij in grad[0, 0].nonzero().tolist()}
            inside = {(r, c) for r, c in window_cells(row, col, k, p, s, d) if 0 <= r < n and 0 <= c < n}
            assert touched == inside


def test_sliding_window_draws_one_panel_per_position_with_the_formula():
    fig = draw_sliding_window(input_size=5, kernel_size=3, padding=1, stride=2)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    shown = texts(fig)
    assert "5×5 input" in shown and "3×3 output" in shown and "stride 2" in shown
    assert "output (0, 0) reads rows -1…1, cols -1…1" in shown
    assert "output (2, 2) reads rows 3…5, cols 3…5" in shown


def test_sliding_window_custom_positions_and_invalid_settings():
    fig = draw_sliding_window(
        input_size=7, kernel_size=3, padding=0, stride=1, dilation=2, positions=[(1, 2)]
    )
    assert len(fig.axes) == 1
    assert "dilation 2" in texts(fig) and "output (1, 2) reads rows 1…5, cols 2…6" in texts(fig)
    with pytest.raises(ValueError, match="does not fit"):
        draw_sliding_window(input_size=2, kernel_size=5, padding=0)
    with pytest.raises(ValueError, match="outside"):
        draw_sliding_window(positions=[(3, 0)])


def test_unrolled_rnn_names_the_shared_weights_and_reads_the_given_image():
    image = torch.zeros(28, 28, dtype=torch.uint8)
    image[10, :] = 255
    fig = draw_unrolled_rnn(image, shown_steps=3)
    shown = texts(fig)
    for needed in ("$W_{xh}$", "$W_{hh}$", "$h_0 = 0$", "$x_{1}$ = row 1", "$x_{T}$ = row 28", "10 logits"):
        assert needed in shown, needed
    assert "28×28 image = 28 steps" in shown
    # The image axes shows the image, scaled to [0, 1].
    drawn = fig.axes[0].images[0].get_array()
    assert drawn.shape == (28, 28) and drawn[10].min() == 1.0 and drawn[0].max() == 0.0
    with pytest.raises(ValueError, match="grayscale"):
        draw_unrolled_rnn(torch.zeros(3, 28, 28))


def test_lenet5_diagram_shows_the_models_shapes_and_parameter_counts():
    model = LeNet5()
    shown = texts(draw_lenet5_architecture(model))
    for shape in ("1@28×28", "6@28×28", "6@14×14", "16@10×10", "16@5×5", "400", "120", "84"):
        assert shape in shown, shape
    for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        assert f"{count_parameters(getattr(model, name)):,} params" in shown, name
    assert f"{count_parameters(model):,} parameters" in shown


def test_lenet5_diagram_follows_a_changed_model():
    model = LeNet5(num_classes=7)
    shown = texts(draw_lenet5_architecture(model))
    assert "84 → 7" in shown and f"{count_parameters(model.fc3):,} params" in shown


def test_residual_block_diagram_counts_the_real_blocks():
    shown = texts(draw_residual_block(channels=16, size=32))
    plain = count_parameters(BasicBlock(16, 16, shortcut=None))
    option_a = count_parameters(BasicBlock(16, 32, stride=2, shortcut="A"))
    option_b = BasicBlock(16, 32, stride=2, shortcut="B")
    assert f"plain block\n{plain:,} params" in shown
    assert f"basic residual block\n{plain:,} params" in shown  # the identity adds nothing
    assert f"option A\n{option_a:,} params" in shown
    assert f"option B\n{count_parameters(option_b):,} params" in shown
    assert f"{count_parameters(option_b.shortcut):,} params" in shown
    assert "32@16×16" in shown and "x$: 16@32×32" in shown


def test_new_figure_renders_as_png_without_pyplot():
    fig = new_figure((2, 1))
    fig.subplots().plot([0, 1])
    assert fig._repr_png_().startswith(PNG_SIGNATURE)
    assert repr(fig).startswith("<Figure size 200x100 with 1 Axes>")


def test_main_writes_the_four_files_as_small_png(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    written = sorted(path.name for path in tmp_path.iterdir())
    assert (
        written
        == sorted(DIAGRAMS)
        == sorted(["sliding_window.png", "unrolled_rnn.png", "lenet5_architecture.png", "residual_block.png"])
    )
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) < 200_000, path.name
        assert b"Software" not in data  # no matplotlib version: the bytes do not depend on it
    assert "wrote" in capsys.readouterr().out
