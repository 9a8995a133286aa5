"""Stand-in ImageNet weights: random ResNet state dicts under torchvision's own file names.

With them in `$TORCH_HOME/hub/checkpoints`, `build_model(..., pretrained="imagenet")` loads a
file through the same code path as with the real weights, offline, so the tests take every
branch a notebook takes with ImageNet weights. `build_model` says that the file is a stand-in:
its SHA-256 does not match the digits torchvision puts in the name.

    python tests/standin_weights.py DIR [ARCH ...]   (then TORCH_HOME=DIR)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torchvision.models import get_model, get_model_weights

ARCHS = ("resnet18", "resnet34", "resnet50")  # every architecture a profile's notebooks load


def write_standin_weights(torch_home: Path, archs=ARCHS) -> list[Path]:
    """Write (once) a random state dict per arch to `torch_home`/hub/checkpoints/<file name>."""
    folder = Path(torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for arch in archs:
        path = folder / Path(get_model_weights(arch).IMAGENET1K_V1.url).name
        if not path.exists():
            torch.manual_seed(0)
            partial = path.with_suffix(".partial")
            torch.save(get_model(arch, weights=None).state_dict(), partial)
            os.replace(partial, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for file in write_standin_weights(Path(sys.argv[1]), sys.argv[2:] or ARCHS):
        print(file)
