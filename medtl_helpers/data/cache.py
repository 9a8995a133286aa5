"""Decode once, train many times: a uint8 tensor cache of a folder of X-rays.

A per-image pipeline decodes and resizes every JPEG (5,216 in the train/ of Kaggle's copy) in
every epoch; notebook 00 times that against reloading this cache. The cache decodes each image
once into one grey uint8 channel at the working size and saves the stack as a single file, keyed
by a hash of the file list (names and byte sizes) and the image size, so a changed folder or a
new size builds a new cache instead of silently reusing a stale one.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from medtl_helpers.atomic import atomic_file
from medtl_helpers.data.augment import resize_uint8
from medtl_helpers.data.folder import load_grey, patient_id
from medtl_helpers.data.records import ImageSet
from medtl_helpers.errors import DataError, WriteError
from medtl_helpers.progress import progress_bar

FORMAT_VERSION = 2  # 2: resized by data.augment.resize


def decode_resized(path: Path, size: int) -> np.ndarray:
    """One image as a (size, size) uint8 array; JPEG draft mode skips decoding unused pixels."""
    grey = torch.from_numpy(np.array(load_grey(path, draft=(size, size)), dtype=np.uint8))
    return resize_uint8(grey[None, None], size)[0, 0].numpy()


def relative_key(path: Path | str) -> str:
    """The part of a path the cache key uses (split/CLASS/name): the same in a copied folder."""
    return "/".join(Path(path).parts[-3:])


def relocate(stored: list[str], paths: list[Path] | None) -> list[str]:
    """`stored` paths renamed to the file among `paths` with the same split/CLASS/name.

    A cache built from folder A is reused for an identical copy B (the key ignores where the
    folder lies), so the paths it stored may name A; this names B's files. Without `paths`, or
    for a name not among them, the stored path is kept.
    """
    here = {relative_key(path): str(path) for path in paths or []}
    return [here.get(relative_key(path), path) for path in stored]


def cache_key(paths: list[Path], size: int) -> str:
    """Hash of the last three path parts (split/CLASS/name), each file's byte size, and `size`."""
    digest = hashlib.sha1(f"v{FORMAT_VERSION}:{size}".encode())
    for path in paths:
        relative = relative_key(path)
        digest.update(f"{relative}:{os.path.getsize(path)}\n".encode())
    return digest.hexdigest()[:16]


class TensorCache:
    """A folder of cached image stacks. `load_or_build` returns an ImageSet either way."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def file_for(self, name: str, key: str, size: int) -> Path:
        return self.folder / f"{name}-{size}px-{key}.pt"

    def load_or_build(
        self,
        paths: list[Path],
        labels: list[int],
        size: int,
        name: str = "kermany",
        source: str = "kermany-folder",
        workers: int | None = None,
        progress: bool = True,
    ) -> ImageSet:
        target = self.file_for(name, cache_key(paths, size), size)
        if target.exists():
            try:
                return self.load(target, paths)
            except DataError as err:
                warnings.warn(f"{err} Rebuilding it.", stacklevel=2)
        data = build_image_set(paths, labels, size, source, workers, progress)
        skipped = sorted(set(map(str, paths)) - set(data.paths or []))
        self.save(data, target, skipped)
        return data

    @staticmethod
    def save(data: ImageSet, target: Path, skipped: list[str] | None = None) -> Path | None:
        """Write the set; `skipped` names the images that could not be decoded (said on load).

        A cache only saves time, so one that cannot be written (a full disk, a read-only folder)
        stops nothing: a warning names the file and the cause, None is returned, and the course
        goes on with the set decoded in memory (decoded again next time).
        """
        payload = {
            "skipped": list(skipped or []),
            "format": FORMAT_VERSION,
            "images": data.images,
            "labels": data.labels,
            "patients": data.patients,
            "paths": data.paths or [],
            "source": data.source,
        }
        try:
            with atomic_file(target, "point MEDTL_CACHE at another folder") as file:
                torch.save(payload, file)
        except WriteError as err:
            warnings.warn(
                f"The tensor cache was not saved. {err} The images decoded now are used from "
                "memory, and decoded again next time.",
                stacklevel=2,
            )
            return None
        return target

    @staticmethod
    def load(target: Path, paths: list[Path] | None = None) -> ImageSet:
        """The cached set; a warning names the images its build skipped, every time it is used.

        Give `paths` (the files of the folder being read) to have the set's paths and the warning
        name those files: the cache may have been built from another copy of the folder. Without
        them, the paths are the ones stored at build time, which may no longer exist.
        """
        try:
            payload = torch.load(target, map_location="cpu", weights_only=True)
            data = ImageSet(
                images=payload["images"],
                labels=payload["labels"],
                patients=list(payload["patients"]),
                source=payload["source"],
                paths=relocate(list(payload["paths"]), paths) or None,
            )
        except Exception as err:  # a damaged cache must never stop the course: say so, rebuild
            raise DataError(f"Tensor cache {target} is unreadable ({err}): delete it.") from err
        skipped = relocate(list(payload.get("skipped", [])), paths)
        if skipped:
            warnings.warn(
                f"{target.name} was built without {len(skipped)} corrupt or truncated image(s), "
                f"e.g. {', '.join(skipped[:3])}. Replace them, then delete {target} to cache "
                "them too.",
                stacklevel=2,
            )
        return data


def build_image_set(
    paths: list[Path],
    labels: list[int],
    size: int,
    source: str = "kermany-folder",
    workers: int | None = None,
    progress: bool = True,
) -> ImageSet:
    """Decode `paths` in threads; corrupt images are skipped, counted and named in a warning."""
    workers = workers or min(8, os.cpu_count() or 1)

    def decode(path: Path) -> np.ndarray | None:
        try:
            return decode_resized(path, size)
        except DataError:
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(
            progress_bar(
                pool.map(decode, paths, chunksize=16),
                total=len(paths),
                disable=not progress,
                desc=f"Caching {len(paths)} images at {size}px",
            )
        )
    keep = [i for i, a in enumerate(arrays) if a is not None]
    bad = [str(paths[i]) for i, a in enumerate(arrays) if a is None]
    if bad:
        warnings.warn(
            f"Skipped {len(bad)} corrupt or truncated image(s), e.g. {', '.join(bad[:3])}. "
            "Delete or replace them; the rest are cached.",
            stacklevel=2,
        )
    if not keep:
        raise DataError(f"None of the {len(paths)} images could be decoded: check the files.")
    stack = np.stack([arrays[i] for i in keep])[:, None]
    return ImageSet(
        images=torch.from_numpy(stack),
        labels=torch.tensor([labels[i] for i in keep], dtype=torch.long),
        patients=[patient_id(paths[i]) for i in keep],
        source=source,
        paths=[str(paths[i]) for i in keep],
    )
