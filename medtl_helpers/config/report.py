"""The environment report every notebook prints after its imports."""

from __future__ import annotations

import platform

import torch
import torchvision

from medtl_helpers.config.hardware import device_label, get_device, on_colab, precision_choice
from medtl_helpers.config.profiles import Profile, caps_note, get_profile, pretrained_choice
from medtl_helpers.config.version import __version__
from medtl_helpers.config.weights import weights_summary

COURSE_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")  # models.ARCHS


def environment_report(profile: Profile | None = None) -> str:
    """Device, versions, profile and the sizes it implies, in a few aligned lines."""
    profile = profile or get_profile()
    device = get_device()
    where = "Colab" if on_colab() else platform.system()
    rows = {
        "device": f"{device_label(device)}; {torch.get_num_threads()} CPU threads",
        "versions": (
            f"python {platform.python_version()}, torch {torch.__version__}, "
            f"torchvision {torchvision.__version__}, medtl_helpers {__version__}"
        ),
        "running on": where,
        "profile": (
            f"{profile.name}: {profile.image_size} px, batch {profile.batch_size}, "
            f"{profile.epochs} epoch(s), train images "
            f"{profile.max_train_images or 'all'}" + (f" ({caps_note()})" if caps_note() else "")
        ),
        "weights": _weights_line(profile),
        "precision": precision_choice(device)[1],
    }
    return "\n".join(f"{k:<11}{v}" for k, v in rows.items())


def _weights_line(profile: Profile) -> str:
    """'none' with why, or 'imagenet' with whether the profile's weights file is on disk."""
    choice = pretrained_choice(profile)
    if choice == "none":
        return "none: random initialisation (MEDTL_PRETRAINED=none, or the quick profile's default)"
    return f"imagenet, files {weights_summary(COURSE_ARCHS)}"
