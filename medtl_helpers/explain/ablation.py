"""Layer importance by ablation: zero a part of the network, score it, restore it exactly.

Done correctly, each ablation zeroes *every* parameter of the part (conv weights, BatchNorm
weight and bias: with the bias left, a "removed" layer still adds a constant), scores the model
in eval mode, then reloads a saved *copy* of the whole state (`model.state_dict()` alone holds
references to the live tensors, so reloading it restores nothing) and checks that it matches bit
for bit, and puts every module back in the mode it had.

A small drop says that the current predictions barely depend on the part. The advice that
usually comes with a ranking, to freeze the parts with the smallest drop rather than those with
the largest, is a claim to test, not a fact: notebook 03 ranks the groups on the model the
freezing is applied to, trains both advices, each freezing only groups from its own half of the
ranking with counts as close as that allows (`models.freezing.equal_count_freezing`; they can
stay far apart, so it prints the gap), and compares them on patients that no choice was made on.

Parts are named by prefix ("layer3" or "layer3.1"), matched at a dot boundary, so "layer1" never
matches "layer10" and "conv1" never matches "layer1.0.conv1".
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from medtl_helpers.models import eval_mode


@dataclass
class Ablation:
    """Baseline score and one row per part: part, zeroed (values), score, drop."""

    baseline: float
    rows: list[dict]

    def least_important(self, k: int) -> list[str]:
        """The k parts with the smallest drop; ties keep the order the parts were given in."""
        return [row["part"] for row in sorted(self.rows, key=lambda row: row["drop"])[:k]]

    def table(self) -> pd.DataFrame:
        """One row per part, indexed by part, after a first "(nothing zeroed)" row holding the
        baseline: zeroed (parameter values), score, drop."""
        first = {"part": "(nothing zeroed)", "zeroed": 0, "score": self.baseline, "drop": 0.0}
        columns = ["part", "zeroed", "score", "drop"]
        return pd.DataFrame([first, *self.rows], columns=columns).set_index("part")


def _matches(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def identity_blocks(model: nn.Module) -> dict[str, list[str]]:
    """Per ResNet stage, the blocks whose shortcut is the identity (no `downsample`).

    Zeroing such a block leaves relu(0 + x) = x (x is already non-negative), so the network stays
    connected. A block with a projection shortcut carries the only path through its stage:
    zeroing it makes every image's features identical.
    """
    stages: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        parts = name.split(".")
        if len(parts) == 2 and parts[0].startswith("layer") and hasattr(module, "downsample"):
            if module.downsample is None:
                stages.setdefault(parts[0], []).append(name)
    return stages


def ablation_importance(
    model: nn.Module,
    parts: Sequence[str] | Mapping[str, Sequence[str]],
    score_fn: Callable[[nn.Module], float],
) -> Ablation:
    """Score the model with each part zeroed in turn; the model is returned unchanged.

    parts: prefixes such as ["layer1", "layer2"], or a mapping from a label to several prefixes
        ({"layer3": ["layer3.1"]}) to zero them together.
    score_fn: model -> score, higher is better (for example validation AUROC); it is called with
        the model in eval mode, once for the baseline and once per part.
    """
    named = dict(parts) if isinstance(parts, Mapping) else {part: [part] for part in parts}
    saved = copy.deepcopy(model.state_dict())
    rows = []
    with eval_mode(model):
        try:
            baseline = float(score_fn(model))
            for label, prefixes in named.items():
                targets = [p for name, p in model.named_parameters() if _matches(name, prefixes)]
                if not targets:
                    raise ValueError(f"{label}: no parameter name starts with {list(prefixes)}")
                with torch.no_grad():
                    for param in targets:
                        param.zero_()
                score = float(score_fn(model))
                model.load_state_dict(saved)
                rows.append(
                    {
                        "part": label,
                        "zeroed": sum(p.numel() for p in targets),
                        "score": score,
                        "drop": baseline - score,
                    }
                )
        finally:
            model.load_state_dict(saved)
    restored = model.state_dict()
    changed = [key for key, value in saved.items() if not torch.equal(restored[key], value)]
    if changed:
        raise RuntimeError(f"ablation did not restore {changed[:3]}: the model is not reusable")
    return Ablation(baseline, rows)
