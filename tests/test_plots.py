"""Shared plots draw what they are given: one panel per image, titled by its label."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from medtl_helpers.plots import plot_image_grid


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
