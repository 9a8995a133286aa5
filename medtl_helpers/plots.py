"""Plots the notebooks share: training curves, image grids and evaluation plots.

The evaluation plots (ROC curve, confusion matrix, reliability diagram) take labels `y`
(0 = NORMAL, 1 = PNEUMONIA) and predicted probabilities `p` of PNEUMONIA, draw on the given axes
(or a new one) and return the axes, so a notebook can put them side by side.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from sklearn.metrics import roc_curve

from medtl_helpers.data.records import CLASSES
from medtl_helpers.metrics import (
    auroc,
    calibration_bins,
    confusion,
    expected_calibration_error,
    labels_and_probabilities,
)


def plot_history(rows: list[dict], title: str = "", axes=None):
    """Loss (train and val) and val AUROC per epoch; stage boundaries as dotted lines."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    epochs = [r["epoch"] for r in rows]
    axes[0].plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    axes[0].plot(epochs, [r["val_loss"] for r in rows], "o-", label="val")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy", title=f"{title} loss".strip())
    axes[0].legend()
    axes[1].plot(epochs, [r["val_auroc"] for r in rows], "o-", color="C2")
    axes[1].set(xlabel="epoch", ylabel="val AUROC", title=f"{title} validation AUROC".strip())
    for ax in axes:
        for before, after in zip(rows, rows[1:]):
            if before["stage"] != after["stage"]:
                ax.axvline(before["epoch"] + 0.5, color="grey", linestyle=":")
    return axes


def plot_image_grid(
    images,
    labels=None,
    classes: tuple[str, ...] = CLASSES,
    ncols: int = 8,
    cell_inches: float = 1.6,
    title: str = "",
):
    """Grey images (N, 1, H, W) or (N, H, W) in a grid, each titled by its label.

    An integer label is shown as its class name; any other label (a patient id, a file name) as
    it is. Returns the figure.
    """
    images = [np.asarray(img).squeeze() for img in images]
    nrows = max(1, math.ceil(len(images) / ncols))
    ncols = max(1, min(ncols, len(images)))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell_inches * ncols, cell_inches * nrows + 0.4), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, img) in enumerate(zip(axes.flat, images)):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        if labels is not None:
            label = labels[i]
            is_class = isinstance(label, (int, np.integer))
            ax.set_title(classes[int(label)] if is_class else str(label), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_histories(histories: dict, title: str = "", axes=None):
    """Several runs' train loss and val AUROC on shared axes, one colour per run.

    `histories` maps a run name to its `History` (or its rows), so runs of equal epoch budget
    can be compared epoch by epoch.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, history in histories.items():
        rows = getattr(history, "rows", history)
        epochs = [r["epoch"] for r in rows]
        axes[0].plot(epochs, [r["train_loss"] for r in rows], "o-", label=name)
        axes[1].plot(epochs, [r["val_auroc"] for r in rows], "o-", label=name)
    axes[0].set(xlabel="epoch", ylabel="train cross-entropy", title=f"{title} train loss".strip())
    axes[1].set(xlabel="epoch", ylabel="val AUROC", title=f"{title} validation AUROC".strip())
    for ax in axes:
        ax.legend()
    return axes


def _axes(ax, size: tuple[float, float] = (4.2, 4.0)):
    return plt.subplots(figsize=size)[1] if ax is None else ax


def plot_roc(y, p, threshold: float | None = None, label: str = "model", ax=None):
    """ROC curve: sensitivity (y axis) against false positive rate (x axis), AUROC in the legend.

    With `threshold`, the operating point it gives (1 - specificity, sensitivity) is marked.
    """
    y, p = labels_and_probabilities(y, p)
    ax = _axes(ax)
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    ax.plot(fpr, tpr, color="C0", label=f"{label} (AUROC {auroc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    if threshold is not None:
        c = confusion(y, p, threshold)
        point = (c["fp"] / max(c["fp"] + c["tn"], 1), c["tp"] / max(c["tp"] + c["fn"], 1))
        ax.plot(*point, "o", color="C3", label=f"threshold {threshold:.3f}")
    ax.set(
        xlabel="1 - specificity (false positive rate)",
        ylabel="sensitivity (true positive rate)",
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        title="ROC curve",
    )
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def confusion_matrix(y, p, threshold: float) -> np.ndarray:
    """2x2 counts, rows = true class, columns = predicted class, in the order of CLASSES."""
    c = confusion(y, p, threshold)
    return np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])


def plot_confusion(y, p, threshold: float, classes: tuple[str, ...] = CLASSES, ax=None):
    """Confusion matrix at a fixed threshold as an annotated seaborn heatmap of counts."""
    ax = _axes(ax, (4.2, 3.6))
    counts = confusion_matrix(y, p, threshold)
    sns.heatmap(
        counts,
        annot=True,
        fmt="d",
        cmap="Blues",
        cbar=False,
        xticklabels=classes,
        yticklabels=classes,
        ax=ax,
    )
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix (threshold {threshold:.3f})")
    return ax


def reliability_table(y, p, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Per non-empty equal-width bin: mean predicted p, observed PNEUMONIA rate and case count."""
    # The same bins as the ECE in the title; scikit-learn's `calibration_curve` gives the two rates
    # but no counts for the marker sizes, and bins p on an edge differently (metrics.calibration).
    bins = calibration_bins(y, p, n_bins)
    kept = bins["count"] > 0
    count = bins["count"][kept]
    return {
        "predicted": bins["p_sum"][kept] / count,
        "observed": bins["positives"][kept] / count,
        "count": count,
    }


def plot_reliability(y, p, n_bins: int = 10, ax=None):
    """Reliability diagram: observed PNEUMONIA rate against mean predicted p, per bin.

    Points on the diagonal mean "p = 0.8 comes true 80% of the time"; the title gives the
    expected calibration error. Marker size grows with the number of cases in the bin.
    """
    ax = _axes(ax)
    table = reliability_table(y, p, n_bins)
    ece = expected_calibration_error(y, p, n_bins=n_bins)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    sns.lineplot(x=table["predicted"], y=table["observed"], color="C0", ax=ax, label="model")
    sizes = 20 + 180 * table["count"] / table["count"].max()
    ax.scatter(table["predicted"], table["observed"], s=sizes, color="C0", zorder=3)
    ax.set(
        xlabel="mean predicted probability of PNEUMONIA",
        ylabel="observed share of PNEUMONIA",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"Reliability (ECE {ece:.3f})",
    )
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize=8)
    return ax
