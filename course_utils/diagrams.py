"""The course's diagrams: a convolution window, an unrolled RNN, LeNet-5 and the residual block.

Each ``draw_*`` function returns a :class:`matplotlib.figure.Figure`; in a notebook the
figure shows as the cell's value, in a script you save it. Numbers in the diagrams are
computed, never typed: the window positions follow the output-size formula, and the
shapes and parameter counts of LeNet-5 and the residual blocks come from running the real
models of :mod:`course_utils.models` (:func:`course_utils.summary.model_summary` and
:func:`course_utils.summary.count_parameters`). Change a model and its diagram follows.

Every diagram is drawn in English (``language="en"``, the default) or in Chinese
(``language="zh"``) by the same function: the words come from one table per language,
:data:`LABELS`, and the formulas, numbers and shapes are the same in both. Chinese figures
are set in the CJK font of :mod:`course_utils.fonts` (shipped by the pip package
``mplfonts``), so that they render on a machine without Chinese fonts; English figures use
matplotlib's default font.

``python -m course_utils.diagrams images`` (``make images``) writes all of them as PNG
files, the English ones into the folder ``images`` and the Chinese ones into ``images/zh``,
under the same names:

* ``sliding_window.png``: :func:`draw_sliding_window`
* ``unrolled_rnn.png``: :func:`draw_unrolled_rnn`
* ``lenet5_architecture.png``: :func:`draw_lenet5_architecture`
* ``residual_block.png``: :func:`draw_residual_block`

The files are the same bytes on every run (no date or version in their metadata).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle
from matplotlib.text import Text
from torch import nn

from course_utils.fonts import cjk_font_family
from course_utils.models import BasicBlock, LeNet5
from course_utils.plots import new_figure
from course_utils.summary import count_parameters, model_summary

__all__ = [
    "DIAGRAMS",
    "EDITION_FOLDERS",
    "LABELS",
    "conv_output_size",
    "draw_lenet5_architecture",
    "draw_residual_block",
    "draw_sliding_window",
    "draw_unrolled_rnn",
    "main",
    "window_cells",
    "write_diagrams",
]

DPI = 150

# One palette for every diagram, so that a colour means the same thing everywhere.
INK = "#222222"
MUTED = "#777777"
PAD_FILL = "#e6e6e6"
CONV_FILL = "#cfe2f3"
POOL_FILL = "#fde9c9"
DENSE_FILL = "#d9ead3"
NORM_FILL = "#ead1dc"
ACT_FILL = "#fff2cc"
SHORTCUT = "#c0392b"
HIGHLIGHT = "#1f77b4"


# Every word the diagrams draw, in each language. A value is a template for ``str.format``: the
# numbers, shapes and formulas ({formula}) are filled in by the code, identical in both languages
# (a formula written in a template doubles its braces: $W_{{xh}}$ draws $W_{xh}$). The Chinese
# terms are those of the course glossary (notebook 01, "Glossary (术语表)").
LABELS: dict[str, dict[str, str]] = {
    "en": {
        # draw_sliding_window
        "window_title": (
            "A {k}×{k} window on a {n}×{n} input, padding {p}, stride {s}{dilation} → {out}×{out} output\n"
            "output size {formula}"
        ),
        "window_dilation": ", dilation {d}",
        "window_reads": "output ({row}, {col}) reads rows {top}…{bottom}, cols {left}…{right}",
        "padded_input": "padded input (grey: padding = 0)",
        "output": "output",
        # draw_unrolled_rnn
        "rnn_title": "An RNN reads the image row by row: {formula}   (the same weights at every step)",
        "rnn_image": "{steps}×{width} image = {steps} steps\nof {width} pixels",
        "rnn_input_row": "{x} = row {row}",
        "rnn_cell": "RNN cell\ntanh",
        "rnn_classifier": "fc\n10 logits",
        "rnn_shared_weights": (
            "shared weights: one $W_{{xh}}$, one $W_{{hh}}$, one $b$ for all {steps} steps; "
            "training backpropagates through time (BPTT)"
        ),
        # draw_lenet5_architecture
        "lenet_title": "LeNet-5 (LeCun et al., 1998) in its modern form: {total:,} parameters",
        "input": "input",
        "image": "image",
        "flatten": "flatten",
        "reshape": "reshape",
        "conv": "{kernel} conv{padding}",
        "conv_padding": ", pad {p}",
        "max_pool": "max-pool {k}×{k}\nstride {s}",
        "avg_pool": "avg-pool {k}×{k}\nstride {s}",
        "linear": "linear\n{inputs} → {outputs}",
        "logits": "(logits)",
        "params": "{count:,} params",
        "no_params": "no params",
        # draw_residual_block
        "residual_title": (
            "Residual learning (He et al., 2016): the layers learn F(x), the shortcut carries x to the "
            "addition\n(BN: batch normalisation; option A is the paper's choice for CIFAR-10, section 4.2)"
        ),
        "plain_block": "plain block",
        "residual_block": "basic residual block",
        "shape_change": "shape changes, option {option}",
        "conv3x3": "conv 3×3, {channels}",
        "conv_stride": ", stride {stride}",
        "identity_shortcut": "identity\n$x$\n{params}",
        "zero_channel_shortcut": "every 2nd pixel,\n+{channels} zero channels\n{params}",
        "projection_shortcut": "1×1 conv, stride {stride}\n+ BN\n{params}",
        "shortcut": "shortcut",
    },
    "zh": {
        "window_title": (
            "{k}×{k} 窗口在 {n}×{n} 输入上滑动：填充 {p}，步长 {s}{dilation} → {out}×{out} 输出\n"
            "输出尺寸 {formula}"
        ),
        "window_dilation": "，空洞 {d}",
        "window_reads": "输出 ({row}, {col}) 读取行 {top}…{bottom}、列 {left}…{right}",
        "padded_input": "填充后的输入（灰色：填充值 0）",
        "output": "输出",
        "rnn_title": "RNN 逐行读取图像：{formula}   （每个时间步使用同一组权重）",
        "rnn_image": "{steps}×{width} 图像 = {steps} 个时间步，\n每步 {width} 个像素",
        "rnn_input_row": "{x} = 第 {row} 行",
        "rnn_cell": "循环单元\ntanh",
        "rnn_classifier": "全连接层\n10 个输出",
        "rnn_shared_weights": (
            "权值共享：全部 {steps} 个时间步共用一个 $W_{{xh}}$、一个 $W_{{hh}}$ 和一个 $b$；"
            "训练时随时间反向传播（BPTT）"
        ),
        "lenet_title": "现代形式的 LeNet-5（LeCun et al., 1998）：共 {total:,} 个参数",
        "input": "输入",
        "image": "图像",
        "flatten": "展平",
        "reshape": "改变形状",
        "conv": "{kernel} 卷积{padding}",
        "conv_padding": "，填充 {p}",
        "max_pool": "最大池化 {k}×{k}\n步长 {s}",
        "avg_pool": "平均池化 {k}×{k}\n步长 {s}",
        "linear": "全连接层\n{inputs} → {outputs}",
        "logits": "（未归一化的分数）",
        "params": "{count:,} 个参数",
        "no_params": "无参数",
        "residual_title": (
            "残差学习（He et al., 2016）：各层学习 F(x)，捷径连接把 x 送到加法处\n"
            "（BN：批归一化；方案 A 是论文在 CIFAR-10 上的选择，见第 4.2 节）"
        ),
        "plain_block": "普通块",
        "residual_block": "基本残差块",
        "shape_change": "形状改变，方案 {option}",
        "conv3x3": "3×3 卷积，{channels}",
        "conv_stride": "，步长 {stride}",
        "identity_shortcut": "恒等映射\n$x$\n{params}",
        "zero_channel_shortcut": "隔行隔列取样，\n+{channels} 个全零通道\n{params}",
        "projection_shortcut": "1×1 卷积，步长 {stride}\n+ BN\n{params}",
        "shortcut": "捷径",
    },
}


# --- helpers ------------------------------------------------------------------------------------


def _labels(language: str) -> dict[str, str]:
    """The table of words for ``language``; a clear error for a language the diagrams do not speak."""
    if language not in LABELS:
        raise ValueError(
            f"language must be one of {', '.join(map(repr, LABELS))} (English, Chinese), got {language!r}"
        )
    return LABELS[language]


def _set_language_font(fig: Figure, language: str) -> Figure:
    """Set every text of a Chinese figure in the CJK font; leave an English figure as it is.

    Done once the figure is drawn, so that the drawing code is the same for every language.
    English figures keep matplotlib's default font, so their files do not change.
    """
    if language == "zh":
        family = cjk_font_family()
        for text in fig.findobj(Text):
            text.set_fontfamily(family)
            # The package ships the regular weight only: ask for it, rather than have matplotlib
            # log "Failed to find font weight bold" and fall back to it for every bold label.
            text.set_fontweight("normal")
    return fig


def _box(
    ax: Axes,
    center: tuple[float, float],
    size: tuple[float, float],
    text: str,
    *,
    fill: str = "white",
    fontsize: float = 9,
    edge: str = INK,
) -> None:
    """A rounded box with centred text."""
    (x, y), (w, h) = center, size
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor=fill,
            edgecolor=edge,
            linewidth=1.1,
            zorder=3,  # above lines drawn with ax.plot (zorder 2) that run behind the box
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=INK, zorder=4)


def _arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    color: str = INK,
    lw: float = 1.2,
    style: str = "-|>",
    connection: str = "arc3",
) -> None:
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops={
            "arrowstyle": style,
            "color": color,
            "lw": lw,
            "shrinkA": 0,
            "shrinkB": 0,
            "mutation_scale": 12,
            "connectionstyle": connection,
        },
    )


def _blank_axes(ax: Axes, xlim: tuple[float, float], ylim: tuple[float, float]) -> None:
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.set_axis_off()


def _shape_label(shape: Sequence[int]) -> str:
    """``(6, 28, 28)`` -> ``"6@28×28"`` (maps @ height × width); ``(400,)`` -> ``"400"``."""
    if len(shape) == 3:
        return f"{shape[0]}@{shape[1]}×{shape[2]}"
    return "×".join(str(s) for s in shape)


def _params_label(count: int, labels: dict[str, str]) -> str:
    return labels["params"].format(count=count) if count else labels["no_params"]


# --- 1. the sliding window of a convolution -----------------------------------------------------


def conv_output_size(n: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    """Output length of a convolution (or pooling) along one axis.

    ``floor((n + 2p - d(k - 1) - 1) / s) + 1``: the window spans ``d(k - 1) + 1`` cells and
    starts at every ``s``-th position of the padded input where it still fits.

    Args:
        n: input length (height or width).
        kernel_size, padding, stride, dilation: ``k``, ``p``, ``s``, ``d`` as in ``nn.Conv2d``.

    Returns:
        The output length; 0 or less when the window does not fit even once.
    """
    return (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def window_cells(
    row: int, col: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1
) -> list[tuple[int, int]]:
    """The input cells that output cell ``(row, col)`` reads, in input coordinates.

    Coordinates below 0 or at/after the input size fall in the zero padding. The window's
    top-left corner sits at ``(row * s - p, col * s - p)``; it reads ``k × k`` cells spaced
    ``d`` apart.

    Returns:
        ``[(input_row, input_col), ...]``, ``k * k`` of them, row by row.
    """
    top, left = row * stride - padding, col * stride - padding
    return [(top + a * dilation, left + b * dilation) for a in range(kernel_size) for b in range(kernel_size)]


def draw_sliding_window(
    input_size: int = 5,
    kernel_size: int = 3,
    padding: int = 1,
    stride: int = 2,
    dilation: int = 1,
    positions: Sequence[tuple[int, int]] | None = None,
    *,
    language: str = "en",
) -> Figure:
    """Draw a convolution window sliding over a padded square input, one panel per output cell.

    Each panel shows the padded input (padding cells grey, holding 0; input cells numbered
    1, 2, ... row by row), the cells the window reads for one output cell (blue), and the
    output grid with that cell marked. Cells computed in earlier panels are shaded lightly.

    Args:
        input_size: height = width of the input, ``n``.
        kernel_size, padding, stride, dilation: as in ``nn.Conv2d``.
        positions: the output cells to show, ``(row, col)``; by default the first two of the
            first row, the first of the second row and the last one.
        language: ``"en"`` (English) or ``"zh"`` (Chinese), the language of the labels.

    Returns:
        The figure: one axes per position, the output-size formula in the title.

    Raises:
        ValueError: the window does not fit the padded input, a position lies outside
            the output, or the language is not ``"en"`` or ``"zh"``.
        FileNotFoundError: ``language="zh"`` and the CJK font is not installed
            (see :func:`course_utils.fonts.cjk_font_path`).
    """
    labels = _labels(language)
    out = conv_output_size(input_size, kernel_size, padding, stride, dilation)
    if min(input_size, kernel_size, stride, dilation) < 1 or padding < 0 or out < 1:
        raise ValueError(
            f"a {kernel_size}×{kernel_size} window (dilation {dilation}) does not fit a "
            f"{input_size}×{input_size} input with padding {padding}"
        )
    if positions is None:
        positions = list(
            dict.fromkeys([(0, 0), (0, min(1, out - 1)), (min(1, out - 1), 0), (out - 1, out - 1)])
        )
    for row, col in positions:
        if not (0 <= row < out and 0 <= col < out):
            raise ValueError(f"position {(row, col)} is outside the {out}×{out} output")

    padded = input_size + 2 * padding
    gap = 1.2  # between the input grid and the output grid
    width = padded + gap + out
    fig = new_figure((3.4 * len(positions), 3.7), layout=None)
    axes = fig.subplots(1, len(positions), squeeze=False)[0]
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.8, wspace=0.08)
    span = dilation * (kernel_size - 1) + 1
    formula = (
        r"$= \lfloor (n + 2p - d(k-1) - 1)\,/\,s \rfloor + 1 = "
        rf"\lfloor ({input_size} + {2 * padding} - {dilation * (kernel_size - 1)} - 1)\,/\,{stride} \rfloor"
        rf" + 1 = {out}$"
    )
    fig.suptitle(
        labels["window_title"].format(
            k=kernel_size,
            n=input_size,
            p=padding,
            s=stride,
            dilation=labels["window_dilation"].format(d=dilation) if dilation > 1 else "",
            out=out,
            formula=formula,
        ),
        fontsize=11,
    )

    for index, (ax, (row, col)) in enumerate(zip(axes, positions)):
        _blank_axes(ax, (-0.3, width + 0.3), (-1.6, padded + 0.6))
        read = set(window_cells(row, col, kernel_size, padding, stride, dilation))
        # y grows upwards in the axes; row 0 is drawn at the top.
        for r in range(-padding, input_size + padding):
            for c in range(-padding, input_size + padding):
                x, y = c + padding, padded - 1 - (r + padding)
                inside = 0 <= r < input_size and 0 <= c < input_size
                fill = HIGHLIGHT if (r, c) in read else ("white" if inside else PAD_FILL)
                alpha = 0.55 if (r, c) in read else 1.0
                ax.add_patch(Rectangle((x, y), 1, 1, facecolor=fill, alpha=alpha, edgecolor=MUTED, lw=0.6))
                label = str(r * input_size + c + 1) if inside else "0"
                ax.text(x + 0.5, y + 0.5, label, ha="center", va="center", fontsize=7, color=INK)
        # The input proper, framed; then the window's outline (it spans more cells when dilated).
        ax.add_patch(Rectangle((padding, padding), input_size, input_size, fill=False, edgecolor=INK, lw=1.4))
        top, left = row * stride, col * stride  # in padded coordinates
        ax.add_patch(
            Rectangle((left, padded - top - span), span, span, fill=False, edgecolor=HIGHLIGHT, lw=2.2)
        )
        # The output grid, vertically centred, with this cell highlighted.
        x0, y0 = padded + gap, (padded - out) / 2
        done = set(positions[:index])
        for r in range(out):
            for c in range(out):
                if (r, c) == (row, col):
                    fill, alpha = HIGHLIGHT, 0.55
                elif (r, c) in done:
                    fill, alpha = HIGHLIGHT, 0.15
                else:
                    fill, alpha = "white", 1.0
                ax.add_patch(
                    Rectangle(
                        (x0 + c, y0 + out - 1 - r), 1, 1, facecolor=fill, alpha=alpha, edgecolor=INK, lw=0.8
                    )
                )
        rows = sorted({r for r, _ in read})
        cols = sorted({c for _, c in read})
        ax.set_title(
            labels["window_reads"].format(
                row=row, col=col, top=rows[0], bottom=rows[-1], left=cols[0], right=cols[-1]
            ),
            fontsize=9,
        )
        ax.text(padded / 2, -0.8, labels["padded_input"], ha="center", fontsize=8, color=MUTED)
        ax.text(x0 + out / 2, -0.8, labels["output"], ha="center", fontsize=8, color=MUTED)
    return _set_language_font(fig, language)


# --- 2. a recurrent network unrolled over the rows of an image ------------------------------------


def _synthetic_digit(size: int = 28) -> np.ndarray:
    """A hand-made "7" in [0, 1], ``(size, size)``: strokes drawn as distance fields, no data needed."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float) * (28.0 / size)

    def stroke(y0: float, x0: float, y1: float, x1: float) -> np.ndarray:
        # Distance from every pixel to the segment (y0, x0)-(y1, x1), turned into ink.
        dy, dx = y1 - y0, x1 - x0
        t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / (dy * dy + dx * dx), 0.0, 1.0)
        distance = np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx))
        return np.clip(1.6 - distance / 1.1, 0.0, 1.0)

    return np.maximum(stroke(7, 7, 7, 20), stroke(7, 20, 23, 12))


