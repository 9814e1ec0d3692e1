"""Tests for course_utils.diagrams, and for course_tools.figures, which draws them into images/.

The texts of a figure are read from its artists (``fig.findobj(Text)``), so a number in a
diagram is checked against the number the code computes, never against a typed copy.

Every diagram is drawn in English and, with the table ``course_tools.figures.ZH``, in Chinese. For
the Chinese ones the tests check what a reader sees: each character of each label has a glyph in
the font matplotlib picks for it (``findfont`` on the label's font properties), and drawing the
figure raises no "Glyph … missing from font" warning, so no label comes out as empty boxes. The
files in ``images/`` and ``images/zh/`` must stay the bytes that are committed.
"""

import re
import string
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import pytest
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import findfont
from matplotlib.ft2font import FT2Font
from matplotlib.text import Text
from torch import nn

from course_tools import figures
from course_tools.figures import EDITIONS, FIGURES, ZH, draw, main, write_figures
from course_utils.diagrams import (
    conv_output_size,
    draw_lenet5_architecture,
    draw_residual_block,
    draw_sliding_window,
    draw_unrolled_rnn,
    window_cells,
)
from course_utils.evaluation import count_parameters
from course_utils.models import BasicBlock, LeNet5
from course_utils.plots import new_figure

matplotlib.use("Agg")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGES = Path(__file__).resolve().parent.parent / "images"
LANGUAGES = ["en", "zh"]
CJK = re.compile(r"[\u4e00-\u9fff]")


def texts(fig: Figure) -> str:
    """Every text drawn in the figure (titles, labels, annotations), joined by newlines."""
    return "\n".join(t.get_text() for t in fig.findobj(Text))


