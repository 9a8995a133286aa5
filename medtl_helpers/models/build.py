"""ResNet-18 to 152 with the course's two-class head.

`build_model` uses torchvision's ResNets through the weights API (`weights=`, never the
deprecated `pretrained=True`) and swaps the 1000-class ImageNet classifier for the course head.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights

from medtl_helpers import config
from medtl_helpers.config.weights import describe_weights_file, weights_file
from medtl_helpers.errors import WeightsUnavailableError, in_terms

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
HEADS = ("linear", "mlp")
MLP_HIDDEN = 256


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}: use one of {', '.join(ARCHS)}")


def _unavailable(arch: str, reason: str) -> WeightsUnavailableError:
    path, url = weights_file(arch), get_model_weights(arch).IMAGENET1K_V1.url
    torch_home = os.environ.get("TORCH_HOME") or "unset, so the default ~/.cache/torch is used"
    if not Path(torch_home).is_absolute() and "TORCH_HOME" in os.environ:
        # a relative TORCH_HOME is read from the current folder, which in a notebook is notebooks/
        torch_home += f", a relative path read from the current folder {Path.cwd()}"
    return WeightsUnavailableError(
        f"ImageNet weights for {arch} are not available: {reason}.\n"
        f"  expected file: {path.name}\n"
        f"  expected at:   {path.absolute()}\n"
        f"  (the folder is $TORCH_HOME/hub/checkpoints; TORCH_HOME is {torch_home})\n"
        f"Fix: on a machine with network download {url} and copy it to the path above "
        f"(or point TORCH_HOME at a folder whose hub/checkpoints/ holds it), "
        "or train from random initialisation with "
        + in_terms("MEDTL_PRETRAINED=none.", "--pretrained none.")
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

    pretrained: "imagenet", "none", or None for `config.pretrained_choice()` (MEDTL_PRETRAINED;
        unset, "none" in the quick profile and "imagenet" elsewhere). Missing ImageNet weights raise
        WeightsUnavailableError; they never silently become random weights.
    head: "linear" (Dropout first when dropout > 0) or "mlp" (Linear-ReLU-Dropout-Linear).
    Records medtl_arch, medtl_head, medtl_dropout, medtl_weights ("imagenet" | "random").
    The head is drawn from the global random stream after the backbone's random initialisation
    (which runs even when ImageNet weights are loaded afterwards), so one seed gives different
    heads to different architectures; `evaluation.ensemble.build_member` draws it from the seed
    alone.
    """
    _check_arch(arch)
    if num_classes != 2:
        raise ValueError(
            f"num_classes={num_classes}: the course's models are two-class (NORMAL, PNEUMONIA); "
            "its metrics, thresholds and checkpoints assume it. Build torchvision's "
            "get_model(arch, num_classes=...) directly for another task."
        )
    if head not in HEADS:
        raise ValueError(f"Unknown head {head!r}: use one of {', '.join(HEADS)}")
    choice = config.pretrained_choice() if pretrained is None else pretrained.strip().lower()
    if choice not in ("imagenet", "none"):
        raise ValueError(f"pretrained={pretrained!r} is not understood: use 'imagenet' or 'none'")

    model = get_model(arch, weights=None)
    if choice == "imagenet":
        model.load_state_dict(_imagenet_state_dict(arch, verbose))
        if verbose:
            print(f"{arch}: {describe_weights_file(weights_file(arch))}")
    elif verbose:
        print(
            f"{arch}: random initialisation ("
            + in_terms(
                "MEDTL_PRETRAINED=none, or the quick profile's default",
                "--pretrained none, or the quick profile's default",
            )
            + "), not ImageNet weights"
        )

    model.fc = _make_head(model.fc.in_features, num_classes, head, dropout)
    model.medtl_arch, model.medtl_head, model.medtl_dropout = arch, head, dropout
    model.medtl_weights = "imagenet" if choice == "imagenet" else "random"
    return model
