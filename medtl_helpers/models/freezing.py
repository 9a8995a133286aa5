"""Freezing ResNet layer groups by name prefix, and counting what is left to train.

Groups are found by name *prefix* through `models.group_of` ("layer3.0.conv1.weight" belongs to
layer3), never by substring: `"conv1" in name` also matches layer1.0.conv1 ... layer4.1.conv1,
so a "freeze the stem" rule written that way freezes a conv in every block.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from torch import nn

from medtl_helpers.models.groups import GROUPS, group_of

STRATEGIES = {
    "none": (),
    "partial": ("stem", "layer1", "layer2"),
    "all": ("stem", "layer1", "layer2", "layer3", "layer4"),
}


def _groups_for(strategy: str | Sequence[str]) -> list[str]:
    if isinstance(strategy, str):
        # A bare group name ("stem") is accepted as a one-group list.
        requested = STRATEGIES.get(strategy, (strategy,))
    else:
        requested = tuple(strategy)
    unknown = [group for group in requested if group not in GROUPS]
    if unknown:
        raise ValueError(
            f"Unknown layer group(s) {unknown}: use a strategy ({', '.join(STRATEGIES)}) "
            f"or a list of groups from {', '.join(GROUPS)}"
        )
    return [group for group in GROUPS if group in requested]


def freeze(model: nn.Module, strategy: str | Sequence[str]) -> list[str]:
    """Freeze exactly the groups named by `strategy` and unfreeze all the others.

    strategy: "none", "partial" (stem, layer1, layer2), "all" (the whole backbone, so only the
        head trains), or a list of groups such as ["layer4", "head"].
    Returns the frozen groups in network order and stores them as `model.medtl_frozen`, which
    `train_mode` reads. requires_grad=False alone does not stop BatchNorm from updating its
    running statistics: train with `modes.train_mode(model)` instead of `model.train()`.
    """
    frozen = _groups_for(strategy)
    for name, param in model.named_parameters():
        param.requires_grad_(group_of(name) not in frozen)
    model.medtl_frozen = frozen
    return frozen


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values, or only of those with requires_grad when trainable_only."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def trainable_summary(model: nn.Module) -> pd.DataFrame:
    """Parameters per layer group and in total: params, trainable, trainable %, frozen.

    Indexed by group (stem, layer1 ... layer4, head), then a "total" row. `frozen` is True for a
    group with parameters none of which trains any more.
    """
    params = dict.fromkeys([*GROUPS, "total"], 0)
    trainable = dict.fromkeys([*GROUPS, "total"], 0)
    for name, param in model.named_parameters():
        for key in (group_of(name), "total"):
            params[key] += param.numel()
            trainable[key] += param.numel() if param.requires_grad else 0
    table = pd.DataFrame({"params": params, "trainable": trainable})
    table["trainable %"] = (100 * table["trainable"] / table["params"].clip(lower=1)).round(2)
    table["frozen"] = (table["params"] > 0) & (table["trainable"] == 0)
    table.index.name = "group"
    return table
