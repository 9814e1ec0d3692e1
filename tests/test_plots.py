"""Tests for course_utils.plots: each figure must show the data it was given, not just draw.

The figures are inspected through their artists: ``ax.images[0].get_array()`` is what an
image shows, ``line.get_ydata()`` what a curve shows, ``ax.texts`` the numbers written on
a plot. Nothing needs a display (Agg backend).
"""

import io
import re
import warnings
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt  # only to check that no pyplot figure is left open
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from torch import nn

from course_utils.plots import (
    most_confident_mistakes,
    plot_confusion_matrix,
    plot_curves,
    plot_feature_maps,
    plot_filters,
    plot_history,
    plot_image_grid,
    plot_lr_schedule,
    plot_most_confident_mistakes,
    plot_per_class_accuracy,
)

matplotlib.use("Agg")  # no display needed (the conftest sets MPLBACKEND=Agg as well)

RED = to_rgba("red")
DIGITS = [str(i) for i in range(10)]
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def image_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.images]


def shown(ax) -> np.ndarray:
    """The pixels an axes' (first) image draws."""
    return np.asarray(ax.images[0].get_array())


def titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in image_axes(fig)]


def is_red(color) -> bool:
    return to_rgba(color) == RED


def make_history(
    name: str = "", epochs: int = 4, validation: bool = True, regression: bool = False
) -> SimpleNamespace:
    """A stand-in for training.History: ``.rows`` (one dict per epoch) and ``.name``."""
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "train_loss": 2.0 / epoch, "lr": 0.1, "images_per_second": 1e4, "seconds": 1.0}
        if not regression:
            row["train_accuracy"] = 0.5 + 0.1 * epoch
        if validation:
            row["val_loss"] = 2.5 / epoch
            if not regression:
                row["val_accuracy"] = 0.45 + 0.1 * epoch
        rows.append(row)
    return SimpleNamespace(rows=rows, name=name)


def column(history: SimpleNamespace, key: str) -> list:
    return [row[key] for row in history.rows]


# --- plot_image_grid ------------------------------------------------------------------------------


def test_image_grid_draws_each_uint8_image_unchanged_with_its_class_name():
    images = torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8)
    labels = torch.arange(20) % 10
    fig = plot_image_grid(images, labels, DIGITS, ncols=8, title="MNIST")

    assert isinstance(fig, Figure)
    assert len(fig.axes) == 24  # 3 rows of 8
    drawn = image_axes(fig)
    assert len(drawn) == 20
    for ax in fig.axes[20:]:
        assert not ax.images and not ax.axison  # the rest of the last row is turned off
    for i, ax in enumerate(drawn):
        np.testing.assert_array_equal(shown(ax), images[i].numpy())
        assert ax.images[0].get_cmap().name == "gray"
        assert ax.images[0].get_clim() == (0, 255)
        assert len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0
    assert titles(fig) == [DIGITS[i] for i in labels.tolist()]
    assert fig.get_suptitle() == "MNIST"


def test_image_grid_marks_wrong_predictions_in_red():
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 4, 5])
    predictions = np.array([0, 9, 2, 3, 1, 5])
    fig = plot_image_grid(images, labels, CIFAR10, predictions)

    drawn = image_axes(fig)
    assert len(drawn) == 6
    assert titles(fig) == [f"{CIFAR10[p]} ({CIFAR10[t]})" for p, t in zip(predictions, labels)]
    for ax, p, t in zip(drawn, predictions, labels):
        wrong = p != t
        assert is_red(ax.title.get_color()) == wrong
        frame = ax.spines["left"]
        if wrong:
            assert frame.get_visible() and is_red(frame.get_edgecolor())
        else:
            assert not frame.get_visible()
    np.testing.assert_array_equal(shown(drawn[1]), images[1])  # RGB pixels drawn as they are


def test_image_grid_draws_channels_first_uint8_pixels_as_batches_store_them():
    rgb = torch.randint(0, 256, (2, 3, 6, 5), dtype=torch.uint8)  # Batches.images: (N, C, H, W)
    fig = plot_image_grid(rgb)
    np.testing.assert_array_equal(shown(fig.axes[1]), rgb[1].permute(1, 2, 0).numpy())
    gray = torch.randint(0, 256, (2, 1, 6, 5), dtype=torch.uint8)
    np.testing.assert_array_equal(shown(plot_image_grid(gray).axes[0]), gray[0, 0].numpy())


