"""The course's diagrams: a convolution window, an unrolled RNN, LeNet-5 and the residual block.

Each ``draw_*`` function returns a figure (a notebook shows it as the cell's value). Numbers are computed,
never typed: by the output-size formula, or by running the real models of :mod:`course_utils.models`.
The words are English, written where they are drawn; ``labels`` maps an English label to the text shown
instead (one it lacks stays English): ``course_tools/figures.py`` draws the Chinese figures so.
"""

from collections.abc import Callable, Mapping, Sequence
from itertools import product

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle
from torch import nn

from course_utils.evaluation import count_parameters, model_summary
from course_utils.models import BasicBlock, LeNet5
from course_utils.plots import new_figure

# One palette for every diagram, so that a colour means the same thing everywhere.
INK, MUTED, HIGHLIGHT, SHORTCUT = "#222222", "#777777", "#1f77b4", "#c0392b"
PAD_FILL, CONV_FILL, POOL_FILL, DENSE_FILL = "#e6e6e6", "#cfe2f3", "#fde9c9", "#d9ead3"
NORM_FILL, ACT_FILL = "#ead1dc", "#fff2cc"

Point = tuple[float, float]
Labels = Mapping[str, str] | None  # English label -> the text to draw instead (None: English)


def _translator(labels: Labels) -> Callable[..., str]:
    """``say(english, **values)``: ``english`` or its translation in ``labels``, a ``str.format`` template
    with the values filled in (a formula doubles its braces: ``$W_{{xh}}$`` draws ``$W_{xh}$``)."""
    return lambda english, **values: (labels or {}).get(english, english).format(**values)


def _box(
    ax: Axes, center: Point, size: Point, text: str, fill: str, fontsize: float = 9, edge: str = INK
) -> None:
    """A rounded box with centred text, drawn above lines that run behind it (``ax.plot`` has zorder 2)."""
    (x, y), (w, h) = center, size
    style = "round,pad=0.02,rounding_size=0.12"
    patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=style, fc=fill, ec=edge, lw=1.1, zorder=3)
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=INK, zorder=4)


def _arrow(ax: Axes, start: Point, end: Point, *, color: str = INK, lw: float = 1.2) -> None:
    style = {"arrowstyle": "-|>", "color": color, "lw": lw, "shrinkA": 0, "shrinkB": 0, "mutation_scale": 12}
    ax.annotate("", xy=end, xytext=start, arrowprops={**style, "connectionstyle": "arc3"})


def _blank_axes(ax: Axes, xlim: Point, ylim: Point) -> None:
    ax.set(xlim=xlim, ylim=ylim, aspect="equal")
    ax.set_axis_off()


def _shape_label(shape: Sequence[int]) -> str:
    """``(6, 28, 28)`` -> ``"6@28×28"`` (maps @ height × width); ``(400,)`` -> ``"400"``."""
    return f"{shape[0]}@{shape[1]}×{shape[2]}" if len(shape) == 3 else "×".join(map(str, shape))


def _params_label(count: int, say: Callable[..., str]) -> str:
    return say("{count:,} params", count=count) if count else say("no params")


