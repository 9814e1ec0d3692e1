"""The figures a learner needs: images with their labels, training curves, mistakes, filters.

Every function returns a matplotlib ``Figure`` (never ``plt.show()``): a notebook shows it as the
cell's value, a script saves it (``fig.savefig("history.png")``). Built without pyplot, the figures
work headless and never pile up in pyplot's list of open figures.

Inputs may be torch tensors (on any device), numpy arrays or lists. Images are either raw
``uint8`` pixels, ``(N, H, W)`` (MNIST), ``(N, H, W, 3)`` (CIFAR-10) or ``(N, C, H, W)``
(``Batches.images``), drawn as they are; or ``float`` model inputs ``(N, C, H, W)``, C = 1 or 3:
pass the ``mean`` and ``std`` they were normalised with to draw ``x * std + mean`` clipped to
[0, 1] (``mean=0, std=1`` for images already in [0, 1]); without them each image is min-max scaled.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn

from course_utils.evaluation import eval_mode

ArrayLike = torch.Tensor | np.ndarray | Sequence[Any]  # what the functions accept as numbers


# --- figures and inputs ---------------------------------------------------------------------------
class _NotebookFigure(Figure):
    """A ``Figure`` that Jupyter shows as a PNG even in a notebook that never loaded pyplot."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()

    def __repr__(self) -> str:  # "<Figure size 600x350 with 1 Axes>", like any matplotlib figure
        return super().__repr__().replace(type(self).__name__, "Figure", 1)


def new_figure(figsize: tuple[float, float], *, layout: str | None = "constrained") -> Figure:
    """A blank figure (width, height in inches) that shows as a cell's value; draw with ``fig.subplots()``."""
    return _NotebookFigure(figsize=figsize, layout=layout)  # layout=None: diagrams place things themselves


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.is_floating_point() else x).numpy()  # numpy has no bfloat16
    return np.asarray(x)


def _images_for_display(images: ArrayLike, mean: Any, std: Any, caller: str) -> tuple[np.ndarray, dict]:
    """Images as ``imshow`` draws them, ``(N, H, W)`` or ``(N, H, W, 3)``, and the ``imshow`` arguments."""
    array = _to_numpy(images)
    is_float = np.issubdtype(array.dtype, np.floating)
    if array.ndim == 3:  # grayscale without a channel axis
        array = array[..., None]
    # Model inputs are channels-first; raw pixels are either (torchvision's (N, H, W, 3) or Batches').
    elif array.ndim == 4 and array.shape[1] in (1, 3) and (is_float or array.shape[-1] not in (1, 3)):
        array = array.transpose(0, 2, 3, 1)
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or len(array) == 0:
        shapes = "uint8 (N, H, W), (N, H, W, 3) or (N, C, H, W), or float (N, C, H, W) with C = 1 or 3"
        raise ValueError(f"{caller} expects images {shapes}, got shape {tuple(_to_numpy(images).shape)}")
    if not is_float and (mean is not None or std is not None):
        raise ValueError(f"{caller}: {array.dtype} images are raw pixels already, pass no mean and std")
    if (mean is None) != (std is None):  # with one alone the images would come out blank
        raise ValueError(f"{caller}: pass both mean and std, or neither")
    if not is_float:
        array, vmax = array.astype(np.uint8), 255
    elif mean is not None:
        m, s = (np.asarray(v, dtype=float).reshape(-1) for v in (mean, std))
        array, vmax = np.clip(array * s + m, 0.0, 1.0), 1  # (N, H, W, C) * (C,) + (C,)
    else:
        low = array.min(axis=(1, 2, 3), keepdims=True)
        span = array.max(axis=(1, 2, 3), keepdims=True) - low
        array, vmax = (array - low) / np.where(span > 0, span, 1.0), 1  # a constant image becomes black
    if array.shape[-1] == 1:
        return array[..., 0], {"cmap": "gray", "vmin": 0, "vmax": vmax}
    return array, {}


def _image_grid(
    images: np.ndarray, show: dict, titles: Sequence[str] | None, ncols: int, size: float, title: str | None
) -> Figure:
    """One image per axes, in rows of ``ncols``; the axes left over in the last row are turned off."""
    n, ncols = len(images), max(1, min(ncols, len(images)))
    nrows = math.ceil(n / ncols)
    height = nrows * (size + (0.3 if titles else 0.0)) + (0.4 if title else 0.0)
    fig = new_figure((max(ncols * size, 3.0) if title else ncols * size, height))  # room for the title
    fig.suptitle(title or "")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    for i, ax in enumerate(axes[:n]):
        ax.imshow(images[i], interpolation="nearest", **show)
        ax.set(xticks=[], yticks=[], title=titles[i] if titles else "")
        ax.title.set_fontsize(8 if size > 1 else 7)
        ax.spines[:].set_visible(False)
    return fig