def test_image_grid_undoes_the_normalisation_with_mean_and_std():
    rng = np.random.default_rng(1)
    mean, std = np.array([0.49, 0.48, 0.45]), np.array([0.25, 0.24, 0.26])
    pixels = rng.random((3, 3, 8, 8))  # (N, C, H, W) in [0, 1]
    normalised = torch.tensor((pixels - mean[:, None, None]) / std[:, None, None], dtype=torch.float32)
    fig = plot_image_grid(normalised, mean=mean.tolist(), std=std.tolist())

    drawn = image_axes(fig)
    for i, ax in enumerate(drawn):
        np.testing.assert_allclose(shown(ax), pixels[i].transpose(1, 2, 0), atol=1e-6)
    assert titles(fig) == ["", "", ""]

    gray = torch.tensor(rng.random((2, 1, 8, 8)), dtype=torch.float32)
    fig = plot_image_grid((gray - 0.1307) / 0.3081, mean=(0.1307,), std=(0.3081,))
    np.testing.assert_allclose(shown(fig.axes[0]), gray[0, 0].numpy(), atol=1e-6)
    assert fig.axes[0].images[0].get_cmap().name == "gray"


def test_image_grid_scales_each_float_image_to_0_1_without_mean_and_std():
    images = torch.stack([torch.linspace(-3, 5, 64).reshape(1, 8, 8), torch.full((1, 8, 8), 7.0)])
    fig = plot_image_grid(images, ncols=8)

    assert len(fig.axes) == 2  # fewer images than ncols: one column each
    first = shown(fig.axes[0])
    assert first.min() == 0 and first.max() == 1
    np.testing.assert_allclose(first, (images[0, 0].numpy() + 3) / 8, atol=1e-6)
    np.testing.assert_array_equal(shown(fig.axes[1]), np.zeros((8, 8)))  # a constant image


def test_image_grid_titles_with_predictions_only_and_raw_labels():
    images = torch.zeros(2, 1, 4, 4)
    assert titles(plot_image_grid(images, predictions=[3, 1], classes=DIGITS)) == ["3", "1"]
    assert titles(plot_image_grid(images, labels=["cat", "dog"])) == ["cat", "dog"]


@pytest.mark.parametrize(
    ("images", "kwargs", "message"),
    [
        (torch.zeros(4, 5, 8, 8), {}, "expects images uint8 (N, H, W), (N, H, W, 3) or (N, C, H, W)"),
        (torch.zeros(8, 8), {}, "got shape (8, 8)"),
        (torch.zeros(3, 1, 8, 8), {"labels": [0, 1]}, "3 images but 2 labels"),
        (torch.zeros(3, 1, 8, 8), {"predictions": [0, 1, 2, 3]}, "3 images but 4 predictions"),
        (torch.zeros(2, 8, 8, dtype=torch.uint8), {"mean": 0.5, "std": 0.2}, "raw pixels already"),
    ],
)
def test_image_grid_rejects_bad_input_with_a_clear_message(images, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        plot_image_grid(images, **kwargs)


@pytest.mark.parametrize("only", [{"mean": (0.1307,)}, {"std": (0.3081,)}])
def test_mean_without_std_or_std_without_mean_is_refused_not_drawn_blank(only):
    images = torch.randn(6, 1, 4, 4)
    with pytest.raises(ValueError, match="plot_image_grid: pass both mean and std, or neither"):
        plot_image_grid(images, **only)
    targets, predictions, probabilities = mistakes_example()
    with pytest.raises(ValueError, match="pass both mean and std, or neither"):
        plot_most_confident_mistakes(images, targets, predictions, probabilities, ["a", "b", "c"], **only)


# --- plot_history ---------------------------------------------------------------------------------


def test_history_draws_train_solid_and_validation_dashed_in_percent():
    history = make_history("lenet")
    fig = plot_history(history)

    assert isinstance(fig, Figure)
    loss_ax, accuracy_ax = fig.axes
    train, val = loss_ax.get_lines()
    np.testing.assert_allclose(train.get_xdata(), column(history, "epoch"))
    np.testing.assert_allclose(train.get_ydata(), column(history, "train_loss"))
    np.testing.assert_allclose(val.get_ydata(), column(history, "val_loss"))
    assert train.get_linestyle() == "-" and val.get_linestyle() == "--"
    assert train.get_color() == val.get_color()

    train, val = accuracy_ax.get_lines()
    np.testing.assert_allclose(train.get_ydata(), np.array(column(history, "train_accuracy")) * 100)
    np.testing.assert_allclose(val.get_ydata(), np.array(column(history, "val_accuracy")) * 100)
    assert "%" in accuracy_ax.get_ylabel() and accuracy_ax.get_xlabel() == "epoch"
    assert [t.get_text() for t in accuracy_ax.get_legend().get_texts()] == ["train", "validation"]
    assert fig.get_suptitle() == "lenet"


def test_history_without_validation_data_draws_the_training_lines_only():
    fig = plot_history(make_history(validation=False))
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.get_lines()) == 1
        assert ax.get_lines()[0].get_linestyle() == "-"


