"""Plots the notebooks share: training curves (more join as the notebooks need them)."""

from __future__ import annotations

import matplotlib.pyplot as plt


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