def _set_class_ticks(ax: Axes, classes: Sequence[str]) -> None:
    """Class names under the x axis; names longer than 3 letters are slanted, so they do not overlap."""
    names = [str(c) for c in classes]
    slant = {"rotation": 45, "ha": "right", "rotation_mode": "anchor"} if max(map(len, names)) > 3 else {}
    ax.set_xticks(range(len(names)), names, **slant)


# --- images ---------------------------------------------------------------------------------------
def plot_image_grid(
    images: ArrayLike,
    labels: ArrayLike | None = None,
    classes: Sequence[str] | None = None,
    predictions: ArrayLike | None = None,
    *,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    ncols: int = 8,
    title: str | None = None,
    size: float = 1.4,
) -> Figure:
    """Show a batch of images in a grid, each titled with its class (and the model's guess).

    Args:
        images: ``(N, ...)`` raw ``uint8`` pixels or ``float`` model inputs (module docstring).
        labels: ``(N,)`` true class indices, or any labels (e.g. strings) without ``classes``.
        classes: the class names; ``classes[label]`` becomes the title.
        predictions: ``(N,)`` predicted class indices. With ``labels`` each title reads
            ``"predicted (true)"``, and a wrong prediction gets a red title and frame.
        mean, std: both or neither; per channel, what normalised float images (MNIST: 0.1307, 0.3081).
        ncols, title, size: images per row, a title above the grid, inches per image.
    """
    pixels, show = _images_for_display(images, mean, std, "plot_image_grid")

    def names(values: ArrayLike, what: str) -> tuple[list[str], list]:
        values = _to_numpy(values).tolist()
        if len(values) != len(pixels):
            raise ValueError(f"plot_image_grid: {len(pixels)} images but {len(values)} {what}")
        return [str(v if classes is None else classes[int(v)]) for v in values], values

    titles = wrong = None
    if labels is not None:
        titles, true_values = names(labels, "labels")
    if predictions is not None:
        guessed, guesses = names(predictions, "predictions")
        if titles is not None:
            wrong = [p != t for p, t in zip(guesses, true_values)]
        titles = guessed if titles is None else [f"{p} ({t})" for p, t in zip(guessed, titles)]
    fig = _image_grid(pixels, show, titles, ncols, size, title)
    for ax, is_wrong in zip(fig.axes, wrong or []):
        if is_wrong:
            ax.title.set_color("red")
            ax.spines[:].set(visible=True, edgecolor="red", linewidth=2.5)
    return fig


def most_confident_mistakes(
    targets: ArrayLike, predictions: ArrayLike, probabilities: ArrayLike, k: int
) -> torch.Tensor:
    """The indices ``(min(k, number of mistakes),)`` of the wrong predictions the model was surest of.

    ``targets``, ``predictions``: ``(N,)`` class indices; ``probabilities``: ``(N, K)`` softmax outputs,
    the confidence of prediction ``i`` is ``probabilities[i, predictions[i]]``. Most confident first.
    """
    t, p = torch.as_tensor(_to_numpy(targets)), torch.as_tensor(_to_numpy(predictions)).long()
    probs = torch.as_tensor(_to_numpy(probabilities))
    if not t.shape == p.shape == probs.shape[:1]:
        raise ValueError(
            f"most_confident_mistakes expects targets and predictions of shape ({len(probs)},), "
            f"got shapes {tuple(t.shape)} and {tuple(p.shape)}"
        )
    wrong = (p != t).nonzero().flatten()
    order = torch.sort(probs[wrong, p[wrong]], descending=True, stable=True).indices  # ties: in order
    return wrong[order[:k]]