def test_history_of_a_regression_has_the_loss_panel_alone():
    history = make_history("adding problem", regression=True)
    fig = plot_history(history)

    (ax,) = fig.axes
    assert ax.get_title() == "loss" and ax.get_ylabel() == "loss"
    train, val = ax.get_lines()
    np.testing.assert_allclose(train.get_ydata(), column(history, "train_loss"))
    np.testing.assert_allclose(val.get_ydata(), column(history, "val_loss"))
    assert len(plot_history(make_history(validation=False, regression=True)).axes[0].get_lines()) == 1


def test_history_compares_runs_with_one_colour_each():
    runs = {"mlp": make_history(epochs=3), "cnn": make_history(epochs=5, validation=False)}
    fig = plot_history(runs, title="MLP vs CNN")

    loss_ax, accuracy_ax = fig.axes
    lines = accuracy_ax.get_lines()
    assert [line.get_label() for line in lines] == ["mlp train", "mlp validation", "cnn train"]
    assert lines[0].get_color() == lines[1].get_color() != lines[2].get_color()
    assert len(lines[2].get_xdata()) == 5
    assert len(loss_ax.get_lines()) == 3
    assert fig.get_suptitle() == "MLP vs CNN"
    assert plot_history(runs).get_suptitle() == ""  # several runs: no title unless given


def test_history_refuses_a_run_without_epochs():
    with pytest.raises(ValueError, match="'empty' has no epochs"):
        plot_history(SimpleNamespace(rows=[], name="empty"))


# --- plot_lr_schedule -----------------------------------------------------------------------------


def test_lr_schedule_draws_one_value_per_step_in_steps_or_epochs():
    lrs = [0.1 * (1 - i / 20) for i in range(20)]
    (line,) = plot_lr_schedule(lrs).axes[0].get_lines()
    np.testing.assert_allclose(line.get_xdata(), np.arange(20))
    np.testing.assert_allclose(line.get_ydata(), lrs)

    fig = plot_lr_schedule(torch.tensor(lrs), steps_per_epoch=5, title="linear decay")
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), np.arange(20) / 5)
    assert ax.get_xlabel() == "epoch" and ax.get_title() == "linear decay"


# --- plot_confusion_matrix ------------------------------------------------------------------------


def test_confusion_matrix_shows_the_counts_with_true_rows_and_predicted_columns():
    matrix = torch.tensor([[50, 2, 0], [5, 40, 5], [0, 10, 38]])
    classes = ["cat", "dog", "horse"]
    fig = plot_confusion_matrix(matrix, classes)

    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    np.testing.assert_array_equal(shown(ax), matrix.numpy())
    assert [t.get_text() for t in ax.texts] == [str(v) for v in matrix.flatten().tolist()]
    assert [t.get_position() for t in ax.texts[:2]] == [(0, 0), (1, 0)]  # (column, row)
    assert ax.texts[0].get_color() == "white"  # the darkest cell
    assert ax.texts[2].get_color() == "black"  # a zero
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_xticklabels()] == classes
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    assert ax.get_xticklabels()[2].get_rotation() == 45  # "horse" is long enough to slant


def test_confusion_matrix_normalised_rows_in_percent():
    matrix = np.array([[3, 1], [0, 0]])
    fig = plot_confusion_matrix(matrix, ["0", "1"], normalize=True)
    ax = fig.axes[0]
    np.testing.assert_allclose(shown(ax), [[0.75, 0.25], [0.0, 0.0]])
    assert [t.get_text() for t in ax.texts] == ["75%", "25%", "0%", "0%"]
    assert ax.get_xticklabels()[0].get_rotation() == 0  # short names stay upright


def test_confusion_matrix_rejects_a_matrix_that_does_not_fit_the_classes():
    with pytest.raises(ValueError, match=re.escape("10 classes but a matrix of shape (10, 9)")):
        plot_confusion_matrix(torch.zeros(10, 9, dtype=torch.long), DIGITS)


# --- plot_per_class_accuracy ----------------------------------------------------------------------


def test_per_class_accuracy_bars_in_percent():
    accuracy = torch.tensor([0.9, 0.5, 1.0, 0.25])
    classes = ["plane", "car", "bird", "cat"]
    fig = plot_per_class_accuracy(accuracy, classes)

    (ax,) = fig.axes
    heights = [bar.get_height() for bar in ax.containers[0]]
    np.testing.assert_allclose(heights, [90, 50, 100, 25])
    assert [t.get_text() for t in ax.get_xticklabels()] == classes
    assert [t.get_text() for t in ax.texts] == ["90", "50", "100", "25"]
    assert "%" in ax.get_ylabel()
    (mean_line,) = ax.get_lines()
    np.testing.assert_allclose(mean_line.get_ydata(), [66.25, 66.25])


def test_per_class_accuracy_rejects_percentages_and_wrong_lengths():
    with pytest.raises(ValueError, match=re.escape("fractions in [0, 1]")):
        plot_per_class_accuracy([90.0, 50.0], ["a", "b"])
    with pytest.raises(ValueError, match=re.escape("3 classes but accuracies of shape (2,)")):
        plot_per_class_accuracy([0.9, 0.5], ["a", "b", "c"])


# --- most_confident_mistakes ----------------------------------------------------------------------


def mistakes_example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    probabilities = torch.tensor(
        [
            [0.90, 0.05, 0.05],  # 0: right
            [0.10, 0.70, 0.20],  # 1: wrong, p=0.70
            [0.05, 0.05, 0.90],  # 2: wrong, p=0.90
            [0.40, 0.35, 0.25],  # 3: wrong, p=0.40
            [0.20, 0.80, 0.00],  # 4: right
            [0.05, 0.15, 0.80],  # 5: wrong, p=0.80
        ]
    )
    targets = torch.tensor([0, 0, 1, 2, 1, 0])
    return targets, probabilities.argmax(1), probabilities


def test_most_confident_mistakes_picks_the_surest_wrong_predictions_in_order():
    targets, predictions, probabilities = mistakes_example()
    indices = most_confident_mistakes(targets, predictions, probabilities, k=3)
    assert indices.dtype == torch.long
    assert indices.tolist() == [2, 5, 1]
    assert most_confident_mistakes(targets, predictions, probabilities, k=10).tolist() == [2, 5, 1, 3]
    numpy_args = (targets.numpy(), predictions.numpy(), probabilities.numpy())
    assert most_confident_mistakes(*numpy_args, k=2).tolist() == [2, 5]
    assert most_confident_mistakes(targets, targets, probabilities, k=3).tolist() == []
    with pytest.raises(ValueError, match=re.escape("targets and predictions of shape (6,), got shapes (5,)")):
        most_confident_mistakes(targets[:5], predictions, probabilities, k=3)


def test_plot_most_confident_mistakes_titles_and_images_in_order():
    targets, predictions, probabilities = mistakes_example()
    images = torch.arange(6, dtype=torch.uint8).repeat_interleave(16).reshape(6, 4, 4)  # image i is all i
    classes = ["cat", "dog", "frog"]
    fig = plot_most_confident_mistakes(images, targets, predictions, probabilities, classes, k=3)

    assert isinstance(fig, Figure)
    assert titles(fig) == ["frog p=0.90 / dog", "frog p=0.80 / cat", "dog p=0.70 / cat"]
    assert [int(shown(ax)[0, 0]) for ax in image_axes(fig)] == [2, 5, 1]

    fig = plot_most_confident_mistakes(images, targets, predictions, probabilities, classes, k=9, ncols=2)
    assert len(image_axes(fig)) == 4  # only 4 mistakes
    assert len(fig.axes) == 4  # 2 rows of 2


def test_plot_most_confident_mistakes_without_mistakes_says_so():
    targets, _, probabilities = mistakes_example()
    images = torch.zeros(6, 1, 4, 4)
    fig = plot_most_confident_mistakes(images, targets, targets, probabilities, ["a", "b", "c"])
    assert isinstance(fig, Figure)
    assert not fig.axes
    assert [t.get_text() for t in fig.texts] == ["no mistakes"]


# --- plot_filters ---------------------------------------------------------------------------------


def test_filters_single_channel_on_a_symmetric_diverging_scale():
    conv = nn.Conv2d(1, 6, kernel_size=5)
    fig = plot_filters(conv.weight)

    assert isinstance(fig, Figure)
    drawn = image_axes(fig)
    assert len(drawn) == 6
    weight = conv.weight.detach().numpy()
    limit = np.abs(weight).max()
    for i, ax in enumerate(drawn):
        np.testing.assert_allclose(shown(ax), weight[i, 0])
        assert ax.images[0].get_clim() == pytest.approx((-limit, limit))
        assert ax.images[0].get_cmap().name == "RdBu_r"
    assert len(fig.axes) == 7  # 6 filters and a colour bar


def test_filters_mean_over_many_input_channels_and_rgb_scaled_per_filter():
    conv = nn.Conv2d(4, 3, kernel_size=3)
    fig = plot_filters(conv, ncols=2)  # the module works too
    weight = conv.weight.detach().numpy()
    for i, ax in enumerate(image_axes(fig)):
        np.testing.assert_allclose(shown(ax), weight[i].mean(axis=0), rtol=1e-6)

    rgb = torch.randn(10, 3, 5, 5)
    fig = plot_filters(rgb, ncols=4)
    assert len(fig.axes) == 12 and len(image_axes(fig)) == 10
    for i, ax in enumerate(image_axes(fig)):
        w = rgb[i].numpy()
        np.testing.assert_allclose(
            shown(ax), ((w - w.min()) / (w.max() - w.min())).transpose(1, 2, 0), atol=1e-6
        )


def test_filters_rejects_a_weight_that_is_not_4d():
    with pytest.raises(ValueError, match=re.escape("(C_out, C_in, k, k), got shape (10, 20)")):
        plot_filters(torch.zeros(10, 20))


# --- plot_feature_maps ----------------------------------------------------------------------------


class SpyMode(nn.Module):
    """Records whether it ran in training mode and with gradients."""

    def forward(self, x):
        self.seen = (self.training, torch.is_grad_enabled())
        return x


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 3, padding=1)
        self.bn = nn.BatchNorm2d(20)
        self.spy = SpyMode()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(20 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv1(x))))
        return self.fc(self.spy(x).flatten(1))


def test_feature_maps_show_the_layer_output_and_leave_the_model_as_it_was():
    torch.manual_seed(0)
    model = TinyNet()
    model.train()
    model.bn.eval()  # a frozen BatchNorm inside a training model must stay frozen
    x = torch.randn(1, 8, 8)
    fig = plot_feature_maps(model, x, "conv1", ncols=8)

    assert isinstance(fig, Figure)
    drawn = image_axes(fig)
    assert len(drawn) == 16 and len(fig.axes) == 16
    expected = model.conv1(x.unsqueeze(0)).detach()[0]
    for c, ax in enumerate(drawn):
        np.testing.assert_allclose(shown(ax), expected[c].numpy(), rtol=1e-5, atol=1e-6)
    assert model.spy.seen == (False, False)  # ran in eval mode, without gradients
    assert model.training and model.spy.training and not model.bn.training
    assert not model.conv1._forward_hooks  # the hook is gone

    fig = plot_feature_maps(model, x.unsqueeze(0), model.pool)  # a module, not a name
    assert len(image_axes(fig)) == 16  # the first 16 of its 20 channels
    assert shown(image_axes(fig)[0]).shape == (4, 4)
    assert "pool" in fig.get_suptitle()


def test_feature_maps_errors_name_valid_layers_and_still_clean_up():
    model = TinyNet().train()
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"'conv2' is not a submodule; valid names include 'conv1', 'bn'"):
        plot_feature_maps(model, x, "conv2")
    with pytest.raises(ValueError, match=re.escape("'fc' gives no (1, C, H, W) feature map")):
        plot_feature_maps(model, x, "fc")
    assert not model.fc._forward_hooks and model.training
    with pytest.raises(ValueError, match=re.escape("expects one image, (C, H, W) or (1, C, H, W)")):
        plot_feature_maps(model, torch.randn(2, 1, 8, 8), "conv1")
    with pytest.raises(RuntimeError, match="was not called during model"):
        plot_feature_maps(model, x, nn.Conv2d(1, 1, 1))  # not part of the model
    assert model.training


# --- plot_curves ---------------------------------------------------------------------------------


