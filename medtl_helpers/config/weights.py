"""Where torchvision keeps the ImageNet weights, and whether the file there is the real one.

The environment report says before any training whether the weights a notebook will use are
already on disk, will be downloaded on first use, or cannot be had (offline); `build_model`
loads them from the same place.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pooch
import torch
from torchvision.models import get_model_weights

from medtl_helpers.config.profiles import offline


def weights_file(arch: str) -> Path:
    """Where torchvision caches the ImageNet weights: $TORCH_HOME/hub/checkpoints/<file>.pth."""
    url = get_model_weights(arch).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


@functools.lru_cache(maxsize=8)
def _sha256_prefix_matches(path: Path, size: int, mtime_ns: int) -> bool:
    # size and mtime are in the key so that a replaced file is hashed again
    return pooch.file_hash(str(path), alg="sha256").startswith(path.stem.rsplit("-", 1)[-1])


def describe_weights_file(path: Path) -> str:
    """ "ImageNet weights ... from <path>" only for torchvision's published file, else "STAND-IN".

    torchvision names each weights file after the first hex digits of its SHA-256
    (resnet18-f37072fd.pth); a file under that name with other contents is a stand-in, such as
    the random weights the tests write to take the ImageNet code paths offline.
    """
    stat = path.stat()
    if _sha256_prefix_matches(path, stat.st_size, stat.st_mtime_ns):
        return f"ImageNet weights (IMAGENET1K_V1) from {path}"
    prefix = path.stem.rsplit("-", 1)[-1]
    return (
        f"STAND-IN weights file {path} (its SHA-256 does not start with {prefix}): NOT "
        "torchvision's ImageNet weights, so the numbers below say nothing about pretraining"
    )


def weights_summary(archs: tuple[str, ...]) -> str:
    """One line on the ImageNet weights files of every architecture the course builds (02 and
    06 build deeper ResNets than the profile's default): present, stand-in, or still missing."""
    present, stand_in, missing = [], [], []
    for arch in archs:
        path = weights_file(arch)
        if not path.is_file():
            missing.append(arch)
        elif describe_weights_file(path).startswith("STAND-IN"):
            stand_in.append(arch)
        else:
            present.append(arch)
    parts = [f"in {weights_file(archs[0]).parent}"]
    if present:
        parts.append(f"{', '.join(present)} present")
    if stand_in:
        parts.append(f"{', '.join(stand_in)}: STAND-IN files, NOT torchvision's ImageNet weights")
    if missing and offline():
        parts.append(
            f"{', '.join(missing)} missing, and MEDTL_OFFLINE=1 forbids downloading them: a "
            "notebook that builds one stops and says how to get it (or use MEDTL_PRETRAINED=none)"
        )
    elif missing:
        parts.append(f"{', '.join(missing)} not downloaded yet (each is fetched on first use)")
    return "; ".join(parts)