def conv_output_size(n: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    """Output length of a convolution (or pooling) along one axis of length ``n``: the window spans
    ``d(k - 1) + 1`` cells and starts at every ``s``-th position of the padded input where it still fits,
    ``floor((n + 2p - d(k - 1) - 1) / s) + 1`` (0 or less: it never fits), ``k, p, s, d`` as in ``nn.Conv2d``.
    """
    return (n + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def window_cells(
    row: int, col: int, kernel_size: int, padding: int = 0, stride: int = 1, dilation: int = 1
) -> list[tuple[int, int]]:
    """The ``k * k`` input cells ``(input_row, input_col)`` that output cell ``(row, col)`` reads, row by row:
    from ``(row * s - p, col * s - p)``, ``d`` apart; a cell outside the input is zero padding.
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
    labels: Labels = None,
) -> Figure:
    """Draw a convolution window sliding over a padded square input, one panel per output cell.

    Each panel shows the padded input (padding grey, holding 0; input cells numbered row by row), the
    cells the window reads for one output cell (blue), and the output grid with that cell marked
    (earlier ones lightly); the title gives the output-size formula. ``input_size`` is ``n`` (height =
    width), the other sizes those of ``nn.Conv2d``; ``positions``: the output cells ``(row, col)`` to
    show (by default the first two of the first row, the first of the second row and the last one).

    Raises:
        ValueError: the window does not fit the padded input, or a position lies outside the output.
    """
    say = _translator(labels)
    out = conv_output_size(input_size, kernel_size, padding, stride, dilation)
    if min(input_size, kernel_size, stride, dilation) < 1 or padding < 0 or out < 1:
        raise ValueError(
            f"a {kernel_size}×{kernel_size} window (dilation {dilation}) does not fit a "
            f"{input_size}×{input_size} input with padding {padding}"
        )
    if positions is None:
        last = out - 1
        positions = list(dict.fromkeys([(0, 0), (0, min(1, last)), (min(1, last), 0), (last, last)]))
    for row, col in positions:
        if not (0 <= row < out and 0 <= col < out):
            raise ValueError(f"position {(row, col)} is outside the {out}×{out} output")

    padded = input_size + 2 * padding
    gap = 1.2  # between the input grid and the output grid
    fig = new_figure((3.4 * len(positions), 3.7), layout=None)
    axes = fig.subplots(1, len(positions), squeeze=False)[0]
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.8, wspace=0.08)
    span = dilation * (kernel_size - 1) + 1
    formula = r"$= \lfloor (n + 2p - d(k-1) - 1)\,/\,s \rfloor + 1 = "
    formula += rf"\lfloor ({input_size} + {2 * padding} - {span - 1} - 1)\,/\,{stride} \rfloor + 1 = {out}$"
    title = "A {k}×{k} window on a {n}×{n} input, padding {p}, stride {s}{dilation} → {out}×{out} output\n"
    title += "output size {formula}"
    dilated = say(", dilation {d}", d=dilation) if dilation > 1 else ""
    values = {"k": kernel_size, "n": input_size, "p": padding, "s": stride, "out": out}
    fig.suptitle(say(title, **values, dilation=dilated, formula=formula), fontsize=11)
    for index, (ax, (row, col)) in enumerate(zip(axes, positions)):
        _blank_axes(ax, (-0.3, padded + gap + out + 0.3), (-1.6, padded + 0.6))
        read = window_cells(row, col, kernel_size, padding, stride, dilation)
        # y grows upwards in the axes; row 0 is drawn at the top.
        for r, c in product(range(-padding, input_size + padding), repeat=2):
            x, y = c + padding, padded - 1 - (r + padding)
            inside = 0 <= r < input_size and 0 <= c < input_size
            fill, alpha = (HIGHLIGHT, 0.55) if (r, c) in read else ("white" if inside else PAD_FILL, 1.0)
            ax.add_patch(Rectangle((x, y), 1, 1, facecolor=fill, alpha=alpha, edgecolor=MUTED, lw=0.6))
            label = str(r * input_size + c + 1) if inside else "0"
            ax.text(x + 0.5, y + 0.5, label, ha="center", va="center", fontsize=7, color=INK)
        # The input proper, framed; then the window's outline (it spans more cells when dilated).
        ax.add_patch(Rectangle((padding, padding), input_size, input_size, fill=False, edgecolor=INK, lw=1.4))
        corner = (col * stride, padded - row * stride - span)  # in padded coordinates
        ax.add_patch(Rectangle(corner, span, span, fill=False, edgecolor=HIGHLIGHT, lw=2.2))
        # The output grid, vertically centred: this cell highlighted, the earlier ones lightly.
        x0, y0 = padded + gap, (padded - out) / 2
        done = set(positions[:index])
        for r, c in product(range(out), repeat=2):
            fill = HIGHLIGHT if (r, c) == (row, col) or (r, c) in done else "white"
            alpha = 0.55 if (r, c) == (row, col) else (0.15 if (r, c) in done else 1.0)
            corner = (x0 + c, y0 + out - 1 - r)
            ax.add_patch(Rectangle(corner, 1, 1, facecolor=fill, alpha=alpha, edgecolor=INK, lw=0.8))
        (top, left), (bottom, right) = read[0], read[-1]  # the window's corners: cells come row by row
        reads = "output ({row}, {col}) reads rows {top}…{bottom}, cols {left}…{right}"
        ax.set_title(say(reads, row=row, col=col, top=top, bottom=bottom, left=left, right=right), fontsize=9)
        below = {"ha": "center", "fontsize": 8, "color": MUTED}
        ax.text(padded / 2, -0.8, say("padded input (grey: padding = 0)"), **below)
        ax.text(x0 + out / 2, -0.8, say("output"), **below)
    return fig


def _synthetic_digit(size: int = 28) -> np.ndarray:
    """A hand-made "7" in [0, 1], ``(size, size)``: strokes drawn as distance fields, no data needed."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float) * (28.0 / size)

    def stroke(y0: float, x0: float, y1: float, x1: float) -> np.ndarray:
        # Distance from every pixel to the segment (y0, x0)-(y1, x1), turned into ink.
        dy, dx = y1 - y0, x1 - x0
        t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / (dy * dy + dx * dx), 0.0, 1.0)
        return np.clip(1.6 - np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx)) / 1.1, 0.0, 1.0)

    return np.maximum(stroke(7, 7, 7, 20), stroke(7, 20, 23, 12))


