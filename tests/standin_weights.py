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
import tempfile
from pathlib import Path

import torch
from torchvision.models import get_model, get_model_weights

ARCHS = ("resnet18", "resnet34", "resnet50")  # every architecture a profile's notebooks load
# Not 0: the notebooks seed their random initialisation with 0, and a stand-in equal to it would
# make the ImageNet branch indistinguishable from random init (07's two curves would coincide).
SEED = 2024


def write_standin_weights(torch_home: Path, archs=ARCHS) -> list[Path]:
    """Write a random state dict per arch to `torch_home`/hub/checkpoints/<file name>.

    Always rewritten (a second or two), so a file left by an older version never lingers; each
    file is written under a temporary name and moved into place, so readers never see half.
    """
    folder = Path(torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for arch in archs:
        path = folder / Path(get_model_weights(arch).IMAGENET1K_V1.url).name
        torch.manual_seed(SEED)
        handle, partial = tempfile.mkstemp(dir=folder, suffix=".partial")
        os.close(handle)
        torch.save(get_model(arch, weights=None).state_dict(), partial)
        os.replace(partial, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for file in write_standin_weights(Path(sys.argv[1]), sys.argv[2:] or ARCHS):
        print(file)