def test_curves_one_line_per_model_in_percent():
    shifts = [0, 1, 2, 3]
    curves = {"MLP": [0.98, 0.6, 0.3, 0.2], "CNN": torch.tensor([0.99, 0.97, 0.9, 0.8])}
    fig = plot_curves(
        curves, x=shifts, xlabel="shift (pixels)", ylabel="accuracy", percent=True, title="translation"
    )

    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["MLP", "CNN"]
    for line, values in zip(lines, curves.values()):
        np.testing.assert_allclose(line.get_xdata(), shifts)
        np.testing.assert_allclose(line.get_ydata(), np.asarray(values) * 100, rtol=1e-6)
        assert line.get_marker() == "o"
    assert ax.get_ylabel() == "accuracy (%)" and ax.get_xlabel() == "shift (pixels)"
    assert ax.get_title() == "translation" and ax.get_yscale() == "linear"


def test_curves_as_they_are_on_a_log_scale_without_markers():
    norms = {"RNN": torch.logspace(0, -8, 50), "LSTM": torch.logspace(0, -2, 50)}
    fig = plot_curves(norms, xlabel="steps back", ylabel="gradient norm", log=True, markers=False)

    (ax,) = fig.axes
    for line, values in zip(ax.get_lines(), norms.values()):
        np.testing.assert_allclose(line.get_xdata(), np.arange(50))  # no x: 0 .. P-1
        np.testing.assert_allclose(line.get_ydata(), values.numpy(), rtol=1e-6)  # not scaled
        assert line.get_marker() in ("", "None", None)
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "gradient norm"


def test_curves_with_named_x_positions():
    fig = plot_curves(
        {"MLP": [0.97, 0.97], "LeNet-5": [0.99, 0.95]},
        x=["original", "permuted"],
        xlabel="pixels",
        ylabel="acc",
    )
    (ax,) = fig.axes
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0, 1])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["original", "permuted"]


def test_curves_refuse_curves_of_another_length():
    with pytest.raises(ValueError, match="curve 'MLP' has 1 values but there are 2 x values"):
        plot_curves({"MLP": [0.9]}, x=[0, 1], xlabel="shift", ylabel="accuracy")
    with pytest.raises(ValueError, match="curve 'a' has 2 values but there are 3"):
        plot_curves({"a": [1, 2], "b": [1, 2, 3]}, xlabel="x", ylabel="y")


# --- all figures ----------------------------------------------------------------------------------


def every_figure() -> list[Figure]:
    targets, predictions, probabilities = mistakes_example()
    return [
        plot_image_grid(torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8), torch.arange(10), DIGITS),
        plot_history({"a": make_history(), "b": make_history(validation=False)}),
        plot_history(make_history("regression", regression=True)),
        plot_lr_schedule([0.1, 0.05, 0.01], steps_per_epoch=2),
        plot_confusion_matrix(torch.eye(10, dtype=torch.long) * 90 + 1, CIFAR10),
        plot_per_class_accuracy(torch.linspace(0, 1, 10), CIFAR10),
        plot_most_confident_mistakes(
            torch.randn(6, 3, 8, 8), targets, predictions, probabilities, CIFAR10[:3]
        ),
        plot_filters(torch.randn(8, 3, 5, 5)),
        plot_feature_maps(TinyNet(), torch.randn(1, 1, 8, 8), "bn"),
        plot_curves({"a": [0.5, 0.7]}, x=[0, 1], xlabel="x", ylabel="y", percent=True),
        plot_curves({"a": [1.0, 1e-3]}, xlabel="x", ylabel="y", log=True, markers=False),
    ]


def test_figures_render_headless_without_warnings_or_open_pyplot_figures():
    open_before = plt.get_fignums()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. constrained layout failing, or clipped RGB data
        figures = every_figure()
        for fig in figures:
            assert isinstance(fig, Figure)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            assert buffer.getvalue().startswith(b"\x89PNG")
    assert plt.get_fignums() == open_before  # nothing left for pyplot to show or leak


def test_a_returned_figure_displays_as_a_png_in_jupyter():
    formatters = pytest.importorskip("IPython.core.formatters")
    fig = plot_lr_schedule([0.1, 0.01])
    png = formatters.PNGFormatter()(fig)  # what IPython does with a cell's value
    assert png is not None and png.startswith(b"\x89PNG")
    assert repr(fig).startswith("<Figure size")  # shown like any matplotlib figure