def draw_unrolled_rnn(image: np.ndarray | torch.Tensor | None = None, *, labels: Labels = None) -> Figure:
    """Draw an RNN cell unrolled over time, reading an ``(H, W)`` image one row per time step.

    Left: the image (by default a hand-drawn 28×28 "7": no dataset needed), each shown row framed in
    its step's colour. Right: the cell at steps 1, 2, 3 and ``T = H``; the row's ``W`` pixels
    ``x_t`` enter through ``W_xh``, ``h_{t-1}`` through ``W_hh`` (the same weights at every step), and
    the last hidden state ``h_T`` goes to the classifier.

    Raises:
        ValueError: ``image`` is not 2-D or has fewer than 4 rows.
    """
    say = _translator(labels)
    pixels = _synthetic_digit() if image is None else np.asarray(torch.as_tensor(image).detach().cpu(), float)
    if pixels.ndim != 2:
        raise ValueError(f"draw_unrolled_rnn expects one grayscale image (H, W), got shape {pixels.shape}")
    steps, width = pixels.shape
    shown_steps = 3  # then an ellipsis, then the last step
    if steps < shown_steps + 1:
        raise ValueError(f"need at least {shown_steps + 1} rows to show {shown_steps} steps and the last")
    low, high = float(pixels.min()), float(pixels.max())
    pixels = (pixels - low) / (high - low if high > low else 1.0)
    fig = new_figure((13.0, 3.9), layout=None)
    image_ax = fig.add_axes((0.01, 0.08, 0.17, 0.72))
    ax = fig.add_axes((0.2, 0.0, 0.8, 0.9))
    title = "An RNN reads the image row by row: {formula}   (the same weights at every step)"
    fig.suptitle(say(title, formula=r"$h_t = \tanh(W_{xh}\,x_t + W_{hh}\,h_{t-1} + b)$"), fontsize=12)
    step_rows = [*range(shown_steps), steps - 1]  # 0-based rows drawn as time steps
    colours = ["#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#e377c2"]
    colour_of = {t: colours[i % len(colours)] for i, t in enumerate(step_rows)}
    image_ax.imshow(pixels, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    for t in step_rows:
        image_ax.add_patch(Rectangle((-0.5, t - 0.5), width, 1, fill=False, edgecolor=colour_of[t], lw=1.8))
    image_ax.set(xticks=[], yticks=[])
    caption = say("{steps}×{width} image = {steps} steps\nof {width} pixels", steps=steps, width=width)
    image_ax.set_title(caption, fontsize=9)
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
        strip.set(xticks=[], yticks=[])
        strip.spines[:].set(edgecolor=colour_of[t], linewidth=1.8)
        row_label = say("{x} = row {row}", x=rf"$x_{{{label}}}$", row=t + 1)
        ax.text(x, input_y - 0.55, row_label, ha="center", va="center", fontsize=10)
        _arrow(ax, (x, input_y + 0.22), (x, cell_y - cell_size[1] / 2))
        ax.text(x + 0.1, (input_y + cell_y) / 2 - 0.15, r"$W_{xh}$", ha="left", va="center", fontsize=10)
        _box(ax, (x, cell_y), cell_size, say("RNN cell\ntanh"), fill=CONV_FILL, fontsize=9)
        # h_{t-1} -> cell (the recurrent connection, drawn unrolled), from the "…" for step T.
        after_ellipsis = t == steps - 1 and shown_steps < steps - 1
        start = ellipsis_x + 0.45 if after_ellipsis else previous_x
        _arrow(ax, (start, cell_y), (x - cell_size[0] / 2, cell_y))
        middle = (ellipsis_x + x) / 2 - 0.1 if after_ellipsis else (previous_x + x - cell_size[0] / 2) / 2
        ax.text(middle, cell_y + 0.28, r"$W_{hh}$", ha="center", fontsize=10)
        ax.text(x, cell_y + 0.8, rf"$h_{{{label}}}$", ha="center", va="center", fontsize=11)
        previous_x = x + cell_size[0] / 2
        if t == shown_steps - 1 and shown_steps < steps - 1:
            _arrow(ax, (previous_x, cell_y), (ellipsis_x - 0.45, cell_y))
            ax.text(ellipsis_x, cell_y, "…", ha="center", va="center", fontsize=18)
            ax.text(ellipsis_x, input_y, "…", ha="center", va="center", fontsize=18)
    # The classifier reads only the last hidden state.
    last = columns[-1]
    _arrow(ax, (last + cell_size[0] / 2, cell_y), (last + 1.75, cell_y))
    _box(ax, (last + 2.45, cell_y), (1.4, 1.0), say("fc\n10 logits"), fill=DENSE_FILL, fontsize=9)
    ax.text(last + 1.1, cell_y - 0.35, r"$h_T$", ha="center", fontsize=10)
    shared = "shared weights: one $W_{{xh}}$, one $W_{{hh}}$, one $b$ for all {steps} steps; "
    shared += "training backpropagates through time (BPTT)"
    middle = (columns[0] + columns[-1]) / 2
    ax.text(middle, 4.3, say(shared, steps=steps), ha="center", va="center", fontsize=10, color=MUTED)
    return fig


def _layer_description(module: nn.Module, say: Callable[..., str]) -> tuple[str, str]:
    """What a layer does, read from the module itself (not typed): ``(operation, fill colour)``."""
    if isinstance(module, nn.Conv2d):
        padding = say(", pad {p}", p=module.padding[0]) if module.padding[0] else ""
        kernel = "×".join(map(str, module.kernel_size))
        return say("{kernel} conv{padding}", kernel=kernel, padding=padding), CONV_FILL
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k, s = (size if isinstance(size, int) else size[0] for size in (module.kernel_size, module.stride))
        if isinstance(module, nn.MaxPool2d):
            return say("max-pool {k}×{k}\nstride {s}", k=k, s=s), POOL_FILL
        return say("avg-pool {k}×{k}\nstride {s}", k=k, s=s), POOL_FILL
    if isinstance(module, nn.Linear):
        sizes = {"inputs": module.in_features, "outputs": module.out_features}
        return say("linear\n{inputs} → {outputs}", **sizes), DENSE_FILL
    return type(module).__name__, "white"


def draw_lenet5_architecture(model: LeNet5 | None = None, *, labels: Labels = None) -> Figure:
    """Draw LeNet-5 as the course builds it, layer by layer, with output shapes and parameters.

    Shapes and parameter counts are those of ``model`` (default: a new ``LeNet5``) on one 28×28 image;
    feature maps are labelled ``channels@height×width`` (``6@28×28``), vectors by their length.
    """
    say = _translator(labels)
    model = model if model is not None else LeNet5()
    input_size = (model.conv1.in_channels, 28, 28)
    summary = model_summary(model, input_size)
    # Stages (name, operation, output shape, parameters, fill): the input, every layer with a row in the
    # summary, and the flatten that forward() does with torch.flatten (a function: it has no row).
    stages = [(say("input"), say("image"), input_size, 0, "white")]
    for row in summary.rows:
        shape = row.output_shape[1:]
        if len(shape) == 1 and len(stages[-1][2]) == 3:
            stages.append((say("flatten"), say("reshape"), (int(np.prod(stages[-1][2])),), 0, "white"))
        operation, fill = _layer_description(model.get_submodule(row.name), say)
        if row is summary.rows[-1]:
            operation += "\n" + say("(logits)")
        elif row.num_params:
            operation += "\n+ ReLU"  # LeNet5.forward applies F.relu after every layer but the last
        stages.append((row.name, operation, shape, row.num_params, fill))
    fig = new_figure((16.0, 4.0), layout=None)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.9))
    title = "LeNet-5 (LeCun et al., 1998) in its modern form: {total:,} parameters"
    fig.suptitle(say(title, total=summary.total_params), fontsize=13)
    _blank_axes(ax, (-1.0, 2.0 * (len(stages) - 1) + 1.0), (-2.85, 2.4))
    previous_right = None
    for i, (name, operation, shape, params, fill) in enumerate(stages):
        x = i * 2.0
        if len(shape) == 3:
            # A stack of feature maps: side proportional to height, up to 6 sheets drawn.
            side = 0.4 + 1.0 * shape[1] / 28
            sheets = min(shape[0], 6)
            for s in range(sheets):
                offset = 0.08 * (s - (sheets - 1) / 2)
                corner = (x - side / 2 + offset, 0.6 - side / 2 - offset)
                ax.add_patch(Rectangle(corner, side, side, facecolor=fill, edgecolor=INK, lw=0.8))
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
        ax.text(x, -2.6, _params_label(params, say), ha="center", va="center", fontsize=8.5, color=MUTED)
    return fig