def draw_unrolled_rnn(
    image: np.ndarray | torch.Tensor | None = None, shown_steps: int = 3, *, language: str = "en"
) -> Figure:
    """Draw an RNN cell unrolled over time, reading an image one row per time step.

    Left: the image; each shown row is framed in the colour of its time step. Right: the
    cell repeated at steps ``t = 1, 2, …`` and ``T`` (the last row), with the input
    ``x_t`` (the row's pixels) entering through ``W_xh``, the hidden state ``h_{t-1}``
    entering through ``W_hh``, and the last hidden state ``h_T`` going to the classifier.
    The same weights serve every step.

    Args:
        image: ``(H, W)`` grayscale image (uint8 or float); ``T = H`` steps of ``W`` values.
            By default a hand-drawn 28×28 "7", so that the diagram needs no dataset.
        shown_steps: how many steps to draw before the "…" and the last step.
        language: ``"en"`` (English) or ``"zh"`` (Chinese), the language of the labels.

    Returns:
        The figure (one axes for the image, one for the unrolled network).

    Raises:
        ValueError: ``image`` is not 2-D or has fewer than ``shown_steps + 1`` rows, or the
            language is not ``"en"`` or ``"zh"``.
        FileNotFoundError: ``language="zh"`` and the CJK font is not installed.
    """
    labels = _labels(language)
    pixels = _synthetic_digit() if image is None else np.asarray(torch.as_tensor(image).detach().cpu(), float)
    if pixels.ndim != 2:
        raise ValueError(f"draw_unrolled_rnn expects one grayscale image (H, W), got shape {pixels.shape}")
    steps, width = pixels.shape
    if shown_steps < 1 or steps < shown_steps + 1:
        raise ValueError(f"need at least {shown_steps + 1} rows to show {shown_steps} steps and the last")
    low, high = float(pixels.min()), float(pixels.max())
    pixels = (pixels - low) / (high - low if high > low else 1.0)

    fig = new_figure((13.0, 3.9), layout=None)
    image_ax = fig.add_axes((0.01, 0.08, 0.17, 0.72))
    ax = fig.add_axes((0.2, 0.0, 0.8, 0.9))
    fig.suptitle(
        labels["rnn_title"].format(formula=r"$h_t = \tanh(W_{xh}\,x_t + W_{hh}\,h_{t-1} + b)$"),
        fontsize=12,
    )

    step_rows = [*range(shown_steps), steps - 1]  # 0-based rows drawn as time steps
    colours = ["#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#e377c2"]
    colour_of = {t: colours[i % len(colours)] for i, t in enumerate(step_rows)}
    image_ax.imshow(pixels, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    for t in step_rows:
        image_ax.add_patch(Rectangle((-0.5, t - 0.5), width, 1, fill=False, edgecolor=colour_of[t], lw=1.8))
    image_ax.set_xticks([])
    image_ax.set_yticks([])
    image_ax.set_title(labels["rnn_image"].format(steps=steps, width=width), fontsize=9)

    # The unrolled network: columns at x = 2, 5, 8 (shown steps), an ellipsis, then step T.
    spacing = 3.0
    columns = [2.0 + spacing * i for i in range(shown_steps)]
    ellipsis_x = columns[-1] + spacing * 0.85
    columns.append(ellipsis_x + spacing * 0.85)
    _blank_axes(ax, (-0.6, columns[-1] + 3.2), (-0.9, 4.9))
    cell_y, input_y, cell_size = 2.6, 0.35, (1.5, 1.0)

    ax.text(0.0, cell_y, r"$h_0 = 0$", ha="center", va="center", fontsize=11)
    previous_x = 0.45
    for t, x in zip(step_rows, columns):
        label = str(t + 1) if t < shown_steps else "T"
        # x_t: the row's pixels as a strip, framed in the step's colour.
        strip = ax.inset_axes((x - 1.1, input_y - 0.18, 2.2, 0.36), transform=ax.transData)
        strip.imshow(pixels[t : t + 1], cmap="gray_r", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        # Thin lines between the pixels: a row is a vector of `width` numbers (blank rows are zeros).
        strip.set_xticks(np.arange(-0.5, width, 1.0), minor=True)
        strip.grid(which="minor", axis="x", color="#bbbbbb", lw=0.4)
        strip.tick_params(which="both", length=0)
        strip.set_xticks([])
        strip.set_yticks([])
        for spine in strip.spines.values():
            spine.set_edgecolor(colour_of[t])
            spine.set_linewidth(1.8)
        row_label = labels["rnn_input_row"].format(x=rf"$x_{{{label}}}$", row=t + 1)
        ax.text(x, input_y - 0.55, row_label, ha="center", va="center", fontsize=10)
        _arrow(ax, (x, input_y + 0.22), (x, cell_y - cell_size[1] / 2))
        ax.text(x + 0.1, (input_y + cell_y) / 2 - 0.15, r"$W_{xh}$", ha="left", va="center", fontsize=10)
        _box(ax, (x, cell_y), cell_size, labels["rnn_cell"], fill=CONV_FILL, fontsize=9)
        # h_{t-1} -> cell (the recurrent connection, drawn unrolled).
        if t == steps - 1 and shown_steps < steps - 1:
            _arrow(ax, (ellipsis_x + 0.45, cell_y), (x - cell_size[0] / 2, cell_y))
            ax.text((ellipsis_x + x) / 2 - 0.1, cell_y + 0.28, r"$W_{hh}$", ha="center", fontsize=10)
        else:
            _arrow(ax, (previous_x, cell_y), (x - cell_size[0] / 2, cell_y))
            ax.text(
                (previous_x + x - cell_size[0] / 2) / 2, cell_y + 0.28, r"$W_{hh}$", ha="center", fontsize=10
            )
        ax.text(x, cell_y + 0.8, rf"$h_{{{label}}}$", ha="center", va="center", fontsize=11)
        previous_x = x + cell_size[0] / 2
        if t == shown_steps - 1 and shown_steps < steps - 1:
            _arrow(ax, (previous_x, cell_y), (ellipsis_x - 0.45, cell_y))
            ax.text(ellipsis_x, cell_y, "…", ha="center", va="center", fontsize=18)
            ax.text(ellipsis_x, input_y, "…", ha="center", va="center", fontsize=18)
    # The classifier reads only the last hidden state.
    last = columns[-1]
    _arrow(ax, (last + cell_size[0] / 2, cell_y), (last + 1.75, cell_y))
    _box(ax, (last + 2.45, cell_y), (1.4, 1.0), labels["rnn_classifier"], fill=DENSE_FILL, fontsize=9)
    ax.text(last + 1.1, cell_y - 0.35, r"$h_T$", ha="center", fontsize=10)
    ax.text(
        (columns[0] + columns[-1]) / 2,
        4.3,
        labels["rnn_shared_weights"].format(steps=steps),
        ha="center",
        va="center",
        fontsize=10,
        color=MUTED,
    )
    return _set_language_font(fig, language)


# --- 3. LeNet-5 ----------------------------------------------------------------------------------


def _layer_description(module: nn.Module, labels: dict[str, str]) -> tuple[str, str]:
    """What a layer does, read from the module itself (not typed): ``(operation, fill colour)``."""
    if isinstance(module, nn.Conv2d):
        kernel = "×".join(map(str, module.kernel_size))
        padding = labels["conv_padding"].format(p=module.padding[0]) if module.padding[0] else ""
        return labels["conv"].format(kernel=kernel, padding=padding), CONV_FILL
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        template = labels["max_pool"] if isinstance(module, nn.MaxPool2d) else labels["avg_pool"]
        k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        s = module.stride if isinstance(module.stride, int) else module.stride[0]
        return template.format(k=k, s=s), POOL_FILL
    if isinstance(module, nn.Linear):
        return labels["linear"].format(inputs=module.in_features, outputs=module.out_features), DENSE_FILL
    return type(module).__name__, "white"


def draw_lenet5_architecture(model: LeNet5 | None = None, *, language: str = "en") -> Figure:
    """Draw LeNet-5 as the course builds it, layer by layer, with output shapes and parameters.

    The shapes and parameter counts are those of ``model``, found by
    :func:`course_utils.summary.model_summary` on one 1×28×28 image: feature maps are
    labelled ``channels@height×width`` (``6@28×28``), vectors by their length.

    Args:
        model: a :class:`~course_utils.models.LeNet5` for 1×28×28 inputs; by default a new one.
        language: ``"en"`` (English) or ``"zh"`` (Chinese), the language of the labels.

    Returns:
        The figure, one axes; the title gives the total number of parameters.

    Raises:
        ValueError: the language is not ``"en"`` or ``"zh"``.
        FileNotFoundError: ``language="zh"`` and the CJK font is not installed.
    """
    labels = _labels(language)
    model = model if model is not None else LeNet5()
    input_size = (model.conv1.in_channels, 28, 28)
    summary = model_summary(model, input_size)
    modules = dict(model.named_modules())
    # Stages: the input, every layer with a row in the summary, and the flatten that
    # forward() does with torch.flatten (a function, so it has no row of its own).
    stages: list[tuple[str, str, tuple[int, ...], int, str]] = [
        (labels["input"], labels["image"], input_size, 0, "white")
    ]
    for row in summary.rows:
        shape = row.output_shape[1:]
        if len(shape) == 1 and len(stages[-1][2]) == 3:
            flat = (int(np.prod(stages[-1][2])),)
            stages.append((labels["flatten"], labels["reshape"], flat, 0, "white"))
        operation, fill = _layer_description(modules[row.name], labels)
        if row is summary.rows[-1]:
            operation += "\n" + labels["logits"]
        elif row.num_params:
            operation += "\n+ ReLU"  # LeNet5.forward applies F.relu after every layer but the last
        stages.append((row.name, operation, shape, row.num_params, fill))

    fig = new_figure((16.0, 4.0), layout=None)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.9))
    fig.suptitle(labels["lenet_title"].format(total=summary.total_params), fontsize=13)
    step = 2.0
    _blank_axes(ax, (-1.0, step * (len(stages) - 1) + 1.0), (-2.85, 2.4))
    previous_right = None
    for i, (name, operation, shape, params, fill) in enumerate(stages):
        x = i * step
        if len(shape) == 3:
            # A stack of feature maps: side proportional to height, up to 6 sheets drawn.
            side = 0.4 + 1.0 * shape[1] / 28
            sheets = min(shape[0], 6)
            for s in range(sheets):
                offset = 0.08 * (s - (sheets - 1) / 2)
                ax.add_patch(
                    Rectangle(
                        (x - side / 2 + offset, 0.6 - side / 2 - offset),
                        side,
                        side,
                        facecolor=fill,
                        edgecolor=INK,
                        lw=0.8,
                    )
                )
            half_width = side / 2 + 0.08 * (sheets - 1) / 2
        else:
            # A vector: a bar whose height grows with the square root of its length.
            height = 0.35 + 2.0 * (shape[0] / 400) ** 0.5
            ax.add_patch(Rectangle((x - 0.14, 0.6 - height / 2), 0.28, height, facecolor=fill, edgecolor=INK))
            half_width = 0.14
        if previous_right is not None:
            _arrow(ax, (previous_right + 0.08, 0.6), (x - half_width - 0.08, 0.6), color=MUTED)
        previous_right = x + half_width
        ax.text(x, 2.1, name, ha="center", va="center", fontsize=11, fontweight="bold")
        ax.text(x, -1.0, _shape_label(shape), ha="center", va="center", fontsize=11, color=INK)
        ax.text(x, -1.5, operation, ha="center", va="top", fontsize=8.5, color=INK)
        ax.text(x, -2.6, _params_label(params, labels), ha="center", va="center", fontsize=8.5, color=MUTED)
    return _set_language_font(fig, language)


