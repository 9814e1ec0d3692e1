"""The figures a learner needs: images with their labels, training curves, mistakes, filters.

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show()``.
In a notebook the figure appears as the cell's value::

    plot_history(history)                   # the last line of a cell: the figure shows

and in a script you save it: ``plot_history(history).savefig("history.png")``.

The figures are built without pyplot (``Figure()``, not ``plt.subplots()``), so they work
headless (papermill, CI, the Agg backend), never pile up in pyplot's list of open figures
and need no ``plt.close()``: a figure is freed like any other object once nothing refers
to it. (A pyplot figure returned from a notebook cell would also be shown a second time
by the inline backend at the end of the cell.)

Inputs may be torch tensors (on any device) or numpy arrays. Images come in two layouts:

* raw dataset pixels, ``uint8`` ``(N, H, W)`` (MNIST) or ``(N, H, W, 3)`` (CIFAR-10),
  drawn as they are;
* model inputs, ``float`` ``(N, C, H, W)`` with ``C`` = 1 or 3. Pass the ``mean`` and
  ``std`` the data were normalised with to undo the normalisation (``x * std + mean``,
  then clipped to [0, 1]). Without them each image is min-max scaled to [0, 1] on its own
  (to draw images that are already in [0, 1] unchanged, pass ``mean=0, std=1``).

Float ``(N, H, W)`` (grayscale) and ``(N, H, W, C)``, and ``uint8`` ``(N, C, H, W)``, are
recognised too.
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
from course_utils.history import COLUMNS, History

__all__ = [
    "most_confident_mistakes",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_feature_maps",
    "plot_filters",
    "plot_history",
    "plot_image_grid",
    "plot_lr_schedule",
    "plot_model_comparison",
    "plot_most_confident_mistakes",
    "plot_per_class_accuracy",
]

#: What the functions accept as numbers: a tensor, a numpy array or a list.
ArrayLike = torch.Tensor | np.ndarray | Sequence[Any]

#: Class names longer than this are written at a slant under an axis, so they do not overlap.
_LONG_NAME = 3


# --- figures and inputs ---------------------------------------------------------------------------


class _NotebookFigure(Figure):
    """A plain matplotlib ``Figure`` that Jupyter can always show as a PNG.

    Jupyter shows a figure made without pyplot only once matplotlib's inline backend has
    been loaded, which happens the first time pyplot draws something. ``_repr_png_`` lets
    IPython show the figure even in a notebook that has not touched pyplot; where the
    inline backend is active, IPython uses the backend's own formatter instead.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()

    def __repr__(self) -> str:
        # "<Figure size 600x350 with 1 Axes>", like any matplotlib figure, in notebook outputs.
        return super().__repr__().replace(type(self).__name__, "Figure", 1)


def new_figure(figsize: tuple[float, float], *, layout: str | None = "constrained") -> Figure:
    """A blank figure that a notebook shows as its cell's value, with or without pyplot.

    Every function here returns this kind of figure: built without pyplot (so it works
    headless and is never shown twice) and able to render itself as a PNG in any Jupyter
    front end. Draw on it with ``fig.subplots(...)``.

    Args:
        figsize: (width, height) in inches.
        layout: matplotlib's layout engine, ``"constrained"`` by default; ``None`` for
            diagrams that place everything themselves.
    """
    return _NotebookFigure(figsize=figsize, layout=layout)


def _new_figure(figsize: tuple[float, float]) -> Figure:
    return new_figure(figsize)