def _block_chain(
    ax: Axes, block: BasicBlock, in_shape: tuple[int, ...], title: str, shortcut: str | None, say: Callable
) -> None:
    """One block drawn bottom to top: conv-BN-ReLU-conv-BN, the addition, ReLU; its shortcut on the right."""
    out_shape = tuple(block.eval()(torch.zeros(1, *in_shape)).shape[1:])
    stride, channels = block.conv1.stride[0], block.conv1.out_channels
    _blank_axes(ax, (0.0, 10.6), (-0.2, 13.3))
    heading = title + f"\n{_params_label(count_parameters(block), say)}"
    ax.text(5.3, 12.8, heading, ha="center", va="center", fontsize=10)
    x, w, h, pitch = 3.3, 4.5, 0.8, 1.3
    conv, bn = say("conv 3×3, {channels}", channels=channels), f"BN ({channels})"
    first = conv + (say(", stride {stride}", stride=stride) if stride > 1 else "")
    layers = [(first, CONV_FILL), (bn, NORM_FILL), ("ReLU", ACT_FILL), (conv, CONV_FILL), (bn, NORM_FILL)]
    ax.text(x, 0.3, rf"$x$: {_shape_label(in_shape)}", ha="center", va="center", fontsize=10)
    branch_y, y = 0.95, 2.0  # where the shortcut leaves the main path; the first layer
    _arrow(ax, (x, 0.65), (x, y - h / 2))
    for i, (text, fill) in enumerate(layers):
        _box(ax, (x, y), (w, h), text, fill=fill)
        if i < len(layers) - 1:
            _arrow(ax, (x, y + h / 2), (x, y + pitch - h / 2))
            y += pitch
    top_of_f = y + h / 2
    relu_y, below_relu, formula = y + pitch, top_of_f, r"ReLU$(F(x))$"  # a plain block
    if shortcut is not None:  # the addition comes between F(x) and the last ReLU
        add_y = y + pitch
        _arrow(ax, (x, top_of_f), (x, add_y - 0.38))
        ax.add_patch(Circle((x, add_y), 0.38, facecolor="white", edgecolor=INK, lw=1.2))
        ax.text(x, add_y, "+", ha="center", va="center", fontsize=14)
        # The shortcut: from x, along the right-hand side, into the addition.
        right = 8.4
        ax.plot([x, right], [branch_y, branch_y], color=SHORTCUT, lw=1.6)
        ax.plot([right, right], [branch_y, add_y], color=SHORTCUT, lw=1.6)
        _arrow(ax, (right, add_y), (x + 0.38, add_y), color=SHORTCUT, lw=1.6)
        mid = (right, (branch_y + add_y) / 2)
        _box(ax, mid, (3.6, 1.7), shortcut, fill="white", edge=SHORTCUT, fontsize=8.5)
        relu_y, below_relu = add_y + pitch, add_y + 0.38
        formula = "ReLU$(F(x) + $" + say("shortcut") + "$(x))$"
    _arrow(ax, (x, below_relu), (x, relu_y - h / 2))
    # The bracket that names the residual branch F(x): the five layers before the addition.
    ax.plot([x - w / 2 - 0.25] * 2, [2.0 - h / 2, top_of_f], color=MUTED, lw=1.0)
    ax.text(x - w / 2 - 0.6, (2.0 + y) / 2, r"$F(x)$", ha="center", va="center", fontsize=11, rotation=90)
    _box(ax, (x, relu_y), (w, h), "ReLU", fill=ACT_FILL)
    _arrow(ax, (x, relu_y + h / 2), (x, relu_y + 0.95))
    output = f"{_shape_label(out_shape)} = {formula}"
    ax.text(x + 0.4, relu_y + 1.3, output, ha="center", va="center", fontsize=9.5)


