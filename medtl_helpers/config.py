"""Profiles, device, seeding, folders and the environment report: what every notebook reads first.

A profile only changes sizes (data subset, image size, batch size, epochs); the code that runs is
the same in all three, so what the quick profile tests is what a student runs.

Environment variables:
    MEDTL_PROFILE     quick | cpu | gpu (default: gpu when CUDA is present, else cpu)
    MEDTL_DATA        a Kermany folder (with train/) or a folder holding chest_xray/ and downloads
    MEDTL_PRETRAINED  imagenet | none (default: imagenet; none in the quick profile)
    MEDTL_OFFLINE     1 = never touch the network (set by the tests)
"""

from __future__ import annotations

import os
import platform
import random
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torchvision

import medtl_helpers
from medtl_helpers.errors import DeviceError

PROFILE_NAMES = ("quick", "cpu", "gpu")


@dataclass(frozen=True)
class Profile:
    """The sizes one profile implies. `max_train_images=None` means the whole training set."""

    name: str
    image_size: int
    batch_size: int
    epochs: int
    max_train_images: int | None
    max_eval_images: int | None
    synthetic_images: int
    arch: str = "resnet18"


PROFILES = {
    "quick": Profile("quick", 64, 32, 1, 800, 200, 1200),
    "cpu": Profile("cpu", 128, 32, 3, None, None, 3000),
    "gpu": Profile("gpu", 224, 64, 8, None, None, 6000),
}


def detect_profile() -> str:
    return "gpu" if torch.cuda.is_available() else "cpu"


def get_profile(name: str | None = None, **overrides: object) -> Profile:
    """Return the profile named by `name`, else $MEDTL_PROFILE, else the detected one."""
    chosen = (name or os.environ.get("MEDTL_PROFILE") or detect_profile()).strip().lower()
    if chosen not in PROFILES:
        raise ValueError(
            f"Unknown profile {chosen!r} (from MEDTL_PROFILE or the argument): "
            f"use one of {', '.join(PROFILE_NAMES)}"
        )
    return replace(PROFILES[chosen], **overrides)


def get_device(prefer: str | None = None) -> torch.device:
    """CUDA when present (or when asked for), else Apple MPS, else CPU."""
    if prefer is not None:
        try:
            device = torch.device(prefer)
        except RuntimeError as err:
            raise DeviceError(
                f"Unknown device {prefer!r}: use cpu, cuda, cuda:1 or mps (or leave it out to "
                "use the GPU when there is one)."
            ) from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceError(
                "CUDA was requested but torch sees no GPU: on Colab choose "
                "Runtime > Change runtime type > GPU, or use --device cpu (device='cpu')."
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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


def data_dir() -> Path:
    """Where downloads and caches are written.

    $MEDTL_DATA when it is a writable folder that is not itself a Kermany dataset (we never
    write into somebody's dataset), else <project>/data.
    """
    setting = data_setting()
    if setting is not None and not (setting / "train").is_dir():
        return setting
    return project_root() / "data"


def cache_dir() -> Path:
    return data_dir() / "cache"


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


def on_colab() -> bool:
    return "google.colab" in sys.modules


def cpu_model() -> str:
    """The processor's model name ("AMD EPYC 7B13"), from /proc/cpuinfo on Linux."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_name(device: torch.device | str | None = None) -> str:
    """The GPU's name and memory, or the CPU's name and core count (default: the course device)."""
    device = get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    return f"{cpu_model()}, {os.cpu_count()} cores"


def device_label(device: torch.device | str | None = None) -> str:
    """The device type with its hardware, as printed everywhere: "cpu (AMD EPYC, 2 cores)"."""
    device = get_device() if device is None else torch.device(device)
    return f"{device.type} ({hardware_name(device)})"


def environment_report(profile: Profile | None = None) -> str:
    """Device, versions, profile and the sizes it implies, in a few aligned lines."""
    profile = profile or get_profile()
    device = get_device()
    where = "Colab" if on_colab() else platform.system()
    rows = {
        "device": f"{device_label(device)}; {torch.get_num_threads()} CPU threads",
        "versions": (
            f"python {platform.python_version()}, torch {torch.__version__}, "
            f"torchvision {torchvision.__version__}, medtl_helpers {medtl_helpers.__version__}"
        ),
        "running on": where,
        "profile": (
            f"{profile.name}: {profile.image_size} px, batch {profile.batch_size}, "
            f"{profile.epochs} epoch(s), train images "
            f"{profile.max_train_images or 'all'}"
        ),
        "weights": pretrained_choice(profile),
    }
    return "\n".join(f"{k:<11}{v}" for k, v in rows.items())