def _to_numpy(x: ArrayLike) -> np.ndarray:
    """A numpy copy or view of a tensor (any device, any float type), array or list."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point() and x.dtype != torch.float64:
            x = x.float()  # numpy has no bfloat16; float16 is slow to draw
        return x.numpy()
    return np.asarray(x)


def _to_vector(x: ArrayLike, n: int | None, what: str, caller: str) -> np.ndarray:
    """A 1-D float array, checked to have ``n`` entries when ``n`` is given."""
    array = _to_numpy(x).astype(float)
    if array.ndim != 1 or (n is not None and len(array) != n):
        expected = f"({n},)" if n is not None else "(N,)"
        raise ValueError(f"{caller} expects {what} of shape {expected}, got shape {tuple(array.shape)}")
    return array


def _channel_values(value: float | ArrayLike, channels: int, what: str, caller: str) -> np.ndarray:
    array = _to_numpy(value).astype(float).reshape(-1)
    if array.size == 1:
        array = np.repeat(array, channels)
    if array.size != channels:
        raise ValueError(f"{caller}: {what} has {array.size} values but the images have {channels} channels")
    return array


def _images_for_display(
    images: ArrayLike, mean: Any, std: Any, caller: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Turn a batch of images into what ``imshow`` draws, plus the ``imshow`` arguments.

    Returns ``(N, H, W)`` (grayscale) or ``(N, H, W, 3)`` (RGB), either ``uint8`` in
    [0, 255] (raw pixels, unchanged) or float in [0, 1].
    """
    array = _to_numpy(images)
    is_float = np.issubdtype(array.dtype, np.floating)
    if not (is_float or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{caller} expects uint8 or float images, got dtype {array.dtype}")
    shapes = "uint8 (N, H, W) or (N, H, W, 3), or float (N, C, H, W) with C = 1 or 3"
    if array.ndim == 3:  # a batch of grayscale images without a channel axis
        array = array[..., None]
    elif array.ndim == 4:
        first, last = array.shape[1] in (1, 3), array.shape[-1] in (1, 3)
        if not (first or last):
            raise ValueError(f"{caller} expects images {shapes}, got shape {tuple(array.shape)}")
        # Model inputs are channels-first, dataset pixels channels-last; prefer each one's layout.
        if first and (is_float or not last):
            array = array.transpose(0, 2, 3, 1)
    else:
        raise ValueError(f"{caller} expects images {shapes}, got shape {tuple(array.shape)}")
    if len(array) == 0:
        raise ValueError(f"{caller}: there are no images to plot")
    channels = array.shape[-1]

    if not is_float:
        if mean is not None or std is not None:
            raise ValueError(
                f"{caller}: mean and std undo the normalisation of float images; "
                f"{array.dtype} images are raw pixels already, pass them without mean and std"
            )
        if array.min() < 0 or array.max() > 255:
            raise ValueError(f"{caller}: integer images must be pixels in [0, 255]")
        array, vmax = array.astype(np.uint8, copy=False), 255
    else:
        if (mean is None) != (std is None):
            raise ValueError(f"{caller}: pass both mean and std (or neither)")
        if mean is not None:
            m = _channel_values(mean, channels, "mean", caller)
            s = _channel_values(std, channels, "std", caller)
            array = np.clip(array * s + m, 0.0, 1.0)
        else:
            low = array.min(axis=(1, 2, 3), keepdims=True)
            span = array.max(axis=(1, 2, 3), keepdims=True) - low
            array = (array - low) / np.where(span > 0, span, 1.0)  # a constant image becomes black
        vmax = 1
    if channels == 1:
        return array[..., 0], {"cmap": "gray", "vmin": 0, "vmax": vmax}
    return array, {}


def _label_names(
    values: ArrayLike, classes: Sequence[str] | None, n: int, what: str, caller: str
) -> tuple[list[str], np.ndarray]:
    """The display names of ``n`` labels (``classes[label]``, or the label itself)."""
    array = _to_numpy(values)
    if array.shape != (n,):
        raise ValueError(f"{caller}: {what} must have one entry per image, shape ({n},), got {array.shape}")
    if classes is None:
        return [str(v) for v in array.tolist()], array
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"{caller}: with classes given, {what} must be class indices, got dtype {array.dtype}"
        )
    if array.min() < 0 or array.max() >= len(classes):
        raise ValueError(
            f"{caller}: {what} must be class indices in [0, {len(classes)}), "
            f"got values from {array.min()} to {array.max()}"
        )
    return [str(classes[i]) for i in array.tolist()], array


def _draw_image_grid(
    fig: Figure,
    images: np.ndarray,
    ncols: int,
    imshow_kwargs: dict[str, Any],
    titles: Sequence[str] | None = None,
    wrong: Sequence[bool] | None = None,
    fontsize: float = 8,
) -> list[Axes]:
    """Draw one image per axes in a grid with ``ncols`` columns; return the image axes.

    Axes left over in the last row are turned off. A ``wrong`` image gets a red title and a
    red frame.
    """
    n = len(images)
    nrows = math.ceil(n / ncols)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    for i, ax in enumerate(axes[:n]):
        ax.imshow(images[i], interpolation="nearest", **imshow_kwargs)
        ax.set_xticks([])
        ax.set_yticks([])
        is_wrong = wrong is not None and bool(wrong[i])
        if titles is not None:
            ax.set_title(titles[i], fontsize=fontsize, **({"color": "red"} if is_wrong else {}))
        for spine in ax.spines.values():
            if is_wrong:
                spine.set_edgecolor("red")
                spine.set_linewidth(2.5)
            else:
                spine.set_visible(False)
    return list(axes[:n])


def _grid_figure(n: int, ncols: int, size: float, titled: bool, suptitle: str | None) -> tuple[Figure, int]:
    """An empty figure sized for ``n`` images of ``size`` inches, and the number of columns."""
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    height = nrows * (size + (0.3 if titled else 0.0)) + (0.4 if suptitle else 0.0)
    width = max(ncols * size, 3.0) if suptitle else ncols * size  # room for the title
    fig = _new_figure((width, height))
    if suptitle:
        fig.suptitle(suptitle)
    return fig, ncols