# --- 4. the residual block ------------------------------------------------------------------------


def _block_chain(
    ax: Axes,
    block: BasicBlock,
    in_shape: tuple[int, int, int],
    title: str,
    shortcut_text: str | None,
    labels: dict[str, str],
) -> None:
    """One block drawn bottom to top: conv-BN-ReLU-conv-BN, the addition, ReLU; its shortcut on the right."""
    out_shape = tuple(block.eval()(torch.zeros(1, *in_shape)).shape[1:])
    stride = block.conv1.stride[0]
    channels = block.conv1.out_channels
    _blank_axes(ax, (0.0, 10.6), (-0.2, 13.3))
    ax.text(
        5.3,
        12.8,
        title + f"\n{_params_label(count_parameters(block), labels)}",
        ha="center",
        va="center",
        fontsize=10,
    )
    x, w, h, pitch = 3.3, 4.5, 0.8, 1.3
    layers = [
        (
            labels["conv3x3"].format(channels=channels)
            + (labels["conv_stride"].format(stride=stride) if stride > 1 else ""),
            CONV_FILL,
        ),
        (f"BN ({channels})", NORM_FILL),
        ("ReLU", ACT_FILL),
        (labels["conv3x3"].format(channels=channels), CONV_FILL),
        (f"BN ({channels})", NORM_FILL),
    ]
    ax.text(x, 0.3, rf"$x$: {_shape_label(in_shape)}", ha="center", va="center", fontsize=10)
    branch_y = 0.95  # where the shortcut leaves the main path
    y = 2.0
    _arrow(ax, (x, 0.65), (x, y - h / 2))
    for i, (text, fill) in enumerate(layers):
        _box(ax, (x, y), (w, h), text, fill=fill)
        if i < len(layers) - 1:
            _arrow(ax, (x, y + h / 2), (x, y + pitch - h / 2))
            y += pitch
    top_of_f = y + h / 2
    if shortcut_text is not None:
        add_y = y + pitch
        _arrow(ax, (x, top_of_f), (x, add_y - 0.38))
        ax.add_patch(Circle((x, add_y), 0.38, facecolor="white", edgecolor=INK, lw=1.2))
        ax.text(x, add_y, "+", ha="center", va="center", fontsize=14)
        # The shortcut: from x, along the right-hand side, into the addition.
        right = 8.4
        ax.plot([x, right], [branch_y, branch_y], color=SHORTCUT, lw=1.6)
        ax.plot([right, right], [branch_y, add_y], color=SHORTCUT, lw=1.6)
        _arrow(ax, (right, add_y), (x + 0.38, add_y), color=SHORTCUT, lw=1.6)
        mid = (branch_y + add_y) / 2
        _box(ax, (right, mid), (3.6, 1.7), shortcut_text, fill="white", edge=SHORTCUT, fontsize=8.5)
        relu_y = add_y + pitch
        _arrow(ax, (x, add_y + 0.38), (x, relu_y - h / 2))
        formula = "ReLU$(F(x) + $" + labels["shortcut"] + "$(x))$"
    else:
        relu_y = y + pitch
        _arrow(ax, (x, top_of_f), (x, relu_y - h / 2))
        formula = r"ReLU$(F(x))$"
    # The bracket that names the residual branch F(x): the five layers before the addition.
    ax.plot([x - w / 2 - 0.25] * 2, [2.0 - h / 2, top_of_f], color=MUTED, lw=1.0)
    ax.text(x - w / 2 - 0.6, (2.0 + y) / 2, r"$F(x)$", ha="center", va="center", fontsize=11, rotation=90)
    _box(ax, (x, relu_y), (w, h), "ReLU", fill=ACT_FILL)
    _arrow(ax, (x, relu_y + h / 2), (x, relu_y + 0.95))
    ax.text(
        x + 0.4,
        relu_y + 1.3,
        f"{_shape_label(out_shape)} = {formula}",
        ha="center",
        va="center",
        fontsize=9.5,
    )


def draw_residual_block(channels: int = 16, size: int = 32, *, language: str = "en") -> Figure:
    """Draw the plain block beside the basic residual block, and the two shortcuts for a shape change.

    Four panels, each the block of :class:`~course_utils.models.BasicBlock` that the course
    trains, bottom (input) to top (output), with its parameter count:

    1. plain block (``shortcut=None``): conv3×3-BN-ReLU-conv3×3-BN-ReLU;
    2. basic residual block: the same layers, plus the identity added before the last ReLU;
    3. a block that halves the size and doubles the channels, option A shortcut: every
       second pixel, then zero channels appended (no parameters);
    4. the same block with option B: a 1×1 convolution with stride 2, then BN.

    Args:
        channels: channels of the input (the first stage of ResNet-20 has 16).
        size: height = width of the input (32 for CIFAR-10).
        language: ``"en"`` (English) or ``"zh"`` (Chinese), the language of the labels.

    Returns:
        The figure, four axes.

    Raises:
        ValueError: the language is not ``"en"`` or ``"zh"``.
        FileNotFoundError: ``language="zh"`` and the CJK font is not installed.
    """
    labels = _labels(language)
    shape = (channels, size, size)
    option_b = BasicBlock(channels, 2 * channels, stride=2, shortcut="B")
    no_params = _params_label(0, labels)
    panels = [
        (BasicBlock(channels, channels, shortcut=None), labels["plain_block"], None),
        (
            BasicBlock(channels, channels, shortcut="A"),
            labels["residual_block"],
            labels["identity_shortcut"].format(params=no_params),
        ),
        (
            BasicBlock(channels, 2 * channels, stride=2, shortcut="A"),
            labels["shape_change"].format(option="A"),
            labels["zero_channel_shortcut"].format(channels=channels, params=no_params),
        ),
        (
            option_b,
            labels["shape_change"].format(option="B"),
            labels["projection_shortcut"].format(
                stride=option_b.conv1.stride[0],
                params=_params_label(count_parameters(option_b.shortcut), labels),
            ),
        ),
    ]
    fig = new_figure((14.0, 5.0), layout=None)
    axes = fig.subplots(1, 4)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.88, wspace=0.04)
    fig.suptitle(labels["residual_title"], fontsize=12)
    for ax, (block, title, shortcut_text) in zip(axes, panels):
        _block_chain(ax, block, shape, title, shortcut_text, labels)
    return _set_language_font(fig, language)


