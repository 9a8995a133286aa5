"""Residual blocks, ResNet-18 to 152 with a two-class head, and the layer groups freezing uses.

`BasicBlock` and `Bottleneck` are the course's own readable versions of the blocks notebook 01
builds step by step; their parameter names match torchvision's, so torchvision's weights load
into them and the two can be compared output for output. `build_model` uses torchvision's
ResNets through the weights API (`weights=`, never the deprecated `pretrained=True`) and swaps
the 1000-class ImageNet classifier for the course head.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights

from medtl_helpers import config
from medtl_helpers.errors import WeightsUnavailableError

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
GROUPS = ("stem", "layer1", "layer2", "layer3", "layer4", "head")
HEADS = ("linear", "mlp")
MLP_HIDDEN = 256

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


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """1x1 conv + BN so the shortcut matches the residual's shape; None when it already does."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN layers plus a shortcut: the block of ResNet-18 and ResNet-34.

    The first conv carries the stride. The shortcut is the identity, or a 1x1 conv (with the
    same stride) + BN when the spatial size or channel count changes. It is called
    `downsample`, as in torchvision, so state dicts are interchangeable.
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(F(x) + shortcut(x)) for x of shape (B, in, H, W) -> (B, out, H/stride, W/stride).

        The addition is what lets gradients reach early layers undiminished: d(out)/dx
        contains the identity (or the projection) whatever F has learned.
        """
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 (reduce to `width`) -> 3x3 (stride) -> 1x1 (expand to width*expansion), plus shortcut.

    The block of ResNet-50/101/152: the expensive 3x3 conv runs on `width` channels, a quarter
    of the block's output, which is how ResNet-50 is deeper than ResNet-34 at similar cost. The
    stride sits on the 3x3 conv, as in torchvision ("ResNet v1.5").
    """

    def __init__(self, in_channels: int, width: int, stride: int = 1, expansion: int = 4) -> None:
        super().__init__()
        out_channels = width * expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(F(x) + shortcut(x)): (B, in, H, W) -> (B, width*expansion, H/stride, W/stride)."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}: use one of {', '.join(ARCHS)}")


def weights_file(arch: str) -> Path:
    """Where torchvision caches the ImageNet weights: $TORCH_HOME/hub/checkpoints/<file>.pth."""
    _check_arch(arch)
    url = get_model_weights(arch).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def _unavailable(arch: str, reason: str) -> WeightsUnavailableError:
    path, url = weights_file(arch), get_model_weights(arch).IMAGENET1K_V1.url
    torch_home = os.environ.get("TORCH_HOME") or "unset, so the default ~/.cache/torch is used"
    return WeightsUnavailableError(
        f"ImageNet weights for {arch} are not available: {reason}.\n"
        f"  expected file: {path.name}\n"
        f"  expected at:   {path}\n"
        f"  (the folder is $TORCH_HOME/hub/checkpoints; TORCH_HOME is {torch_home})\n"
        f"Fix: on a machine with network download {url} and copy it to the path above "
        f"(or point TORCH_HOME at a folder whose hub/checkpoints/ holds it), "
        f"or train from random initialisation with MEDTL_PRETRAINED=none."
    )


def _imagenet_state_dict(arch: str, verbose: bool) -> dict[str, torch.Tensor]:
    """The cached file when present, else a download; an error rather than random weights."""
    path = weights_file(arch)
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        # A truncated or foreign file fails inside the unpickler in many ways (KeyError,
        # UnpicklingError, RuntimeError ...); each means the same thing to the user.
        except Exception as err:
            raise _unavailable(
                arch, f"the cached file cannot be read ({err}); delete it and run again"
            ) from err
    if config.offline():
        raise _unavailable(arch, "the file is not cached and MEDTL_OFFLINE=1 forbids downloading")
    try:
        return get_model_weights(arch).IMAGENET1K_V1.get_state_dict(
            progress=verbose, check_hash=True, weights_only=True
        )
    except (URLError, OSError, RuntimeError) as err:
        raise _unavailable(arch, f"the download failed ({err})") from err


def _make_head(in_features: int, num_classes: int, head: str, dropout: float) -> nn.Module:
    if head == "mlp":
        # No BatchNorm1d: it fails on a last batch of one sample in training mode.
        return nn.Sequential(
            nn.Linear(in_features, MLP_HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(MLP_HIDDEN, num_classes),
        )
    if dropout > 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))
    return nn.Linear(in_features, num_classes)


def build_model(
    arch: str = "resnet18",
    num_classes: int = 2,
    pretrained: str | None = None,
    head: str = "linear",
    dropout: float = 0.0,
    verbose: bool = True,
) -> nn.Module:
    """A torchvision ResNet with ImageNet weights (or random init) and a fresh course head.

    pretrained: "imagenet", "none", or None for `config.pretrained_choice()` ("none" in the
        quick profile or with MEDTL_PRETRAINED=none). Missing ImageNet weights raise
        WeightsUnavailableError; they never silently become random weights.
    head: "linear" (Dropout first when dropout > 0) or "mlp" (Linear-ReLU-Dropout-Linear).
    Records medtl_arch, medtl_head, medtl_dropout, medtl_weights ("imagenet" | "random").
    """
    _check_arch(arch)
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}: use one of {', '.join(HEADS)}")
    choice = config.pretrained_choice() if pretrained is None else pretrained.strip().lower()
    if choice not in ("imagenet", "none"):
        raise ValueError(f"pretrained={pretrained!r} is not understood: use 'imagenet' or 'none'")

    model = get_model(arch, weights=None)
    if choice == "imagenet":
        model.load_state_dict(_imagenet_state_dict(arch, verbose))
        if verbose:
            print(f"{arch}: ImageNet weights (IMAGENET1K_V1) from {weights_file(arch)}")
    elif verbose:
        print(
            f"{arch}: random initialisation (MEDTL_PRETRAINED=none or quick profile), "
            "not ImageNet weights"
        )

    model.fc = _make_head(model.fc.in_features, num_classes, head, dropout)
    model.medtl_arch, model.medtl_head, model.medtl_dropout = arch, head, dropout
    model.medtl_weights = "imagenet" if choice == "imagenet" else "random"
    return model


def group_of(param_or_module_name: str) -> str:
    """The layer group of a parameter or module name, decided by its first dotted component.

    "layer3.0.conv1.weight" -> "layer3", because it *starts* with layer3; testing
    `"conv1" in name` instead would wrongly put it in the stem.
    """
    name = param_or_module_name
    for prefix in _WRAPPER_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
    first = name.split(".", 1)[0]
    if first not in _GROUP_OF_CHILD:
        raise ValueError(
            f"{param_or_module_name!r} is not part of a torchvision ResNet: its first component "
            f"must be one of {', '.join(_GROUP_OF_CHILD)} (groups: {', '.join(GROUPS)})"
        )
    return _GROUP_OF_CHILD[first]


def split_backbone_head(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(backbone, head): images -> (B, C) pooled features, and features -> logits.

    Both share the model's own modules (and so its weights); head(backbone(x)) == model(x).
    Flatten(1) rather than squeeze(), which would drop the batch dimension of a batch of one.
    """
    stages = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")
    backbone = nn.Sequential(*(getattr(model, name) for name in stages), nn.Flatten(1))
    return backbone, model.fc