def _set_class_ticks(ax: Axes, axis: str, classes: Sequence[str], fontsize: float | None = None) -> None:
    names = [str(c) for c in classes]
    positions = range(len(names))
    if axis == "y":
        ax.set_yticks(positions, names, fontsize=fontsize)
    elif max((len(name) for name in names), default=0) > _LONG_NAME:
        ax.set_xticks(positions, names, fontsize=fontsize, rotation=45, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(positions, names, fontsize=fontsize)


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
        images: ``uint8`` ``(N, H, W)`` or ``(N, H, W, 3)`` raw dataset pixels, or ``float``
            ``(N, C, H, W)`` model inputs with ``C`` = 1 or 3 (see the module docstring for
            how they are scaled for display). Grayscale images are drawn with the ``"gray"``
            colormap.
        labels: ``(N,)`` true class indices (or any labels, when ``classes`` is None).
        classes: the class names; ``classes[label]`` becomes the title.
        predictions: ``(N,)`` predicted class indices. With ``labels`` too, each title reads
            ``"predicted (true)"`` and wrong predictions get a red title and a red frame.
        mean, std: per-channel mean and standard deviation that normalised float images
            (e.g. ``(0.1307,)`` and ``(0.3081,)`` for MNIST); the figure shows
            ``x * std + mean`` clipped to [0, 1]. Not allowed with ``uint8`` images.
        ncols: images per row (fewer if there are fewer images).
        title: a title above the grid.
        size: width and height of one image, in inches.

    Returns:
        The figure: one axes per image, in rows of ``ncols``, ticks hidden; the unused
        axes of the last row are turned off.

    Raises:
        ValueError: the images, labels or predictions have the wrong shape, or labels are
            not valid indices into ``classes``.
        TypeError: the images are neither integer nor float, or labels are not integers
            although ``classes`` is given.
    """
    caller = "plot_image_grid"
    pixels, imshow_kwargs = _images_for_display(images, mean, std, caller)
    n = len(pixels)
    titles: list[str] | None = None
    wrong: np.ndarray | None = None
    if labels is not None:
        titles, label_values = _label_names(labels, classes, n, "labels", caller)
    if predictions is not None:
        predicted, predicted_values = _label_names(predictions, classes, n, "predictions", caller)
        if titles is None:
            titles = predicted
        else:
            wrong = predicted_values != label_values
            titles = [f"{p} ({t})" for p, t in zip(predicted, titles)]
    fig, ncols = _grid_figure(n, ncols, size, titles is not None, title)
    _draw_image_grid(fig, pixels, ncols, imshow_kwargs, titles, wrong)
    return fig


def most_confident_mistakes(
    targets: ArrayLike, predictions: ArrayLike, probabilities: ArrayLike, k: int
) -> torch.Tensor:
    """The indices of the ``k`` wrong predictions the model was most sure of.

    The confidence of a prediction is the probability the model gave to the class it
    predicted, ``probabilities[i, predictions[i]]``.

    Args:
        targets: ``(N,)`` true class indices.
        predictions: ``(N,)`` predicted class indices (usually ``probabilities.argmax(1)``).
        probabilities: ``(N, K)`` softmax outputs.
        k: how many to return at most (fewer if there are fewer mistakes).

    Returns:
        A ``(min(k, number of mistakes),)`` long tensor of indices into the ``N`` examples,
        most confident first (ties in the original order).

    Raises:
        ValueError: the shapes do not fit together, or ``k`` is negative.
    """
    caller = "most_confident_mistakes"
    t = torch.as_tensor(_to_numpy(targets))
    p = torch.as_tensor(_to_numpy(predictions))
    probs = torch.as_tensor(_to_numpy(probabilities)).double()
    if probs.ndim != 2:
        raise ValueError(f"{caller} expects probabilities of shape (N, K), got shape {tuple(probs.shape)}")
    n, num_classes = probs.shape
    if t.shape != (n,) or p.shape != (n,):
        raise ValueError(
            f"{caller} expects targets and predictions of shape (N,) with N = len(probabilities) = {n}, "
            f"got shapes {tuple(t.shape)} and {tuple(p.shape)}"
        )
    if k < 0:
        raise ValueError(f"{caller}: k must not be negative, got {k}")
    if n and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"{caller}: predictions must be class indices in [0, {num_classes})")
    wrong = (p != t).nonzero().flatten()
    confidence = probs[wrong, p[wrong].long()]
    order = torch.sort(confidence, descending=True, stable=True).indices
    return wrong[order[:k]].long()


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
    """Show the ``k`` wrong predictions with the highest predicted probability.

    These are the examples to look at first: a confident mistake is often a mislabelled
    image, an ambiguous one, or a pattern the model has learned wrongly. Each title reads
    ``"predicted p=0.97 / true"``.

    Args:
        images: ``(N, ...)`` the images, in any layout :func:`plot_image_grid` takes.
        targets: ``(N,)`` true class indices.
        predictions: ``(N,)`` predicted class indices.
        probabilities: ``(N, K)`` softmax outputs; ``p`` is that of the predicted class.
        classes: the ``K`` class names.
        k: how many mistakes to show at most (all of them if there are fewer).
        mean, std: undo the normalisation of float images, as in :func:`plot_image_grid`.
        ncols: images per row; by default a square-ish grid.
        title: a title above the grid; by default it says how many mistakes there are.

    Returns:
        The figure; with no mistakes at all, a small figure that says "no mistakes".
        :func:`most_confident_mistakes` gives the indices of the images shown, in order.

    Raises:
        ValueError: the shapes do not fit together, or ``k`` < 1.
    """
    caller = "plot_most_confident_mistakes"
    if k < 1:
        raise ValueError(f"{caller}: k must be at least 1, got {k}")
    indices = most_confident_mistakes(targets, predictions, probabilities, k)
    probs = _to_numpy(probabilities)
    n = len(probs)
    if len(images) != n:
        raise ValueError(f"{caller}: got {len(images)} images but {n} rows of probabilities")
    if probs.shape[1] != len(classes):
        raise ValueError(
            f"{caller}: probabilities have {probs.shape[1]} columns but there are {len(classes)} classes"
        )
    if len(indices) == 0:
        fig = _new_figure((3.0, 1.0))
        fig.text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=14)
        return fig

    if isinstance(images, torch.Tensor):
        chosen = images[indices.to(images.device)]  # index first: only k images leave the GPU
    else:
        chosen = np.asarray(images)[indices.numpy()]
    pixels, imshow_kwargs = _images_for_display(chosen, mean, std, caller)
    t = _to_numpy(targets)
    p = _to_numpy(predictions)
    titles = [
        f"{classes[int(p[i])]} p={probs[i, int(p[i])]:.2f} / {classes[int(t[i])]}" for i in indices.tolist()
    ]
    number_wrong = int((p != t).sum())
    if title is None:
        title = (
            f"the {len(indices)} most confident of {number_wrong} mistakes\n(predicted p=probability / true)"
        )
    columns = ncols if ncols is not None else math.ceil(math.sqrt(len(indices)))
    fig, columns = _grid_figure(len(indices), columns, 1.8, True, title)
    _draw_image_grid(fig, pixels, columns, imshow_kwargs, titles)
    return fig


# --- training ---------------------------------------------------------------------------------


def _named_histories(
    histories: History | Mapping[str, History] | Sequence[History],
) -> list[tuple[str, History]]:
    if isinstance(histories, History):
        pairs = [(histories.name, histories)]
    elif isinstance(histories, Mapping):
        pairs = [(str(name), h) for name, h in histories.items()]
    elif isinstance(histories, Sequence):
        pairs = [
            (h.name if isinstance(h, History) and h.name else f"run {i + 1}", h)
            for i, h in enumerate(histories)
        ]
    else:
        raise TypeError(
            f"plot_history expects a History, a dict or a list of them, got {type(histories).__name__}"
        )
    if not pairs:
        raise ValueError("plot_history: there are no histories to plot")
    for name, history in pairs:
        if not isinstance(history, History):
            raise TypeError(f"plot_history: {name!r} is a {type(history).__name__}, not a History")
        if len(history) == 0:
            raise ValueError(f"plot_history: history {name!r} has no epochs yet")
    return pairs


def plot_history(
    histories: History | Mapping[str, History] | Sequence[History],
    metrics: str | Sequence[str] = ("loss", "accuracy"),
    *,
    title: str | None = None,
) -> Figure:
    """Plot training curves: one subplot per metric, epochs on the x axis.

    Each run has its own colour: training solid, validation dashed (a validation line is
    left out when the run had no validation data, i.e. the column is all ``nan``). The gap
    between the two lines is what to watch: validation loss rising while training loss
    falls means the model is overfitting.

    Args:
        histories: one :class:`~course_utils.history.History`, a ``dict`` name -> History,
            or a list of Histories (labelled by their ``.name``, or "run 1", "run 2", ...).
        metrics: ``"loss"`` and/or ``"accuracy"`` (each draws ``train_*`` and ``val_*``),
            or any other History column such as ``"lr"`` or ``"images_per_second"``.
            Accuracies are shown in percent.
        title: a title above the subplots (default: the name of a single named run).

    Returns:
        The figure, with one axes per metric in the order given.

    Raises:
        ValueError: a metric is unknown or a history is empty.
    """
    pairs = _named_histories(histories)
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    allowed = ("loss", "accuracy") + tuple(c for c in COLUMNS if c != "epoch")
    for metric in metrics:
        if metric not in allowed:
            raise ValueError(f"plot_history: unknown metric {metric!r}; choose from {allowed}")
    if not metrics:
        raise ValueError("plot_history: give at least one metric")

    fig = _new_figure((4.5 * len(metrics), 3.5))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    several = len(pairs) > 1
    for ax, metric in zip(axes, metrics):
        if f"train_{metric}" in COLUMNS:
            series = [("train", f"train_{metric}", "-"), ("validation", f"val_{metric}", "--")]
        else:
            series = [("", metric, "-")]
        scale = 100.0 if "accuracy" in metric else 1.0
        for run, (name, history) in enumerate(pairs):
            epochs = history.column("epoch")
            for kind, column, linestyle in series:
                values = np.array(history.column(column)) * scale
                if np.isnan(values).all():
                    continue  # e.g. a run without validation data
                label = " ".join(part for part in (name if several else "", kind) if part) or name or column
                ax.plot(epochs, values, linestyle=linestyle, color=f"C{run % 10}", marker=".", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{metric} (%)" if scale == 100 else metric)
        ax.set_title(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    if title is None and not several and pairs[0][0]:
        title = pairs[0][0]
    if title:
        fig.suptitle(title)
    return fig


def plot_lr_schedule(
    lrs: ArrayLike, *, steps_per_epoch: int | None = None, title: str | None = None
) -> Figure:
    """Plot a learning-rate schedule: the learning rate used at each optimiser step.

    Args:
        lrs: ``(S,)`` the learning rate of each of ``S`` steps, e.g.
            ``[lr_at(step) for step in range(S)]`` with ``lr_at`` from
            :func:`course_utils.training.learning_rate_schedule`.
        steps_per_epoch: with it, the x axis counts epochs (step ``i`` is at
            ``i / steps_per_epoch``); without it, steps.
        title: the axes title (default "learning-rate schedule").

    Returns:
        The figure, with one axes and one line.

    Raises:
        ValueError: ``lrs`` is empty or not 1-D, or ``steps_per_epoch`` < 1.
    """
    values = _to_vector(lrs, None, "lrs", "plot_lr_schedule")
    if len(values) == 0:
        raise ValueError("plot_lr_schedule: lrs is empty")
    steps = np.arange(len(values))
    fig = _new_figure((6.0, 3.5))
    ax = fig.subplots()
    if steps_per_epoch is not None:
        if steps_per_epoch < 1:
            raise ValueError(f"plot_lr_schedule: steps_per_epoch must be at least 1, got {steps_per_epoch}")
        ax.plot(steps / steps_per_epoch, values)
        ax.set_xlabel("epoch")
    else:
        ax.plot(steps, values)
        ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(title or "learning-rate schedule")
    ax.grid(alpha=0.3)
    return fig


# --- evaluation -----------------------------------------------------------------------------------


def plot_confusion_matrix(
    matrix: ArrayLike,
    classes: Sequence[str],
    *,
    normalize: bool = False,
    title: str | None = None,
    annotate: bool | None = None,
) -> Figure:
    """Draw a confusion matrix: how often each true class was predicted as each class.

    ``matrix[i, j]`` counts the examples of **true** class ``i`` (row) that the model
    **predicted** as class ``j`` (column); the diagonal holds the correct predictions. A
    bright cell off the diagonal is a pair of classes the model mixes up.

    Args:
        matrix: ``(K, K)`` integer counts, rows = true class, columns = predicted class.
        classes: the ``K`` class names, used as tick labels (slanted when long).
        normalize: divide each row by its sum, so a cell is the fraction of the true class
            predicted as that column (the diagonal is then each class's recall) and the
            numbers are shown in percent. A row without examples stays 0.
        title: the axes title (default "confusion matrix").
        annotate: write the number in each cell (white on dark cells). By default only when
            ``K`` <= 30; beyond that the numbers are too small to read.

    Returns:
        The figure, with one axes: the matrix as an image (``"Blues"`` colormap), predicted
        class on the x axis, true class on the y axis.

    Raises:
        ValueError: ``matrix`` is not ``(K, K)`` with ``K = len(classes)``.
    """
    counts = _to_numpy(matrix)
    size = len(classes)
    if counts.ndim != 2 or counts.shape != (size, size):
        raise ValueError(
            f"plot_confusion_matrix expects a square (K, K) matrix with K = len(classes) = {size}, "
            f"got shape {tuple(counts.shape)}"
        )
    if normalize:
        totals = counts.sum(axis=1, keepdims=True).astype(float)
        values = counts / np.where(totals > 0, totals, 1.0)
    else:
        values = counts
    if annotate is None:
        annotate = size <= 30

    side = min(max(4.0, 0.45 * size + 2.0), 16.0)
    fig = _new_figure((side + 0.5, side))
    ax = fig.subplots()
    vmax = float(values.max()) if values.size and values.max() > 0 else 1.0
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax, interpolation="nearest")
    if annotate:
        fontsize = max(5.0, min(10.0, 200.0 / max(size, 1)))
        for (row, col), value in np.ndenumerate(values):
            if normalize:
                text = f"{value:.0%}"
            elif float(value).is_integer():
                text = str(int(value))
            else:
                text = f"{value:.3g}"
            red, green, blue, _ = image.cmap(image.norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            color = "white" if dark else "black"
            ax.text(col, row, text, ha="center", va="center", color=color, fontsize=fontsize)
    _set_class_ticks(ax, "x", classes)
    _set_class_ticks(ax, "y", classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title or ("confusion matrix (% of each true class)" if normalize else "confusion matrix"))
    return fig


def plot_per_class_accuracy(
    accuracy: ArrayLike, classes: Sequence[str], *, title: str | None = None
) -> Figure:
    """A bar chart of the accuracy on each class, in percent, with the mean over classes.

    Args:
        accuracy: ``(K,)`` fractions in [0, 1], one per class (``nan`` for a class without
            examples: no bar).
        classes: the ``K`` class names, used as tick labels.
        title: the axes title (default "accuracy per class").

    Returns:
        The figure, with one axes: ``K`` bars of height ``100 * accuracy``, each labelled
        with its value, and a dashed line at the mean over classes.

    Raises:
        ValueError: ``accuracy`` is not ``(K,)`` with ``K = len(classes)``, or holds values
            outside [0, 1] (percentages).
    """
    caller = "plot_per_class_accuracy"
    values = _to_vector(accuracy, len(classes), "one accuracy per class", caller)
    known = values[~np.isnan(values)]
    if known.size and (known.min() < 0 or known.max() > 1):
        raise ValueError(f"{caller} expects fractions in [0, 1], got values up to {known.max():g}")
    percent = values * 100
    fig = _new_figure((min(max(5.0, 0.5 * len(classes) + 1.5), 16.0), 4.0))
    ax = fig.subplots()
    bars = ax.bar(range(len(classes)), percent, color="C0")
    if len(classes) <= 30:
        texts = ["" if math.isnan(v) else f"{v:.0f}" for v in percent]
        ax.bar_label(bars, labels=texts, fontsize=8, padding=2)
    if known.size:
        mean = float(known.mean()) * 100
        ax.axhline(mean, color="gray", linestyle="--", linewidth=1, label=f"mean over classes {mean:.1f}%")
        ax.legend(loc="upper right", fontsize="small")
    _set_class_ticks(ax, "x", classes)
    ax.set_ylim(0, 118)  # room above 100% for the bar labels and the legend
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "accuracy per class")
    ax.grid(axis="y", alpha=0.3)
    return fig


# --- inside the network ---------------------------------------------------------------------------


def plot_filters(weight: ArrayLike | nn.Module, *, ncols: int = 8, title: str | None = None) -> Figure:
    """Show the filters (kernels) of a convolution layer, one small image per output channel.

    * With 3 input channels (a first layer on RGB images) each filter is drawn in colour,
      min-max scaled to [0, 1] on its own: it shows the colour and edge pattern it reacts to.
    * Otherwise each filter is drawn as the **mean over its input channels** (for one input
      channel, e.g. MNIST, that is the filter itself), in a diverging colormap with one
      scale for all filters, symmetric around 0: red positive, blue negative, white 0.

    Args:
        weight: ``(C_out, C_in, k, k)`` a convolution weight (``conv.weight``), or the
            ``nn.Conv2d`` itself.
        ncols: filters per row.
        title: a title above the grid (default: what is shown).

    Returns:
        The figure, with one axes per output channel (titled with its index), unused axes
        turned off, and a colour bar for single-channel filters.

    Raises:
        ValueError: ``weight`` is not 4-D.
    """
    if isinstance(weight, nn.Module):
        weight = weight.weight
    w = _to_numpy(weight)
    if w.ndim != 4:
        raise ValueError(
            f"plot_filters expects a convolution weight of shape (C_out, C_in, k, k), got shape {w.shape}"
        )
    out_channels, in_channels, height, width = w.shape
    if in_channels == 3:
        low = w.min(axis=(1, 2, 3), keepdims=True)
        span = w.max(axis=(1, 2, 3), keepdims=True) - low
        pixels = ((w - low) / np.where(span > 0, span, 1.0)).transpose(0, 2, 3, 1)
        imshow_kwargs: dict[str, Any] = {}
        shown = "RGB, each scaled to [0, 1]"
    else:
        pixels = w.mean(axis=1)
        limit = float(np.abs(pixels).max()) or 1.0
        imshow_kwargs = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
        shown = "the weights" if in_channels == 1 else f"mean over {in_channels} input channels"
    if title is None:
        title = f"{out_channels} filters of {height}×{width} ({shown})"
    fig, ncols = _grid_figure(out_channels, ncols, 1.0, True, title)
    axes = _draw_image_grid(
        fig, pixels, ncols, imshow_kwargs, [str(i) for i in range(out_channels)], fontsize=7
    )
    if in_channels != 3:
        fig.colorbar(axes[-1].images[0], ax=fig.axes, shrink=0.8, label="weight")
    return fig


def _find_layer(model: nn.Module, layer: nn.Module | str) -> tuple[nn.Module, str]:
    names = [name for name, _ in model.named_modules() if name]
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if not layer or layer not in modules:
            few = ", ".join(repr(name) for name in names[:12]) + (", ..." if len(names) > 12 else "")
            raise ValueError(
                f"plot_feature_maps: {layer!r} is not a submodule of {type(model).__name__}; "
                f"valid names include {few or 'none (the model has no submodules)'}"
            )
        return modules[layer], layer
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return module, name or type(model).__name__
        raise ValueError(f"plot_feature_maps: the {type(layer).__name__} given is not part of the model")
    raise TypeError(
        f"plot_feature_maps: layer must be an nn.Module or a submodule's name, got {type(layer).__name__}"
    )


def plot_feature_maps(
    model: nn.Module,
    x: torch.Tensor,
    layer: nn.Module | str,
    *,
    max_maps: int = 16,
    ncols: int = 8,
    title: str | None = None,
) -> Figure:
    """Show what one layer of a network computes for one image: its output channels.

    A forward hook on ``layer`` catches the layer's output while ``model(x)`` runs in eval
    mode under ``torch.no_grad()``. Afterwards the hook is removed and every module's
    training mode is what it was before, even if the forward pass fails. Each map is
    drawn with its own colour scale (``"viridis"``: yellow high, dark blue low), so a map
    that is all one colour is constant (for example all zero after a ReLU).

    Args:
        model: the network.
        x: one input image, ``(C, H, W)`` or ``(1, C, H, W)``, normalised as in training;
            it is moved to the model's device.
        layer: a submodule of ``model``, or its dotted name from ``model.named_modules()``
            (e.g. ``"conv1"`` or ``"layer1.0"``).
        max_maps: show at most this many channels (the first ones).
        ncols: maps per row.
        title: a title above the grid (default: the layer's name and its output size).

    Returns:
        The figure, with one axes per channel shown, titled with the channel index.

    Raises:
        ValueError: ``layer`` is not a submodule (the message lists valid names), ``x`` is
            not one image, or the layer's output is not a ``(1, C', H', W')`` feature map.
        RuntimeError: the layer was not called during ``model(x)``.
    """
    caller = "plot_feature_maps"
    module, name = _find_layer(model, layer)
    if max_maps < 1:
        raise ValueError(f"{caller}: max_maps must be at least 1, got {max_maps}")
    x = torch.as_tensor(x)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"{caller} expects one image, (C, H, W) or (1, C, H, W), got shape {tuple(x.shape)}")
    parameter = next(model.parameters(), None)
    if parameter is not None:
        x = x.to(parameter.device, parameter.dtype if x.is_floating_point() else None)

    outputs: list[Any] = []

    def keep_output(_module: nn.Module, _inputs: Any, output: Any) -> None:
        outputs.append(output)

    handle = module.register_forward_hook(keep_output)
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        handle.remove()

    if not outputs:
        raise RuntimeError(f"{caller}: {name!r} was not called during model(x)")
    output = outputs[0]
    if not isinstance(output, torch.Tensor) or output.ndim != 4:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else f"a {type(output).__name__}"
        raise ValueError(
            f"{caller}: the output of {name!r} is {shape}, not a (1, C, H, W) feature map; "
            "choose a convolution layer or a block of them"
        )
    channels, height, width = output.shape[1:]
    maps = _to_numpy(output[0, :max_maps])
    if title is None:
        title = f"{name}: {len(maps)} of {channels} feature maps, {height}×{width}"
    fig, ncols = _grid_figure(len(maps), ncols, 1.3, True, title)
    _draw_image_grid(fig, maps, ncols, {"cmap": "viridis"}, [str(i) for i in range(len(maps))])
    return fig


# --- comparing models -----------------------------------------------------------------------------


def plot_model_comparison(
    names: Sequence[str],
    x: ArrayLike | None,
    y: ArrayLike,
    *,
    xlabel: str,
    ylabel: str,
    kind: str = "scatter",
    logx: bool = False,
    title: str | None = None,
    annotate: bool = True,
    percent: bool = False,
) -> Figure:
    """Compare models on one or two numbers, e.g. accuracy against parameters or time.

    Args:
        names: the ``M`` model names.
        x: ``(M,)`` the x value of each model (parameters, seconds, ...). Not used by
            ``kind="bar"``, where the names are on the x axis (pass ``None``).
        y: ``(M,)`` the y value of each model (accuracy, ...).
        xlabel, ylabel: the axis labels.
        kind: ``"scatter"`` (one point per model, labelled with its name) or ``"bar"`` (one
            bar per model, its value written on it).
        logx: a logarithmic x axis (scatter only), for numbers spanning orders of magnitude
            such as parameter counts.
        title: the axes title.
        annotate: write the names next to the points, or the values on the bars.
        percent: ``y`` holds fractions in [0, 1]; show them as percent (``100 * y``).

    Returns:
        The figure, with one axes.

    Raises:
        ValueError: unknown ``kind``, lengths that do not match, or ``logx`` with bars.
    """
    caller = "plot_model_comparison"
    names = [str(name) for name in names]
    values = _to_vector(y, len(names), "y (one value per name)", caller)
    if percent:
        values = values * 100
        if "%" not in ylabel:
            ylabel = f"{ylabel} (%)"
    fig = _new_figure((6.0, 4.0) if kind == "scatter" else (max(5.0, 0.8 * len(names) + 1.5), 4.0))
    ax = fig.subplots()
    if kind == "scatter":
        if x is None:
            raise ValueError(f"{caller}: kind='scatter' needs x values")
        positions = _to_vector(x, len(names), "x (one value per name)", caller)
        ax.scatter(positions, values, color="C0", zorder=3)
        if annotate:
            for name, px, py in zip(names, positions, values):
                ax.annotate(name, (px, py), xytext=(4, 4), textcoords="offset points", fontsize=9)
        if logx:
            ax.set_xscale("log")
        ax.margins(0.15)  # room for the names next to the outermost points
    elif kind == "bar":
        if logx:
            raise ValueError(f"{caller}: logx applies to kind='scatter' only")
        bars = ax.bar(range(len(names)), values, color="C0", zorder=3)
        _set_class_ticks(ax, "x", names)
        if annotate:
            texts = [f"{v:.1f}%" if percent else f"{v:.3g}" for v in values]
            ax.bar_label(bars, labels=texts, fontsize=9, padding=2)
            ax.margins(y=0.12)
    else:
        raise ValueError(f"{caller}: kind must be 'scatter' or 'bar', got {kind!r}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


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
        x: ``(P,)`` the x values all curves share; or ``P`` strings, which become the tick
            labels of the positions ``0 .. P-1`` (e.g. ``["original", "permuted"]``); None:
            ``0 .. P-1``.
        xlabel, ylabel: the axis labels (`` (%)`` is added to ``ylabel`` with ``percent``).
        percent: the values are fractions in [0, 1] (accuracies); draw ``100 * value``.
        log: a logarithmic y axis, for values spanning orders of magnitude (all must be > 0).
        markers: a marker on every point; turn off for long curves (hundreds of points).
        title: the axes title.

    Returns:
        The figure, with one axes and one line per curve.

    Raises:
        ValueError: no curves, curves of different lengths (or not the length of ``x``), or
            ``log`` with a value that is not positive.
    """
    caller = "plot_curves"
    if not curves:
        raise ValueError(f"{caller}: there are no curves to plot")
    lines = {name: _to_vector(values, None, f"curve {name!r}", caller) for name, values in curves.items()}
    length = len(next(iter(lines.values())))
    tick_labels = None
    if x is None:
        positions = np.arange(length)
    elif len(x) > 0 and all(isinstance(value, str) for value in x):
        tick_labels = list(x)
        positions = np.arange(len(tick_labels))
    else:
        positions = _to_vector(x, None, "x", caller)
    for name, line in lines.items():
        if len(line) != len(positions):
            raise ValueError(
                f"{caller}: curve {name!r} has {len(line)} values but there are {len(positions)} x values"
            )
        if log and not (line > 0).all():
            raise ValueError(f"{caller}: log=True needs positive values; curve {name!r} has {line.min():g}")
    fig = _new_figure((6.0, 4.0))
    ax = fig.subplots()
    for i, (name, line) in enumerate(lines.items()):
        shown = line * 100 if percent else line
        style = {"marker": "o", "markersize": 4} if markers else {}
        ax.plot(positions, shown, color=f"C{i % 10}", label=name, **style)
    if tick_labels is not None:
        ax.set_xticks(positions, tick_labels)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{ylabel} (%)" if percent and "%" not in ylabel else ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig
