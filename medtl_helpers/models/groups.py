"""Layer groups of a ResNet (stem, layer1-4, head), found by name prefix; backbone and head.

Freezing, discriminative learning rates and feature extraction all work on these groups.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

GROUPS = ("stem", "layer1", "layer2", "layer3", "layer4", "head")

# Top-level child of a torchvision ResNet -> layer group. relu/maxpool/avgpool hold no
# parameters but get a group so every module name has one (avgpool ends the backbone).
_GROUP_OF_CHILD = {
    "conv1": "stem",
    "bn1": "stem",
    "relu": "stem",
    "maxpool": "stem",
    **{f"layer{i}": f"layer{i}" for i in range(1, 5)},
    "avgpool": "layer4",
    "fc": "head",
}
# Prefixes added by nn.DataParallel and torch.compile; the group is decided by what follows.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _unwrapped(name: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def group_of(param_or_module_name: str) -> str:
    """The layer group of a parameter or module name, decided by its first dotted component.

    "layer3.0.conv1.weight" -> "layer3", because it *starts* with layer3; testing
    `"conv1" in name` instead would wrongly put it in the stem.
    """
    name = _unwrapped(param_or_module_name)
    first = name.split(".", 1)[0]
    if first not in _GROUP_OF_CHILD:
        raise ValueError(
            f"{param_or_module_name!r} is not part of a torchvision ResNet: its first component "
            f"must be one of {', '.join(_GROUP_OF_CHILD)} (groups: {', '.join(GROUPS)})"
        )
    return _GROUP_OF_CHILD[first]


def belongs_to(param_or_module_name: str, parts: Iterable[str]) -> bool:
    """Whether the name lies in one of `parts`: layer groups ("layer4", decided by `group_of`) or
    module names ("layer4.1", "layer4.1.bn1"), matched as a prefix at a dot boundary, so
    "layer4.1" holds "layer4.1.conv1.weight" and never "layer4.10.conv1.weight"."""
    parts = set(parts)
    if group_of(param_or_module_name) in parts:
        return True
    name = _unwrapped(param_or_module_name)
    return any(name == part or name.startswith(part + ".") for part in parts - set(GROUPS))


def split_backbone_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(backbone, head): images -> (B, C) pooled features, and features -> logits.

    Both share the model's own modules (and so its weights); head(backbone(x)) == model(x).
    Flatten(1) rather than squeeze(), which would drop the batch dimension of a batch of one.
    """
    stages = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")
    backbone = nn.Sequential(*(getattr(model, name) for name in stages), nn.Flatten(1))
    return backbone, model.fc
