"""What every notebook reads first: the profile and folders, the device and what it can do (the
precision `fit` uses), and the environment report.

Environment variables:
    MEDTL_PROFILE     quick | cpu | gpu (default: gpu when CUDA is present, else cpu)
    MEDTL_DATA        a Kermany folder (with train/), or a folder holding one (chest_xray/, found
                      one level down): both are only read, never written to. Any other folder
                      takes the place of data/ for downloads and caches
    MEDTL_CACHE       where tensor caches are written (default: data/cache in the project, or
                      $MEDTL_DATA/cache when MEDTL_DATA holds no Kermany data)
    MEDTL_KAGGLE_INPUT  where Kaggle mounts data sets (default: /kaggle/input). The Kermany
                      data set there (chest-xray-pneumonia/chest_xray) is used when MEDTL_DATA
                      names none, before data/chest_xray; it is only read, never written to
    MEDTL_PRETRAINED  imagenet | none (default: imagenet; none in the quick profile)
    MEDTL_OFFLINE     1 = never touch the network (set by the tests)
    MEDTL_PROGRESS    auto | text (default: auto; text = each progress bar as one final line)
"""

from medtl_helpers.config.hardware import (
    AMP_CHOICES,
    amp_dtype,
    cpu_flags,
    cpu_model,
    device_label,
    get_device,
    hardware_name,
    native_bf16,
    on_colab,
    precision_choice,
    precision_label,
    precision_name,
)
from medtl_helpers.config.profiles import (
    PROFILE_NAMES,
    PROFILES,
    Profile,
    cache_dir,
    caps,
    caps_note,
    data_dir,
    data_setting,
    detect_profile,
    get_profile,
    offline,
    pretrained_choice,
    project_root,
    seed_everything,
)
from medtl_helpers.config.report import environment_report

__all__ = [
    "AMP_CHOICES",
    "PROFILES",
    "PROFILE_NAMES",
    "Profile",
    "amp_dtype",
    "cache_dir",
    "caps",
    "caps_note",
    "cpu_flags",
    "cpu_model",
    "data_dir",
    "data_setting",
    "detect_profile",
    "device_label",
    "environment_report",
    "get_device",
    "get_profile",
    "hardware_name",
    "native_bf16",
    "offline",
    "on_colab",
    "precision_choice",
    "precision_label",
    "precision_name",
    "pretrained_choice",
    "project_root",
    "seed_everything",
]
