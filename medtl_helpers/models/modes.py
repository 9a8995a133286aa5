"""Train and eval modes that respect frozen layers, and the device a model lives on.

`train_mode` is `model.train()` for a model with frozen layer groups: their BatchNorm layers stay
in eval mode. `eval_mode` is a block in eval mode that puts every submodule's own flag back
afterwards, so a model in `train_mode` comes back exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from medtl_helpers.models.groups import belongs_to


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


def train_mode(model: nn.Module) -> nn.Module:
    """model.train(), then every BatchNorm inside a frozen group or module back to eval().

    In train mode BatchNorm normalises each batch with that batch's own statistics and moves its
    running_mean/running_var towards them (a moving average, momentum 0.1), even when its weight
    and bias have requires_grad=False. A "frozen" layer is then not frozen: the function it
    computes at evaluation changes with every batch (features cached from it go stale), and in
    training one image's output depends on the other images in its batch. In eval mode it
    normalises with, and keeps, the stored statistics: a frozen group computes one fixed function.
    """
    model.train()
    frozen = set(getattr(model, "medtl_frozen", ()))
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm) and belongs_to(name, frozen):
            module.eval()
    return model
