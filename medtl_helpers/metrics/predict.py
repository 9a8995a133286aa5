"""Predictions: a model run over uint8 images in batches without disturbing it.

Eval mode and no autograd; every submodule's train/eval flag is put back afterwards, so a model
whose frozen BatchNorm layers were set to eval by `models.train_mode` comes back exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from medtl_helpers.data.augment import to_model_input
from medtl_helpers.models.modes import eval_mode, model_device


def run_batched(
    model: nn.Module,
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    image_size: int | None = None,
) -> list[torch.Tensor]:
    """`fn(normalised batch)` for each batch of uint8 (N, 1, H, W) images; results on the CPU."""
    device = model_device(model) if device is None else device
    outputs = []
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            outputs.append(fn(to_model_input(batch, image_size)).float().cpu())
    return outputs


def predict_proba(
    model: nn.Module,
    images_uint8: torch.Tensor,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    image_size: int | None = None,
) -> np.ndarray:
    """Probability of PNEUMONIA for uint8 (N, 1, H, W) images, as float64 numpy of shape (N,).

    Runs in eval mode under `torch.inference_mode()`, then puts every submodule back in the mode
    it had: a model with frozen BatchNorm layers (see `models.train_mode`) stays exactly so.
    """

    def pneumonia(x: torch.Tensor) -> torch.Tensor:
        return model(x).float().softmax(dim=1)[:, 1]

    outputs = run_batched(model, pneumonia, images_uint8, batch_size, device, image_size)
    if not outputs:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(outputs).numpy().astype(np.float64)
