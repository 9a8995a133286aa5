"""`grade`'s data: what every submission's kernel loads, the same for every student.

A graded notebook needs data it can load, or every cell after its first data cell fails and the
student is blamed. By default each kernel gets the quick profile's own data, the synthetic
X-rays (`MEDTL_SOURCE=synthetic`): generated from a fixed seed, so every student's run sees the
same images, and nothing is shared that one student's code could change for another.
`--data PATH` names real data instead, prepared once per grading run: a Kermany folder (itself or
one level down), whose tensor cache at the quick profile's size is built once into a read-only
folder and linked into each submission's own cache folder; or a folder holding the quick
profile's PneumoniaMNIST file. The given folder is only read.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from medtl_helpers import config
from medtl_helpers.config.profiles import kermany_subfolders
from medtl_helpers.course.grading import GradingError


@dataclass
class GradingData:
    """What the kernels read: `env` for every kernel, and a prepared cache to link into each."""

    describe: str  # for the report: which data the notebooks ran on
    env: dict[str, str] = field(default_factory=dict)
    cache: Path | None = None

    def environment(self, folder: Path) -> dict[str, str]:
        """One submission's data settings: the shared ones plus its own writable folders."""
        own_data, own_cache = folder / "data", folder / "cache"
        own_data.mkdir(parents=True, exist_ok=True)
        own_cache.mkdir(parents=True, exist_ok=True)
        if self.cache is not None:
            for file in self.cache.iterdir():
                _link(file, own_cache / file.name)
        return {"MEDTL_DATA": str(own_data), "MEDTL_CACHE": str(own_cache), **self.env}


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # read-only files, shared; a kernel can only replace its own link
    except OSError:
        shutil.copy2(source, target)  # another file system


def _kermany_root(folder: Path) -> Path | None:
    if (folder / "train").is_dir():
        return folder
    inner = kermany_subfolders(folder)
    return inner[0] if inner else None


def _build_cache(root: Path, cache: Path) -> None:
    """The quick profile's tensor caches of `root`, made once, then made read-only."""
    from medtl_helpers.data.cache import TensorCache
    from medtl_helpers.data.sources import cache_folder

    cache_folder(root, config.PROFILES["quick"].image_size, TensorCache(cache))
    for file in cache.iterdir():
        file.chmod(0o444)
    cache.chmod(0o555)


def grading_data(given: Path | None, workdir: Path) -> GradingData:
    """The data for one grading run; `workdir` holds what is prepared for all submissions.

    Without `given`: the quick profile's synthetic X-rays. With it: a Kermany folder or a
    folder holding the quick profile's PneumoniaMNIST file; anything else is a GradingError.
    """
    if given is None:
        return GradingData(
            "the quick profile's synthetic X-rays (the same generated set for every student)",
            {"MEDTL_SOURCE": "synthetic"},
        )
    folder = Path(given).expanduser().resolve()
    if not folder.is_dir():
        raise GradingError(
            f"--data {given}: no such folder. Give a Kermany folder, or leave --data out to "
            "grade on the quick profile's synthetic X-rays."
        )
    root = _kermany_root(folder)
    if root is not None:
        print(f"Preparing the tensor cache of {root} for grading (once) ...", flush=True)
        _build_cache(root, workdir / "cache")
        return GradingData(
            f"the Kermany folder {root} (quick profile, {config.PROFILES['quick'].image_size} px)",
            {"MEDTL_DATA": str(root), "MEDTL_SOURCE": "folder"},
            workdir / "cache",
        )
    mnist = folder / f"pneumoniamnist_{config.PROFILES['quick'].image_size}.npz"
    if mnist.is_file():
        env = {"MEDTL_DATA": str(folder), "MEDTL_SOURCE": "pneumoniamnist"}
        return GradingData(f"PneumoniaMNIST ({mnist})", env)
    raise GradingError(
        f"--data {given}: neither a Kermany folder (train/NORMAL, train/PNEUMONIA, itself or one "
        f"level down) nor a folder holding {mnist.name}. Give one of those, or leave --data out "
        "to grade on the quick profile's synthetic X-rays."
    )
