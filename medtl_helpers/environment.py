"""The environment report every notebook prints after its imports."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch
import torchvision

import medtl_helpers
from medtl_helpers import config


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
    device = config.get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    return f"{cpu_model()}, {os.cpu_count()} cores"


def device_label(device: torch.device | str | None = None) -> str:
    """The device type with its hardware, as printed everywhere: "cpu (AMD EPYC, 2 cores)"."""
    device = config.get_device() if device is None else torch.device(device)
    return f"{device.type} ({hardware_name(device)})"


def environment_report(profile: config.Profile | None = None) -> str:
    """Device, versions, profile and the sizes it implies, in a few aligned lines."""
    profile = profile or config.get_profile()
    device = config.get_device()
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
        "weights": config.pretrained_choice(profile),
    }
    return "\n".join(f"{k:<11}{v}" for k, v in rows.items())