def plot_most_confident_mistakes(
    images: ArrayLike,
    targets: ArrayLike,
    predictions: ArrayLike,
    probabilities: ArrayLike,
    classes: Sequence[str],
    *,
    k: int = 9,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    ncols: int | None = None,
    title: str | None = None,
) -> Figure:
    """Show the ``k`` wrong predictions the model was surest of, titled ``"predicted p=0.97 / true"``.

    These are the examples to look at first: a confident mistake is often a mislabelled
    image, an ambiguous one, or a pattern the model has learned wrongly.

    Args:
        images: ``(N, ...)`` in any layout :func:`plot_image_grid` takes (``mean``, ``std`` as there).
        targets, predictions, probabilities: ``(N,)``, ``(N,)``, ``(N, K)``; ``classes``: ``K`` names.
        ncols: images per row (default: a square-ish grid).
    """
    indices = most_confident_mistakes(targets, predictions, probabilities, k)
    probs, t, p = _to_numpy(probabilities), _to_numpy(targets), _to_numpy(predictions)
    if len(images) != len(probs):
        raise ValueError(f"plot_most_confident_mistakes: {len(images)} images but {len(probs)} probabilities")
    if len(indices) == 0:
        fig = new_figure((3.0, 1.0))
        fig.text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=14)
        return fig
    if isinstance(images, torch.Tensor):
        chosen = images[indices.to(images.device)]  # index first: only k images leave the GPU
    else:
        chosen = np.asarray(images)[indices.numpy()]
    pixels, show = _images_for_display(chosen, mean, std, "plot_most_confident_mistakes")
    titles = [f"{classes[p[i]]} p={probs[i, p[i]]:.2f} / {classes[t[i]]}" for i in indices.tolist()]
    mistakes = f"the {len(indices)} most confident of {int((p != t).sum())} mistakes"
    title = f"{mistakes}\n(predicted p=probability / true)" if title is None else title
    return _image_grid(pixels, show, titles, ncols or math.ceil(math.sqrt(len(indices))), 1.8, title)


# --- training -------------------------------------------------------------------------------------
def plot_history(histories: Any, *, title: str | None = None) -> Figure:
    """Plot training curves against the epoch: the loss, and the accuracy where the rows have one.

    Each run has its own colour: training solid, validation dashed (when the run has validation
    data). Watch the gap: validation loss rising while training loss falls means overfitting.

    Args:
        histories: one :class:`course_utils.training.History` (or any object with ``.rows``, one
            dict per epoch, and ``.name``), or a dict name -> history to compare runs. Rows are read
            at ``epoch``, ``train_loss``, ``val_loss``, ``train_accuracy``, ``val_accuracy``
            (fractions, shown in percent; a regression run has no accuracy, so no accuracy panel).
        title: a title above the panels (default: the name of a single run).
    """
    runs = list(histories.items()) if isinstance(histories, Mapping) else [(histories.name, histories)]
    for name, history in runs:
        if not history.rows:
            raise ValueError(f"plot_history: history {name!r} has no epochs yet")
    has_accuracy = any("train_accuracy" in row for _, history in runs for row in history.rows)
    metrics = ("loss", "accuracy") if has_accuracy else ("loss",)

    fig = new_figure((4.5 * len(metrics), 3.5))
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics):
        scale = 100.0 if metric == "accuracy" else 1.0
        for colour, (name, history) in enumerate(runs):
            epochs = [row["epoch"] for row in history.rows]
            for kind, prefix, linestyle in (("train", "train", "-"), ("validation", "val", "--")):
                values = [row.get(f"{prefix}_{metric}", math.nan) for row in history.rows]
                values = np.array(values, dtype=float) * scale
                if np.isnan(values).all():
                    continue  # no validation data in this run
                label = f"{name} {kind}" if len(runs) > 1 else kind
                ax.plot(epochs, values, linestyle, color=f"C{colour % 10}", marker=".", label=label)
        ax.set(xlabel="epoch", ylabel=f"{metric} (%)" if scale == 100 else metric, title=metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title or (runs[0][0] if len(runs) == 1 else ""))
    return fig


def plot_lr_schedule(
    lrs: ArrayLike, *, steps_per_epoch: int | None = None, title: str | None = None
) -> Figure:
    """Plot a learning-rate schedule: the learning rate used at each optimiser step.

    Args:
        lrs: ``(S,)`` the rate of each step, e.g. ``[lr_at(step) for step in range(S)]`` with
            ``lr_at`` from :func:`course_utils.training.learning_rate_schedule`.
        steps_per_epoch: with it the x axis counts epochs, without it steps.
    """
    values = _to_numpy(lrs).astype(float)
    ax = new_figure((6.0, 3.5)).subplots()
    ax.plot(np.arange(len(values)) / (steps_per_epoch or 1), values)
    ax.set(xlabel="epoch" if steps_per_epoch else "step", ylabel="learning rate")
    ax.set_title(title or "learning-rate schedule")
    ax.grid(alpha=0.3)
    return ax.figure