# --- writing the files ----------------------------------------------------------------------------

#: File name -> function that draws it (with its defaults and a ``language=``), for :func:`write_diagrams`.
DIAGRAMS: dict[str, Callable[..., Figure]] = {
    "sliding_window.png": draw_sliding_window,
    "unrolled_rnn.png": draw_unrolled_rnn,
    "lenet5_architecture.png": draw_lenet5_architecture,
    "residual_block.png": draw_residual_block,
}

#: Language -> where its figures go inside the images folder: English at the top (the English
#: notebooks link ``../images/NAME.png``), Chinese in ``zh`` (``../../images/zh/NAME.png``).
EDITION_FOLDERS: dict[str, str] = {"en": ".", "zh": "zh"}


def write_diagrams(folder: str | Path, dpi: int = DPI, *, language: str = "en") -> list[Path]:
    """Draw every diagram of :data:`DIAGRAMS` in one language and save it as a PNG file in ``folder``.

    The files carry no creation date or software version, so drawing them again gives the
    same bytes (with the same matplotlib and fonts).

    Args:
        folder: where to write the files (created if missing).
        dpi: resolution of the PNG files.
        language: ``"en"`` (English) or ``"zh"`` (Chinese), the language of the labels.

    Returns:
        The paths written, in the order of :data:`DIAGRAMS`.

    Raises:
        ValueError: the language is not ``"en"`` or ``"zh"``.
        FileNotFoundError: ``language="zh"`` and the CJK font is not installed.
    """
    _labels(language)  # refuse an unknown language before creating the folder
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)  # the models are built only for their shapes, but keep even that fixed
    written = []
    for name, draw in DIAGRAMS.items():
        path = folder / name
        draw(language=language).savefig(
            path,
            dpi=dpi,
            bbox_inches="tight",
            facecolor="white",
            metadata={"Software": None},
            pil_kwargs={"optimize": True},  # smaller files, same pixels
        )
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_utils.diagrams [FOLDER]``: write the diagrams (default folder ``images``).

    The English figures go into ``FOLDER``, the Chinese ones into ``FOLDER/zh``
    (:data:`EDITION_FOLDERS`).
    """
    parser = argparse.ArgumentParser(description="Draw the course's diagrams as PNG files.")
    parser.add_argument(
        "folder", nargs="?", default="images", help="where to write the PNG files (Chinese ones: FOLDER/zh)"
    )
    args = parser.parse_args(argv)
    for language, subfolder in EDITION_FOLDERS.items():
        for path in write_diagrams(Path(args.folder) / subfolder, language=language):
            print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