def fields(template: str) -> set[str]:
    """The names a ``str.format`` template fills in: ``"{n}×{n} input{x}"`` -> ``{"n", "x"}``."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


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
    assert r"\lfloor (5 + 2 - 2 - 1)\,/\,2 \rfloor + 1 = 3$" in shown
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
    fig = draw_unrolled_rnn(image)
    shown = texts(fig)
    for needed in ("$W_{xh}$", "$W_{hh}$", "$h_0 = 0$", "$x_{1}$ = row 1", "$x_{T}$ = row 28", "10 logits"):
        assert needed in shown, needed
    assert "28×28 image = 28 steps" in shown
    assert "one $W_{xh}$, one $W_{hh}$, one $b$ for all 28 steps" in shown
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
    assert "5×5 conv, pad 2" in shown and "max-pool 2×2\nstride 2" in shown


def test_lenet5_diagram_follows_a_changed_model():
    model = LeNet5(num_classes=7)
    model.pool2 = nn.AvgPool2d(2, 2)
    shown = texts(draw_lenet5_architecture(model))
    assert "84 → 7" in shown and f"{count_parameters(model.fc3):,} params" in shown
    assert "avg-pool 2×2" in shown and "max-pool 2×2" in shown


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


def test_labels_replace_the_english_they_name_and_leave_the_rest():
    shown = texts(draw_sliding_window(labels={"output": "Ausgabe"}))
    assert "Ausgabe" in shown and "padded input (grey: padding = 0)" in shown
    assert "output (0, 0) reads rows -1…1" in shown  # a longer label is a key of its own


def test_residual_block_diagram_in_chinese_counts_the_same_blocks():
    shown = texts(draw_residual_block(channels=16, size=32, labels=ZH))
    plain = count_parameters(BasicBlock(16, 16, shortcut=None))
    option_b = BasicBlock(16, 32, stride=2, shortcut="B")
    assert f"普通块\n{plain:,} 个参数" in shown
    assert f"基本残差块\n{plain:,} 个参数" in shown
    assert f"方案 B\n{count_parameters(option_b):,} 个参数" in shown
    assert "恒等映射\n$x$\n无参数" in shown and "+16 个全零通道\n无参数" in shown
    assert "32@16×16 = ReLU$(F(x) + $捷径$(x))$" in shown and "x$: 16@32×32" in shown


def test_the_other_diagrams_in_chinese_show_the_same_numbers():
    sliding = texts(draw_sliding_window(input_size=5, kernel_size=3, padding=1, stride=2, labels=ZH))
    assert "5×5 输入" in sliding and "3×3 输出" in sliding and "步幅 2" in sliding
    assert "输出 (2, 2) 读取行 3…5、列 3…5" in sliding
    rnn = texts(draw_unrolled_rnn(labels=ZH))
    assert "$x_{1}$ = 第 1 行" in rnn and "$x_{T}$ = 第 28 行" in rnn and "$W_{xh}$" in rnn
    model = LeNet5()
    lenet = texts(draw_lenet5_architecture(model, labels=ZH))
    assert f"共 {count_parameters(model):,} 个参数" in lenet
    assert f"{count_parameters(model.conv1):,} 个参数" in lenet and "6@14×14" in lenet


def test_every_chinese_label_is_shown_and_fills_in_the_same_values():
    """No entry of ZH is stale: each one, marked, appears in a drawing (the default figures, plus
    the variants that show the dilation and average pooling)."""
    marked = {english: f"<{i}>{chinese}" for i, (english, chinese) in enumerate(ZH.items())}
    lenet = LeNet5()
    lenet.pool1 = nn.AvgPool2d(2, 2)
    shown = "\n".join(
        [
            *(texts(draw_figure(labels=marked)) for draw_figure in FIGURES.values()),
            texts(draw_sliding_window(7, 3, 0, 1, dilation=2, labels=marked)),
            texts(draw_lenet5_architecture(lenet, labels=marked)),
        ]
    )
    for i, (english, chinese) in enumerate(ZH.items()):
        assert f"<{i}>" in shown, english
        assert fields(chinese) == fields(english), english  # the same numbers and formulas


@pytest.mark.parametrize("name", sorted(FIGURES))
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_figure_draws_in_both_languages_without_missing_glyphs(name, language):
    fig = draw(name, language)
    assert isinstance(fig, Figure)
    FigureCanvasAgg(fig)
    with warnings.catch_warnings():
        # "Glyph 21367 (\N{CJK UNIFIED IDEOGRAPH-5377}) missing from font(s) DejaVu Sans." and
        # mathtext's "Font 'default' does not have a glyph for ..." are warnings: make them fail.
        warnings.simplefilter("error")
        fig.canvas.draw()
    assert bool(CJK.search(texts(fig))) == (language == "zh")


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_chinese_labels_have_a_glyph_for_every_character_in_the_font_matplotlib_uses(name):
    fig = draw(name, "zh")
    fonts_by_path: dict[str, FT2Font] = {}
    checked = 0
    for text in fig.findobj(Text):
        path = findfont(text.get_fontproperties())
        font = fonts_by_path.setdefault(path, FT2Font(path))
        missing = [ch for ch in text.get_text() if ch != "\n" and font.get_char_index(ord(ch)) == 0]
        assert not missing, f"{text.get_text()!r}: no glyph for {missing} in {path}"
        checked += bool(CJK.search(text.get_text()))
    assert checked > 0, "the Chinese figure has no Chinese text"


def test_the_glyph_checks_catch_chinese_drawn_in_matplotlibs_default_font():
    """Without the CJK font the same figure draws empty boxes, and the warning says so."""
    fig = draw("residual_block.png", "zh")
    for text in fig.findobj(Text):
        text.set_fontfamily("DejaVu Sans")  # matplotlib's own font: Latin, Greek, Cyrillic, no Chinese
    FigureCanvasAgg(fig)
    with pytest.warns(UserWarning, match="missing from font"):
        fig.canvas.draw()
    assert FT2Font(findfont("DejaVu Sans")).get_char_index(ord("块")) == 0


def test_chinese_figures_translate_every_word():
    """What stays Latin in a Chinese figure is names, abbreviations and formulas, not English words."""
    names = {"LeNet", "LeCun", "et", "al", "He", "CIFAR", "RNN", "BPTT", "ReLU", "BN", "tanh", "F", "x"}
    names |= {"A", "B"}  # the paper's shortcut options
    names |= {name for name, _ in LeNet5().named_children()}  # conv1, pool1, fc1, ...
    for name in FIGURES:
        prose = re.sub(r"\$[^$]*\$", "", texts(draw(name, "zh")))  # formulas aside
        assert set(re.findall(r"[A-Za-z][A-Za-z0-9]*", prose)) <= names, name


def test_an_unknown_language_is_refused(tmp_path):
    with pytest.raises(ValueError, match="language must be one of 'en', 'zh'.*got 'fr'"):
        draw("sliding_window.png", "fr")
    with pytest.raises(ValueError, match="language"):
        write_figures(tmp_path / "fr", "fr")
    assert not (tmp_path / "fr").exists()


def test_a_missing_cjk_font_is_a_clear_error_not_empty_boxes(monkeypatch):
    monkeypatch.setattr(figures, "CJK_FONT_FILE", "fonts/NoSuchFont.otf")
    figures.cjk_font_family.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="pip install mplfonts"):
            draw("sliding_window.png", "zh")
    finally:
        figures.cjk_font_family.cache_clear()  # the next test registers the real font again
    draw("sliding_window.png", "en")  # English figures need no extra font


def test_the_student_package_draws_without_the_tools_or_the_cjk_font():
    """course_tools is not installed by pip, and the 16 MB font is read only for the Chinese files."""
    code = (
        "import sys; from course_utils.diagrams import draw_sliding_window; draw_sliding_window(); "
        "print('course_tools' in sys.modules, 'mplfonts' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_main_writes_both_editions_as_small_deterministic_png(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    assert {language: folder for language, (folder, _) in EDITIONS.items()} == {"en": ".", "zh": "zh"}
    names = sorted(
        ["sliding_window.png", "unrolled_rnn.png", "lenet5_architecture.png", "residual_block.png"]
    )
    assert sorted(path.name for path in tmp_path.glob("*.png")) == sorted(FIGURES) == names
    assert sorted(path.name for path in (tmp_path / "zh").iterdir()) == names
    for subfolder in ("", "zh"):
        for name in names:
            data = (tmp_path / subfolder / name).read_bytes()
            assert data.startswith(PNG_SIGNATURE)
            assert len(data) < 200_000, name
            assert b"Software" not in data  # no matplotlib version: the bytes do not depend on it
            # Drawing again gives the committed bytes: the English figures are unchanged, and the
            # Chinese ones in images/zh are up to date (`make images` writes both).
            assert data == (IMAGES / subfolder / name).read_bytes(), f"{subfolder}/{name} changed"
    assert "wrote" in capsys.readouterr().out