# --- evaluation -----------------------------------------------------------------------------------
def plot_confusion_matrix(
    matrix: ArrayLike, classes: Sequence[str], *, normalize: bool = False, title: str | None = None
) -> Figure:
    """Draw a confusion matrix: how often each true class was predicted as each class.

    ``matrix[i, j]`` counts the examples of **true** class ``i`` (row) **predicted** as class ``j``
    (column): the diagonal holds the correct predictions, a dark cell off it two classes the model
    mixes up. Up to 30 classes, each cell shows its number.

    Args:
        matrix: ``(K, K)`` integer counts; ``classes`` the ``K`` class names.
        normalize: show each row in percent of its sum: the diagonal is then each class's recall.
    """
    values, size = _to_numpy(matrix), len(classes)
    if values.shape != (size, size):
        raise ValueError(f"plot_confusion_matrix: {size} classes but a matrix of shape {tuple(values.shape)}")
    if normalize:
        totals = values.sum(axis=1, keepdims=True).astype(float)
        values = values / np.where(totals > 0, totals, 1.0)

    side = min(max(4.0, 0.45 * size + 2.0), 16.0)
    ax = new_figure((side + 0.5, side)).subplots()
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=float(values.max()) or 1.0, interpolation="nearest")
    if size <= 30:  # beyond that the numbers are too small to read
        for (row, col), value in np.ndenumerate(values):
            red, green, blue, _ = image.cmap(image.norm(value))
            colour = "white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black"  # on dark cells
            text = f"{value:.0%}" if normalize else f"{value:g}"
            ax.text(col, row, text, ha="center", va="center", color=colour, fontsize=min(10.0, 200.0 / size))
    _set_class_ticks(ax, classes)
    ax.set(yticks=range(size), yticklabels=classes, xlabel="predicted class", ylabel="true class")
    ax.set_title(title or ("confusion matrix (% of each true class)" if normalize else "confusion matrix"))
    return ax.figure


def plot_per_class_accuracy(
    accuracy: ArrayLike, classes: Sequence[str], *, title: str | None = None
) -> Figure:
    """A bar chart of the accuracy on each class, in percent, with a dashed line at their mean.

    Args:
        accuracy: ``(K,)`` fractions in [0, 1], one per class (``nan``: no examples, no bar).
        classes: the ``K`` class names.
    """
    values, size = _to_numpy(accuracy).astype(float), len(classes)
    if values.shape != (size,):
        raise ValueError(f"plot_per_class_accuracy: {size} classes but accuracies of shape {values.shape}")
    if np.nanmax(values, initial=0) > 1:
        raise ValueError(f"plot_per_class_accuracy expects fractions in [0, 1], got {np.nanmax(values):g}")
    percent = values * 100
    ax = new_figure((min(max(5.0, 0.5 * size + 1.5), 16.0), 4.0)).subplots()
    bars = ax.bar(range(size), percent, color="C0")
    if size <= 30:
        ax.bar_label(bars, ["" if math.isnan(v) else f"{v:.0f}" for v in percent], fontsize=8, padding=2)
    if not np.isnan(percent).all():
        mean = float(np.nanmean(percent))
        ax.axhline(mean, color="gray", linestyle="--", linewidth=1, label=f"mean over classes {mean:.1f}%")
        ax.legend(loc="upper right", fontsize="small")
    _set_class_ticks(ax, classes)
    ax.set(ylim=(0, 118), yticks=range(0, 101, 20), ylabel="accuracy (%)")  # room above 100% for the labels
    ax.set_title(title or "accuracy per class")
    ax.grid(axis="y", alpha=0.3)
    return ax.figure


# --- inside the network ---------------------------------------------------------------------------
def plot_filters(weight: ArrayLike | nn.Module, *, ncols: int = 8, title: str | None = None) -> Figure:
    """Show the filters (kernels) of a convolution layer, one small image per output channel.

    With 3 input channels (a first layer on RGB images) each filter is drawn in colour, min-max
    scaled on its own. Otherwise each is the mean over its input channels (the filter itself for
    MNIST) on one scale for all: red positive, blue negative, white 0.

    Args:
        weight: ``(C_out, C_in, k, k)`` a convolution weight, or the ``nn.Conv2d`` itself.
    """
    w = _to_numpy(weight.weight if isinstance(weight, nn.Module) else weight)
    if w.ndim != 4:
        raise ValueError(f"plot_filters expects a weight of shape (C_out, C_in, k, k), got shape {w.shape}")
    out_channels, in_channels, height, width = w.shape
    if in_channels == 3:
        pixels, show = _images_for_display(w, None, None, "plot_filters")  # min-max scaled, (C_out, k, k, 3)
        shown = "RGB, each scaled to [0, 1]"
    else:
        pixels = w.mean(axis=1)
        limit = float(np.abs(pixels).max()) or 1.0
        show = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
        shown = "the weights" if in_channels == 1 else f"mean over {in_channels} input channels"
    title = title or f"{out_channels} filters of {height}×{width} ({shown})"
    fig = _image_grid(pixels, show, [str(i) for i in range(out_channels)], ncols, 1.0, title)
    if in_channels != 3:
        fig.colorbar(fig.axes[0].images[0], ax=fig.axes, shrink=0.8, label="weight")
    return fig


