"""Freezing ResNet layer groups (or single modules) by name prefix, and counting what trains.

Groups are found by name *prefix* through `models.group_of` ("layer3.0.conv1.weight" belongs to
layer3), never by substring: `"conv1" in name` also matches layer1.0.conv1 ... layer4.1.conv1,
so a "freeze the stem" rule written that way freezes a conv in every block.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import pandas as pd
from torch import nn

from medtl_helpers.models.groups import GROUPS, belongs_to, group_of

STRATEGIES = {
    "none": (),
    "partial": ("stem", "layer1", "layer2"),
    "all": ("stem", "layer1", "layer2", "layer3", "layer4"),
}


def _parts_for(model: nn.Module, strategy: str | Sequence[str]) -> list[str]:
    if isinstance(strategy, str):
        # A bare group or module name ("stem", "layer4.1") is accepted as a one-item list.
        requested = STRATEGIES.get(strategy, (strategy,))
    else:
        requested = tuple(strategy)
    # Every module that holds parameters, in network order: groups' children, blocks, layers.
    named = model.named_modules()
    known = [name for name, m in named if name and next(m.parameters(), None) is not None]
    known += GROUPS
    unknown = [part for part in requested if part not in known]
    if unknown:
        raise ValueError(
            f"Unknown layer group(s) or module(s) {unknown}: use a strategy "
            f"({', '.join(STRATEGIES)}), a list of groups from {', '.join(GROUPS)}, or names of "
            "this model's blocks and modules such as 'layer4.1' or 'layer4.1.conv1'"
        )
    groups = [group for group in GROUPS if group in requested]
    names = sorted(set(requested) - set(GROUPS), key=known.index)
    return groups + [name for name in names if group_of(name) not in groups]


def freeze(model: nn.Module, strategy: str | Sequence[str]) -> list[str]:
    """Freeze exactly the groups or modules named by `strategy` and unfreeze all the others.

    strategy: "none", "partial" (stem, layer1, layer2), "all" (the whole backbone, so only the
        head trains), a list of groups such as ["layer4", "head"], or a list that also names
        blocks and modules ("layer4.1", "layer3.0.conv1"), matched as prefixes at a dot boundary.
    Returns the frozen groups in network order, then the modules outside them in network order,
    and stores the list as `model.medtl_frozen`, which `train_mode` reads. requires_grad=False
    alone does not stop BatchNorm from updating its running statistics: train with
    `modes.train_mode(model)` instead of `model.train()`.
    """
    frozen = _parts_for(model, strategy)
    for name, param in model.named_parameters():
        param.requires_grad_(not belongs_to(name, frozen))
    model.medtl_frozen = frozen
    return frozen


def module_order(model: nn.Module, groups: Sequence[str]) -> list[tuple[str, int]]:
    """(name, parameter values) of each module that holds parameters of its own, group by group
    in the order given, and in network order inside a group."""
    units = [
        (name, sum(p.numel() for p in module.parameters(recurse=False)))
        for name, module in model.named_modules()
        if name and next(module.parameters(recurse=False), None) is not None
    ]
    return [(name, size) for group in groups for name, size in units if group_of(name) == group]


def _named(taken: list[str], everything: list[str]) -> list[str]:
    """`taken` in its order, a whole group ("layer4") or block ("layer4.1") named once."""
    chosen, out = set(taken), []
    for name in taken:
        for level in (1, 2):
            prefix = ".".join(name.split(".")[:level])
            members = [n for n in everything if n == prefix or n.startswith(prefix + ".")]
            if all(n in chosen for n in members):
                break
        else:
            prefix = name
        if prefix not in out:
            out.append(prefix)
    return out


def equal_count_freezing(
    model: nn.Module, ranked: Sequence[str], low: float = 0.5
) -> dict[str, list[str]]:
    """Two freezing lists, each from its own half of a ranking, with counts as close as they allow.

    ranked: layer groups, least important first. "least" freezes only groups of the first half
    (`ranked[:n // 2]`), taking modules in `module_order(model, first half)`; "most" only groups of
    the last half, in `module_order(model, last half reversed)`: whole groups from its end of the
    ranking, then the first modules of the next group of its half in network order. With an odd
    number of groups the middle one is in neither half. Neither list takes a value from the other
    half, so the two share no parameter. Each stops after a whole module, with at least `low`
    times the values of the smaller half; of all such pairs of stopping points, the pair closest
    in count (relative difference) is returned. Whole groups cannot match (in a ResNet each stage
    holds about four times the values of the one before), and a half lends the other nothing, so
    the counts can stay far apart (43% on ResNet-18 ranked layer1 to layer4: layer1 and layer2
    against layer4.0.conv1 alone): report the gap with the comparison.
    """
    half = len(ranked) // 2
    if half == 0:
        raise ValueError(f"Rank at least two groups to freeze from both ends, not {list(ranked)}")
    walks = {
        "least": module_order(model, list(ranked)[:half]),
        "most": module_order(model, list(ranked)[::-1][:half]),
    }
    floor = low * min(sum(size for _, size in walk) for walk in walks.values())
    stops = {
        arm: [
            (count, i) for i, count in enumerate(accumulate(s for _, s in walk)) if count >= floor
        ]
        for arm, walk in walks.items()
    }
    pairs = [(abs(a - b) / max(a, b), i, j) for a, i in stops["least"] for b, j in stops["most"]]
    if not pairs:
        raise ValueError(f"low={low} asks for more than the smaller half holds: use low <= 1")
    _, i, j = min(pairs)
    return {
        arm: _named([name for name, _ in walks[arm][: stop + 1]], [name for name, _ in walks[arm]])
        for arm, stop in (("least", i), ("most", j))
    }


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
