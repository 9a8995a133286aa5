"""CAM overlays on the original X-rays, and grids of true positives, false positives and misses.

An overlay is drawn on the stored uint8 grey image, never on the model's input tensor: that one is
ImageNet-normalised (values roughly -2 to 2.6 in three channels) and no longer looks like the
X-ray a radiologist would read. `overlay_cam` refuses anything but uint8 for that reason.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colormaps

OUTCOMES = ("true positive", "false positive", "false negative")


def _grey(image) -> np.ndarray:
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(
            f"overlay_cam needs the original uint8 X-ray, got {array.dtype}. A normalised model "
            "input (to_model_input) is not the image: pass ImageSet.images[i] instead."
        )
    array = array.squeeze()
    if array.ndim != 2:
        raise ValueError(f"expected one grey image (H, W) or (1, H, W), got shape {array.shape}")
    return array


def overlay_cam(image, cam, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """RGB uint8 (H, W, 3): the grey X-ray, coloured where the map is high.

    The colour's weight is `alpha * cam` per pixel, so where the map is 0 the X-ray shows through
    unchanged.
    """
    grey = _grey(image).astype(np.float64) / 255.0
    heat = np.asarray(cam.detach().cpu() if isinstance(cam, torch.Tensor) else cam, np.float64)
    if heat.shape != grey.shape:
        raise ValueError(
            f"the map has shape {heat.shape} but the image {grey.shape}: upsample the map to the "
            "image size first (class_activation_maps does)"
        )
    colour = colormaps[cmap](np.clip(heat, 0.0, 1.0))[..., :3]
    weight = alpha * np.clip(heat, 0.0, 1.0)[..., None]
    mixed = (1.0 - weight) * grey[..., None] + weight * colour
    return np.round(mixed * 255.0).astype(np.uint8)


def outcome_indices(y, p, threshold: float, per_group: int = 4) -> dict[str, list[int]]:
    """Up to `per_group` image indices per outcome, the most confident first."""
    y = np.asarray(y).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    predicted = p >= threshold
    masks = {
        "true positive": predicted & (y == 1),
        "false positive": predicted & (y == 0),
        "false negative": ~predicted & (y == 1),
    }
    groups = {}
    for name, mask in masks.items():
        index = np.flatnonzero(mask)
        # confident mistakes are the instructive ones: far from the threshold first
        order = np.argsort(-np.abs(p[index] - threshold), kind="stable")
        groups[name] = index[order][:per_group].tolist()
    return groups


def plot_cam_row(images, cams_by_method: dict, titles=None, cell_inches: float = 2.0):
    """One row per image: the X-ray, then its overlay for each method (columns)."""
    methods = list(cams_by_method)
    n = len(images)
    fig, axes = plt.subplots(
        n,
        1 + len(methods),
        figsize=(cell_inches * (1 + len(methods)), cell_inches * n),
        squeeze=False,
    )
    for i in range(n):
        axes[i, 0].imshow(_grey(images[i]), cmap="gray", vmin=0, vmax=255)
        axes[i, 0].set_title(titles[i] if titles else "X-ray", fontsize=8)
        for j, method in enumerate(methods, start=1):
            axes[i, j].imshow(overlay_cam(images[i], cams_by_method[method][i]))
            axes[i, j].set_title(method, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_outcome_grid(images, cams, groups: dict[str, list[int]], probs=None, cell_inches=1.8):
    """Rows: true positives, false positives, false negatives; an empty row says so.

    `cams` and `probs` are indexed by image index: arrays over all images, or dicts.
    """
    ncols = max(1, max((len(index) for index in groups.values()), default=1))
    fig, axes = plt.subplots(
        len(groups),
        ncols,
        figsize=(cell_inches * ncols, cell_inches * len(groups) + 0.3),
        squeeze=False,
    )
    for ax in axes.flat:
        ax.axis("off")
    for row, (name, index) in enumerate(groups.items()):
        if not index:
            axes[row, 0].text(0.0, 0.5, f"no {name}s\nin this split", fontsize=9, va="center")
        for col, i in enumerate(index):
            axes[row, col].imshow(overlay_cam(images[i], cams[i]))
            detail = f" p={probs[i]:.2f}" if probs is not None else ""
            axes[row, col].set_title(f"{name}{detail}", fontsize=7)
    fig.tight_layout()
    return fig
