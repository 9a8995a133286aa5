"""Profiles and folders: the sizes a run uses and where its data, caches and downloads live.

A profile changes sizes (data subset, image size, batch size, epochs, and the notebooks' loop
sizes: `Profile.scale`) and, in quick, the default weights: random initialisation, so that tests
need no download (`pretrained_choice`; MEDTL_PRETRAINED=imagenet overrides it). The code that
runs is otherwise the same in all three, so what the quick profile tests is what a student runs.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

PROFILE_NAMES = ("quick", "cpu", "gpu")
# Where Kaggle mounts the data sets a notebook adds (Add Input), and the folder of the Kermany
# X-rays there (kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia).
KAGGLE_INPUT = "/kaggle/input"
KAGGLE_DATASET = "chest-xray-pneumonia"


@dataclass(frozen=True)
class Profile:
    """The sizes one profile implies. `max_train_images=None` means the whole training set.

    `scale` names the profile whose loop sizes the notebooks use (seeds, fractions, K values,
    optimiser steps, episodes): the profile's own, or "quick" in a capped smoke run (`caps`), so
    that the gpu profile's image size, architectures and batch sizes run on a CPU in minutes.
    """

    name: str
    image_size: int
    batch_size: int
    epochs: int
    max_train_images: int | None
    max_eval_images: int | None
    synthetic_images: int
    arch: str = "resnet18"
    scale: str = ""

    def __post_init__(self) -> None:
        if not self.scale:
            object.__setattr__(self, "scale", self.name)


PROFILES = {
    "quick": Profile("quick", 64, 32, 1, 800, 200, 1200),
    "cpu": Profile("cpu", 128, 32, 3, None, None, 3000),
    "gpu": Profile("gpu", 224, 64, 8, None, None, 6000),
}


def detect_profile() -> str:
    return "gpu" if torch.cuda.is_available() else "cpu"


def get_profile(name: str | None = None, **overrides: object) -> Profile:
    """Return the profile named by `name`, else $MEDTL_PROFILE, else the detected one.

    MEDTL_MAX_IMAGES and MEDTL_MAX_EPOCHS cap its sizes (see `caps`), whatever the profile;
    under either cap the loop sizes are the quick profile's (`Profile.scale`).
    """
    chosen = (name or os.environ.get("MEDTL_PROFILE") or detect_profile()).strip().lower()
    if chosen not in PROFILES:
        raise ValueError(
            f"Unknown profile {chosen!r} (from MEDTL_PROFILE or the argument): "
            f"use one of {', '.join(PROFILE_NAMES)}"
        )
    profile = replace(PROFILES[chosen], **overrides)
    found = caps()
    images, epochs = found.get("images"), found.get("epochs")
    if found:
        profile = replace(profile, scale="quick")
    if images is not None:
        profile = replace(
            profile,
            max_train_images=min(profile.max_train_images or images, images),
            max_eval_images=min(profile.max_eval_images or images, images),
            synthetic_images=min(profile.synthetic_images, 3 * images),  # train, val, test
        )
    if epochs is not None:
        profile = replace(profile, epochs=min(profile.epochs, epochs))
    return profile


def caps() -> dict[str, int]:
    """Caps that every profile honours, for a smoke run of its code paths on a small machine.

    MEDTL_MAX_IMAGES: at most that many images per split. MEDTL_MAX_EPOCHS: `fit` trains every
    stage for at most that many epochs. Under either, the notebooks take the quick profile's loop
    sizes (`Profile.scale`). Runs under a cap say so in their banners.
    """
    found = {}
    for key, variable in (("images", "MEDTL_MAX_IMAGES"), ("epochs", "MEDTL_MAX_EPOCHS")):
        value = os.environ.get(variable, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{variable}={value!r}: use a whole number of at least 1")
            found[key] = int(value)
    return found


def caps_note() -> str | None:
    """What the banners say about the caps in force, or None without caps."""
    found = caps()
    if not found:
        return None
    parts = [f"MEDTL_MAX_{key.upper()}={value}" for key, value in found.items()]
    return (
        f"{', '.join(parts)}: a capped smoke run with the quick profile's loop sizes; "
        "its numbers measure nothing"
    )


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch.Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def project_root() -> Path:
    """The repository folder (holding pyproject.toml) above the working directory, else the cwd."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "medtl_helpers").is_dir():
            return folder
    return here


def _resolve(path: str) -> Path:
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate.resolve()
    return (project_root() / candidate).resolve()


