"""Run a model over uint8 images in batches without disturbing it: eval mode, no autograd.

Every submodule's train/eval flag is put back afterwards, so a model whose frozen BatchNorm
layers were set to eval by `freezing.train_mode` comes back exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn

from medtl_helpers.data.augment import to_model_input


def model_device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """`model.eval()` for the block, then every submodule's own train/eval flag put back."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


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
