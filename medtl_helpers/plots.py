"""Plots the notebooks share: training curves and image grids (more join as notebooks need them)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from medtl_helpers.data.records import CLASSES


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
