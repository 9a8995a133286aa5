"""Training stages: what is frozen, which learning rates, and a fresh optimizer and scheduler each.

Progressive fine-tuning trains the head first, then later stages, then everything. `fit` builds a
new optimizer for each stage, over the parameters that stage trains: a design choice, not a
necessity. One optimizer could instead take the unfrozen groups with `add_param_group` and keep
Adam's moment estimates for the layers that trained before; the new one starts them at zero.
Whichever optimizer trains, the scheduler must be built for (or stepped on) that optimizer: a
scheduler kept from an earlier stage still points at the old optimizer, so stepping it changes
nothing the new optimizer uses, and the learning rate silently stays put.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from medtl_helpers.models import GROUPS, group_of
from medtl_helpers.models.freezing import freeze


@dataclass
class Stage:
    """One phase of training. `group_lr` maps layer groups to their own learning rate."""

    name: str = "train"
    epochs: int = 1
    freeze: str | Sequence[str] = "none"
    lr: float = 1e-3
    group_lr: dict[str, float] = field(default_factory=dict)
    weight_decay: float = 1e-4
    schedule: str = "cosine"

    def as_dict(self) -> dict:
        data = asdict(self)
        data["freeze"] = data["freeze"] if isinstance(data["freeze"], str) else list(data["freeze"])
        return data


def discriminative_lrs(base_lr: float, decay: float = 0.5) -> dict[str, float]:
    """head gets base_lr, layer4 base_lr*decay, layer3 base_lr*decay**2, ... stem the smallest.

    The usual argument (05, sections 2 and 4) has two parts. What Yosinski et al. (2014)
    measured, starting from the known observation that first layers learn Gabor-like filters and
    colour blobs, between networks trained on two halves of ImageNet: kept frozen, the first
    layers transfer with no loss while later layers cost performance (fine-tuned after the
    transfer, copying the first n layers gave a boost over training from scratch for almost any
    n). What the course infers from it, and the paper did not test: early layers should therefore
    move least, and the new, random head most (the paper compared frozen and fine-tuned layers,
    not per-layer rates). It is an argument about pretrained weights: from a random start there
    is nothing in early layers to keep, and it does not apply.
    """
    return {group: base_lr * decay**depth for depth, group in enumerate(reversed(GROUPS))}


def progressive_stages(
    epochs: Sequence[int] = (1, 1, 1),
    lr: float = 1e-3,
    decay: float = 0.5,
    stage_lrs: Sequence[float] | None = None,
) -> list[Stage]:
    """Head only, then layer3-4 and head, then everything with discriminative learning rates.

    `stage_lrs` are the three stages' peak (head) rates, by default lr, lr/2 and lr/4: each
    stage that unfreezes more pretrained layers starts lower. `decay=1.0` with
    `stage_lrs=(lr, lr, lr)` keeps the staging and gives every group of every stage `lr`.
    """
    head, top, full = epochs
    head_lr, top_lr, full_lr = (lr, lr / 2, lr / 4) if stage_lrs is None else stage_lrs
    return [
        Stage("head", head, "all", head_lr),
        Stage("top", top, ["stem", "layer1", "layer2"], top_lr, discriminative_lrs(top_lr, decay)),
        Stage("all", full, "none", full_lr, discriminative_lrs(full_lr, decay)),
    ]


def make_optimizer(model: nn.Module, stage: Stage) -> torch.optim.Optimizer:
    """A new AdamW over the trainable parameters, one parameter group per layer group.

    New, so its moment estimates (each parameter's running gradient mean and variance) start at
    zero: a layer that trained in the stage before loses them at the stage boundary.
    """
    freeze(model, stage.freeze)
    groups: dict[str, list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault(group_of(name), []).append(param)
    if not groups:
        raise ValueError(f"Stage '{stage.name}' leaves no trainable parameter: freeze less.")
    param_groups = [
        {"params": params, "lr": stage.group_lr.get(group, stage.lr), "name": group}
        for group, params in groups.items()
    ]
    return torch.optim.AdamW(param_groups, lr=stage.lr, weight_decay=stage.weight_decay)


def warmup_steps(stage: Stage, steps_per_epoch: int) -> int:
    """How many of the stage's first steps run below its peak rate (0 for a constant schedule).

    The cosine schedule climbs linearly and reaches the peak at step max(1, total // 20), 5% of
    the stage's steps, so the steps before it are the warm-up. A stage of fewer than 40 steps
    (one short epoch, say) has none: its first step is already at the peak rate.
    """
    if stage.schedule != "cosine":
        return 0
    return max(1, stage.epochs * steps_per_epoch // 20) - 1


def make_scheduler(
    optimizer: torch.optim.Optimizer, stage: Stage, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-batch schedule for this stage's optimizer: cosine decay after a warm-up (see
    `warmup_steps`: none in a stage of fewer than 40 steps), or constant."""
    total = max(1, stage.epochs * steps_per_epoch)
    # 5% of the stage warms up: in its first steps Adam's second-moment estimate rests on a few
    # gradients only, so full-size steps there are erratic (Liu et al. 2020, RAdam).
    warmup = 1 + warmup_steps(stage, steps_per_epoch)
    if stage.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if stage.schedule != "cosine":
        raise ValueError(f"Unknown schedule {stage.schedule!r}: use 'cosine' or 'constant'")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        # The cosine ends at 2% of the peak, not at 0, so the last epoch's steps still move.
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
