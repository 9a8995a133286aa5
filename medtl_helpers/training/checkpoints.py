"""Checkpoint files that say what they are: architecture, head, preprocessing, threshold, origin.

A checkpoint holds the weights and plain-Python metadata: everything needed to rebuild the model
and use it as it was validated, plus where it came from (data source, a fingerprint and the
patients of its training split, profile, seed, versions). Files are written atomically, so a
crash or a full disk never leaves a half-written one. Loading uses
`torch.load(weights_only=True)`, which refuses pickled Python objects, and rebuilds the
architecture recorded in the file, so a ResNet-50 checkpoint is never poured into a ResNet-18.
`runs.py` keeps a training run's two checkpoints, `best.pt` and `last.pt`.
"""

from __future__ import annotations

import pickle
import time
import zipfile
from pathlib import Path

import torch
import torchvision
from torch import nn

from medtl_helpers.atomic import atomic_file
from medtl_helpers.config.version import __version__
from medtl_helpers.data.augment import IMAGENET_MEAN, IMAGENET_STD
from medtl_helpers.data.records import CLASSES
from medtl_helpers.errors import CheckpointError
from medtl_helpers.models import build_model

FORMAT = 1


def checkpoint_meta(
    model: nn.Module,
    *,
    image_size: int,
    data_source: str,
    profile: str,
    seed: int,
    threshold: float | None = None,
    **extra: object,
) -> dict:
    """Everything needed to rebuild and use the model later, as plain Python values."""
    return {
        "arch": model.medtl_arch,
        "head": model.medtl_head,
        "dropout": model.medtl_dropout,
        "weights": model.medtl_weights,
        "classes": list(CLASSES),
        "image_size": image_size,
        "normalisation": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "channels": 3},
        "threshold": threshold,
        "data_source": data_source,
        "profile": profile,
        "seed": seed,
        "versions": {
            "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__),
            "medtl_helpers": __version__,
        },
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        **extra,
    }


def save_checkpoint(path: Path, model: nn.Module, meta: dict, training: dict | None = None) -> Path:
    """Write model weights, metadata and (optionally) the state needed to resume, atomically.

    A write that fails (a full disk, a read-only folder) raises WriteError naming the file and
    the cause, and leaves the previous version of the file as it was.
    """
    payload = {"format": FORMAT, "meta": meta, "state_dict": model.state_dict()}
    if training is not None:
        payload["training"] = training
    with atomic_file(path) as file:
        torch.save(payload, file)
    return Path(path)


def read_checkpoint(path: Path) -> dict:
    """The raw payload, loaded safely; every way a file can be bad becomes a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}. Train first (python -m medtl_helpers train … --out "
            f"{path.parent}) or check the path."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} contains pickled Python objects, not only tensors, so it was refused "
            "(weights_only=True protects you from code hidden in checkpoints). Load only files "
            "you trust, and save with medtl_helpers.training.save_checkpoint."
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({type(err).__name__}). Copy it again, or use "
            "last.pt from the same run folder."
        ) from err
    if not isinstance(payload, dict) or not {"meta", "state_dict"} <= set(payload):
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path} is not a medtl checkpoint (found {found}; expected 'meta' and "
            "'state_dict'). Save checkpoints with save_checkpoint()."
        )
    return payload


def load_checkpoint(
    path: Path, arch: str | None = None, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    """Rebuild the recorded architecture and load the weights; `arch` double-checks the file."""
    payload = read_checkpoint(path)
    meta = payload["meta"]
    if arch is not None and arch != meta["arch"]:
        raise CheckpointError(
            f"{path} holds a {meta['arch']} checkpoint, not {arch}. Load it with "
            f"arch='{meta['arch']}' (or arch=None to use the recorded one)."
        )
    model = build_model(
        meta["arch"],
        len(meta["classes"]),
        pretrained="none",
        head=meta["head"],
        dropout=meta.get("dropout", 0.0),
        verbose=False,
    )
    model.medtl_weights = meta["weights"]
    load_weights(model, payload, path)
    return model.to(map_location), meta


def load_weights(model: nn.Module, payload: dict, path: Path) -> None:
    """Load a payload's state dict into `model`, refusing another architecture by name."""
    recorded, actual = payload["meta"]["arch"], getattr(model, "medtl_arch", None)
    if actual is not None and recorded != actual:
        raise CheckpointError(
            f"{path} was trained as {recorded}, but this model is {actual}: each architecture "
            f"needs its own checkpoint. Use load_checkpoint({str(path)!r}) to rebuild {recorded}."
        )
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(
            f"{path} does not fit this model ({first}). It was saved for "
            f"{recorded} with head '{payload['meta']['head']}': build the model the same way."
        ) from err