def draw_residual_block(channels: int = 16, size: int = 32, *, labels: Labels = None) -> Figure:
    """Draw the plain block beside the basic residual block, and the two shortcuts for a shape change.

    Four :class:`~course_utils.models.BasicBlock` as the course trains them, for a ``(channels, size,
    size)`` input (16×32×32: ResNet-20's first stage on CIFAR-10), bottom (input) to top (output):
    1. plain block (``shortcut=None``): conv3×3-BN-ReLU-conv3×3-BN-ReLU;
    2. basic residual block: the same layers, plus the identity added before the last ReLU;
    3. half the size, twice the channels, option A: every second pixel, zero channels appended (no params);
    4. the same with option B: a 1×1 convolution with stride 2, then BN.
    """
    say = _translator(labels)
    identity = BasicBlock(channels, channels, shortcut="A")
    option_a = BasicBlock(channels, 2 * channels, stride=2, shortcut="A")
    option_b = BasicBlock(channels, 2 * channels, stride=2, shortcut="B")
    none = _params_label(0, say)
    zeros = say("every 2nd pixel,\n+{channels} zero channels\n{params}", channels=channels, params=none)
    projection = "1×1 conv, stride {stride}\n+ BN\n{params}"
    shortcut_params = _params_label(count_parameters(option_b.shortcut), say)
    projection = say(projection, stride=option_b.conv1.stride[0], params=shortcut_params)
    panels = [
        (BasicBlock(channels, channels, shortcut=None), say("plain block"), None),
        (identity, say("basic residual block"), say("identity\n$x$\n{params}", params=none)),
        (option_a, say("shape changes, option {option}", option="A"), zeros),
        (option_b, say("shape changes, option {option}", option="B"), projection),
    ]
    fig = new_figure((14.0, 5.0), layout=None)
    axes = fig.subplots(1, 4)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.88, wspace=0.04)
    title = (
        "Residual learning (He et al., 2016): the layers learn F(x), the shortcut carries x to the addition\n"
        "(BN: batch normalisation; option A is the paper's choice for CIFAR-10, section 4.2)"
    )
    fig.suptitle(say(title), fontsize=12)
    for ax, (block, heading, shortcut) in zip(axes, panels):
        _block_chain(ax, block, (channels, size, size), heading, shortcut, say)
    return fig