def data_setting() -> Path | None:
    """$MEDTL_DATA resolved against the cwd, then against the project root; None when unset."""
    value = os.environ.get("MEDTL_DATA", "").strip()
    return _resolve(value) if value else None


def kermany_subfolders(folder: Path) -> list[Path]:
    """The subfolders of `folder` that hold a Kermany dataset (a train/ folder), chest_xray first.

    Hidden folders and macOS's __MACOSX are left out: archive debris, not data.
    """
    try:
        inside = sorted(Path(folder).iterdir())
    except OSError:  # not a folder, or not ours to list
        return []
    found = [
        sub
        for sub in inside
        if not sub.name.startswith((".", "__MACOSX")) and (sub / "train").is_dir()
    ]
    return sorted(found, key=lambda sub: sub.name != "chest_xray")


def holds_kermany_data(folder: Path) -> bool:
    """True when `folder` is a Kermany dataset (it has train/) or holds one a level down."""
    return (Path(folder) / "train").is_dir() or bool(kermany_subfolders(folder))


def kaggle_input() -> Path:
    """Where Kaggle mounts a notebook's data sets: $MEDTL_KAGGLE_INPUT, else /kaggle/input.

    Kaggle mounts that folder read-only: the course never writes there (see `data_dir`).
    """
    value = os.environ.get("MEDTL_KAGGLE_INPUT", "").strip()
    return _resolve(value) if value else Path(KAGGLE_INPUT)


def in_kaggle_input(folder: Path) -> bool:
    """True when `folder` is the Kaggle input folder or lies inside it."""
    return Path(folder).resolve().is_relative_to(kaggle_input().resolve())


def kaggle_data() -> Path | None:
    """The Kermany data set as Kaggle mounts it (<input>/chest-xray-pneumonia/chest_xray), or None.

    The archive inside holds the data twice (chest_xray/ and chest_xray/chest_xray/) and a
    __MACOSX/ folder: the outer chest_xray/ is the one used, and since only its train/, val/ and
    test/ folders are read, no image is counted twice.
    """
    # <input>/<slug>, or the newer mount <input>/datasets/<owner>/<slug>
    mounts = [kaggle_input() / KAGGLE_DATASET]
    mounts += sorted(kaggle_input().glob(f"datasets/*/{KAGGLE_DATASET}"))
    for dataset in mounts:
        if (dataset / "train").is_dir():
            return dataset
        found = kermany_subfolders(dataset)  # chest_xray/ first; __MACOSX is never a candidate
        if found:
            return found[0]
    return None


def data_dir() -> Path:
    """Where downloads and extracted archives are written, and where caches go by default.

    A folder that holds a Kermany dataset, itself or one level down (~/Downloads holding
    chest_xray/), is the user's data as downloaded: the course only reads it and never writes
    into it or beside it. So $MEDTL_DATA is used here only when it holds no Kermany data (a
    folder the user keeps for the course's downloads and caches, as before); otherwise, and when
    MEDTL_DATA is unset, it is the course's own <project>/data. Nor is it ever inside Kaggle's
    input folder, which is read-only (MEDTL_DATA=/kaggle/input holds the data two levels down).
    """
    setting = data_setting()
    if setting is not None and not holds_kermany_data(setting) and not in_kaggle_input(setting):
        return setting
    return project_root() / "data"


def cache_dir() -> Path:
    """Where tensor caches are written: $MEDTL_CACHE when set, else <data_dir()>/cache.

    The default is the course's <project>/data/cache, or $MEDTL_DATA/cache for a MEDTL_DATA
    folder that holds no Kermany data (see `data_dir`); never a folder holding a dataset. A
    folder named by MEDTL_CACHE (relative paths as for MEDTL_DATA) is used as it is.
    """
    value = os.environ.get("MEDTL_CACHE", "").strip()
    return _resolve(value) if value else data_dir() / "cache"


def offline() -> bool:
    return os.environ.get("MEDTL_OFFLINE", "").strip() == "1"


def pretrained_choice(profile: Profile | None = None) -> str:
    """'imagenet' or 'none', from MEDTL_PRETRAINED; unset, the quick profile's default is 'none'.

    The quick profile trains from random initialisation unless asked otherwise, so the tests
    need no download; an explicit MEDTL_PRETRAINED=imagenet is honoured in every profile.
    """
    profile = profile or get_profile()
    value = os.environ.get("MEDTL_PRETRAINED", "").strip().lower()
    if value == "":
        return "none" if profile.name == "quick" else "imagenet"
    if value in ("imagenet", "none"):
        return value
    raise ValueError(f"MEDTL_PRETRAINED={value!r} is not understood: use 'imagenet' or 'none'")
