"""Shared plots draw what they are given: image grids, curves, ROC, confusion and reliability."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import sklearn.metrics
import torch
from sklearn.calibration import calibration_curve

from medtl_helpers.plots import (
    confusion_matrix,
    plot_confusion,
    plot_histories,
    plot_image_grid,
    plot_reliability,
    plot_roc,
    reliability_table,
)


def test_image_grid_titles_class_names_and_free_labels():
    images = torch.arange(5 * 8 * 8, dtype=torch.int64).remainder(256).to(torch.uint8)
    fig = plot_image_grid(images.view(5, 1, 8, 8), [0, 1, 1, "person7", "IM-0001"], ncols=3)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in shown] == [
        "NORMAL",
        "PNEUMONIA",
        "PNEUMONIA",
        "person7",
        "IM-0001",
    ]
    assert shown[0].images[0].get_array().shape == (8, 8)
    assert shown[0].images[0].get_clim() == (0, 255)
    plt.close(fig)


def test_image_grid_without_labels_has_no_titles():
    fig = plot_image_grid(torch.zeros(2, 8, 8, dtype=torch.uint8), ncols=8, title="two")
    assert len(fig.axes) == 2
    assert all(ax.get_title() == "" for ax in fig.axes)
    assert fig._suptitle.get_text() == "two"
    plt.close(fig)


Y = np.array([0, 0, 1, 1, 1, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.7, 0.6, 0.2])


def test_roc_draws_the_curve_points_and_the_operating_point():
    ax = plot_roc(Y, P, threshold=0.5, label="demo")
    curve, chance, point = ax.lines
    x, y = curve.get_data()
    # 3 NORMAL, 5 PNEUMONIA: the ROC steps through every score, from (0, 0) to (1, 1)
    assert (x[0], y[0]) == (0.0, 0.0) and (x[-1], y[-1]) == (1.0, 1.0)
    assert np.allclose(list(zip(x, y))[1:4], [(0, 0.2), (0, 0.4), (1 / 3, 0.4)])
    # at 0.5: TP = 3 of 5 PNEUMONIA, FP = 1 of 3 NORMAL
    assert np.allclose(point.get_data(), ([1 / 3], [0.6]))
    assert ax.get_xlabel().startswith("1 - specificity")
    assert ax.get_ylabel().startswith("sensitivity")
    assert "AUROC 0.667" in ax.get_legend().get_texts()[0].get_text()
    plt.close(ax.figure)


def test_confusion_matrix_draws_the_counts_in_true_by_predicted_order():
    assert confusion_matrix(Y, P, 0.5).tolist() == [[2, 1], [2, 3]]
    ax = plot_confusion(Y, P, 0.5)
    assert [t.get_text() for t in ax.texts] == ["2", "1", "2", "3"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["NORMAL", "PNEUMONIA"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["NORMAL", "PNEUMONIA"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted", "true")
    assert "0.500" in ax.get_title()
    plt.close(ax.figure)


def test_reliability_bins_and_title_give_the_calibration_error():
    y = np.array([0, 1, 1, 1, 0, 1])
    p = np.array([0.05, 0.08, 0.95, 0.92, 0.55, 0.55])
    table = reliability_table(y, p, n_bins=10)
    assert np.allclose(table["predicted"], [0.065, 0.55, 0.935])
    assert np.allclose(table["observed"], [0.5, 0.5, 1.0])
    assert table["count"].tolist() == [2, 2, 2]
    ax = plot_reliability(y, p, n_bins=10)
    x, observed = ax.lines[1].get_data()
    assert np.allclose(x, table["predicted"]) and np.allclose(observed, table["observed"])
    ece = (2 * 0.435 + 2 * 0.05 + 2 * 0.065) / 6
    assert ax.get_title() == f"Reliability (ECE {ece:.3f})"
    plt.close(ax.figure)


def test_evaluation_plots_agree_with_sklearn():
    ax = plot_roc(Y, P)
    fpr, tpr, _ = sklearn.metrics.roc_curve(Y, P, drop_intermediate=False)
    assert np.array_equal(ax.lines[0].get_xdata(), fpr)
    assert np.array_equal(ax.lines[0].get_ydata(), tpr)
    plt.close(ax.figure)
    counts = sklearn.metrics.confusion_matrix(Y, (P >= 0.5).astype(int), labels=[0, 1])
    assert confusion_matrix(Y, P, 0.5).tolist() == counts.tolist()
    # No probability of the reliability example sits on a bin edge, where the two bin differently.
    y = np.array([0, 1, 1, 1, 0, 1])
    p = np.array([0.05, 0.08, 0.95, 0.92, 0.55, 0.55])
    observed, predicted = calibration_curve(y, p, n_bins=10)
    table = reliability_table(y, p, n_bins=10)
    assert table["observed"] == pytest.approx(observed)
    assert table["predicted"] == pytest.approx(predicted)


def test_histories_share_axes_one_line_per_run():
    rows = [
        {"epoch": 1, "train_loss": 0.7, "val_auroc": 0.6},
        {"epoch": 2, "train_loss": 0.5, "val_auroc": 0.8},
    ]
    axes = plot_histories({"a": rows, "b": rows[:1]})
    assert [line.get_label() for line in axes[1].lines] == ["a", "b"]
    assert list(axes[1].lines[0].get_ydata()) == [0.6, 0.8]
    assert axes[0].get_ylabel() == "train cross-entropy"
    plt.close(axes[0].figure)