def plot_feature_maps(
    model: nn.Module,
    x: torch.Tensor,
    layer: nn.Module | str,
    *,
    ncols: int = 8,
    title: str | None = None,
) -> Figure:
    """Show what one layer of a network computes for one image: its first 16 output channels.

    A forward hook on ``layer`` catches its output while ``model(x)`` runs in eval mode without
    gradients; the model is left in the mode it was in. Each map has its own colour scale (yellow
    high, dark blue low), so a map of one colour is constant (e.g. all zero after a ReLU).

    Args:
        x: one input image ``(C, H, W)`` or ``(1, C, H, W)``, normalised as in training.
        layer: a submodule of ``model``, or its name in ``model.named_modules()`` (``"conv1"``).
    """
    caller, modules = "plot_feature_maps", dict(model.named_modules())
    if isinstance(layer, str):
        if not layer or layer not in modules:
            names = ", ".join(repr(name) for name in list(modules)[1:13])  # [0] is "", the model itself
            raise ValueError(f"{caller}: {layer!r} is not a submodule; valid names include {names}")
        module, name = modules[layer], layer
    else:
        module, name = layer, next((n for n, m in modules.items() if m is layer), type(layer).__name__)
    x = torch.as_tensor(x)
    x = x.unsqueeze(0) if x.ndim == 3 else x
    if x.ndim != 4 or len(x) != 1:
        raise ValueError(f"{caller} expects one image, (C, H, W) or (1, C, H, W), got shape {tuple(x.shape)}")
    parameter = next(model.parameters())
    outputs = []
    hook = module.register_forward_hook(lambda _module, _inputs, output: outputs.append(output))
    with hook, eval_mode(model), torch.no_grad():  # the hook is removed when the block ends
        model(x.to(parameter.device, parameter.dtype))
    if not outputs:
        raise RuntimeError(f"{caller}: {name!r} was not called during model(x); is it part of the model?")
    if not isinstance(outputs[0], torch.Tensor) or outputs[0].ndim != 4:
        raise ValueError(f"{caller}: {name!r} gives no (1, C, H, W) feature map; choose a convolution layer")
    channels, height, width = outputs[0].shape[1:]
    maps = _to_numpy(outputs[0][0, :16])
    title = title or f"{name}: {len(maps)} of {channels} feature maps, {height}×{width}"
    return _image_grid(maps, {"cmap": "viridis"}, [str(i) for i in range(len(maps))], ncols, 1.3, title)


# --- comparing models -----------------------------------------------------------------------------
def plot_curves(
    curves: Mapping[str, ArrayLike],
    *,
    x: ArrayLike | Sequence[str] | None = None,
    xlabel: str,
    ylabel: str,
    percent: bool = False,
    log: bool = False,
    markers: bool = True,
    title: str | None = None,
) -> Figure:
    """Plot several named curves against one x: accuracy against pixel shift, a gradient norm per step.

    Args:
        curves: name -> ``(P,)`` values, one line per name, in a legend.
        x: ``(P,)`` the x values all curves share; or ``P`` strings, the tick labels of the
            positions ``0 .. P-1`` (e.g. ``["original", "permuted"]``); None: ``0 .. P-1``.
        percent: the values are fractions (accuracies), draw them in percent; ``log``: a log y axis.
        markers: a marker on every point; turn off for long curves.
    """
    lines = {name: _to_numpy(values).astype(float) for name, values in curves.items()}
    named_x = x is not None and len(x) > 0 and all(isinstance(value, str) for value in x)
    if x is None:
        x = np.arange(max(map(len, lines.values()), default=0))
    positions = np.arange(len(x)) if named_x else _to_numpy(x).astype(float)
    ax = new_figure((6.0, 4.0)).subplots()
    for i, (name, line) in enumerate(lines.items()):
        if len(line) != len(positions):
            raise ValueError(
                f"plot_curves: curve {name!r} has {len(line)} values but there are {len(positions)} x values"
            )
        style = {"marker": "o", "markersize": 4} if markers else {}
        ax.plot(positions, line * 100 if percent else line, color=f"C{i % 10}", label=name, **style)
    if named_x:
        ax.set_xticks(positions, list(x))
    ax.set_yscale("log" if log else "linear")
    ylabel = f"{ylabel} (%)" if percent and "%" not in ylabel else ylabel
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or "")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax.figure
