"""PneumoniaMNIST (MedMNIST v3, Zenodo record 10519652): where it lives, how to fetch and load it.

PneumoniaMNIST is the Kermany chest X-ray set, centre-cropped and resized, in one .npz file per
image size. The MD5s are the ones MedMNIST publishes in ``medmnist/info.py``, so a corrupt or
swapped file is caught before training on it. Its train/val/test split is MedMNIST's own
(``SPLIT_ORIGIN``, in MedMNIST's words); the file carries no patient ids.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from medtl_helpers import config
from medtl_helpers.data.download import download_file, md5sum
from medtl_helpers.data.records import ImageSet
from medtl_helpers.errors import ChecksumError, DataError

ZENODO_RECORD = "https://zenodo.org/records/10519652"
# From MedMNIST/MedMNIST medmnist/info.py (v3): "MD5", "MD5_64", "MD5_128", "MD5_224".
PNEUMONIAMNIST_MD5 = {
    28: "28209eda62fecd6e6a2d98b1501bb15f",
    64: "8f4eceb4ccffa70c672198ea285246c6",
    128: "05b46931834c231683c68f40c47b2971",
    224: "d6a3c71de1b945ea11211b03746c1fe1",
}
SIZES = tuple(PNEUMONIAMNIST_MD5)
SPLITS = ("train", "val", "test")
SOURCE = "pneumoniamnist"
# How MedMNIST made the split, from its description of PneumoniaMNIST (medmnist/info.py, v3;
# Yang et al., "MedMNIST v2", Scientific Data 10:41, 2023). It says nothing about patients.
SPLIT_ORIGIN = (
    "MedMNIST made this split: it divided the source's training set 9:1 into train and val, and "
    'for test it uses "its source validation set" (MedMNIST v2, Yang et al., Scientific Data '
    "2023). MedMNIST does not say whether a child's X-rays stay on one side, and publishes no "
    "patient ids, so no split of this source can be checked by patient"
)
_REDO = "Delete it and download it again."


def pneumoniamnist_filename(size: int) -> str:
    """MedMNIST's file name: ``pneumoniamnist.npz`` at 28 px, ``pneumoniamnist_{size}.npz`` else."""
    if size not in PNEUMONIAMNIST_MD5:
        raise ValueError(f"PneumoniaMNIST has no {size} px file: choose one of {SIZES}")
    return "pneumoniamnist.npz" if size == 28 else f"pneumoniamnist_{size}.npz"


def pneumoniamnist_url(size: int) -> str:
    return f"{ZENODO_RECORD}/files/{pneumoniamnist_filename(size)}?download=1"


def pneumoniamnist_path(size: int, root: Path | None = None) -> Path:
    """Where the ``size`` px file is kept: ``root`` (default ``config.data_dir()``)/<file name>."""
    return Path(root if root is not None else config.data_dir()) / pneumoniamnist_filename(size)


def download_pneumoniamnist(size: int, root: Path | None = None, *, progress: bool = True) -> Path:
    """Download (or find, already checked) the ``size`` px file; returns its path.

    The download goes through ``download.download_file`` (pooch), which checks MedMNIST's MD5
    before the file appears at its path, and refuses at once when MEDTL_OFFLINE=1.
    """
    return download_file(
        pneumoniamnist_url(size),
        pneumoniamnist_path(size, root),
        PNEUMONIAMNIST_MD5[size],
        progress=progress,
    )


def size_from_name(path: Path) -> int | None:
    """The size MedMNIST's file name says (``pneumoniamnist.npz``: 28), or None for another name."""
    return next((s for s in SIZES if pneumoniamnist_filename(s) == Path(path).name), None)


def _to_grey_nchw(images: np.ndarray, path: Path, key: str) -> torch.Tensor:
    """(N, H, W), (N, H, W, 1) or (N, H, W, 3) uint8 -> (N, 1, H, W) uint8."""
    if images.dtype != np.uint8:
        raise DataError(f"{path}: {key} has dtype {images.dtype}, expected uint8 as MedMNIST ships")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    elif images.ndim == 4 and images.shape[-1] == 3:
        # ITU-R 601-2 luma, the weights PIL uses for convert("L").
        luma = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        images = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    if images.ndim != 3:
        raise DataError(
            f"{path}: {key} has shape {images.shape}; expected (N, H, W) grey or (N, H, W, 3) RGB"
        )
    return torch.from_numpy(np.ascontiguousarray(images[:, None]))


def _download_command(size: int | str, folder: Path) -> str:
    """The command that puts the ``size`` px file into ``folder``, the same in both interfaces."""
    return (
        f"python -m medtl_helpers data download --source pneumoniamnist --size {size} "
        f"--out {folder}"
    )


def verify_md5(path: Path, size: int | None) -> str:
    """``path``'s MD5, after comparing it with MedMNIST's published MD5 for ``size`` px.

    Raises ChecksumError on a mismatch, and DataError when ``size`` is None (a file name that is
    not MedMNIST's, so no size is known).
    """
    if size is None:
        raise DataError(
            f"Cannot verify {path}: its name is not one of MedMNIST's PneumoniaMNIST files "
            f"({', '.join(pneumoniamnist_filename(s) for s in SIZES)})"
        )
    actual = md5sum(path)
    if actual != PNEUMONIAMNIST_MD5[size]:
        raise ChecksumError(
            f"{path} has MD5 {actual}, expected {PNEUMONIAMNIST_MD5[size]}. Delete it and "
            f"download it again: {_download_command(size, path.parent)}"
        )
    return actual


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The six ``{split}_{images,labels}`` arrays of a PneumoniaMNIST .npz."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            found = set(npz.files)
            wanted = [f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels")]
            missing = [key for key in wanted if key not in found]
            if missing:
                raise DataError(
                    f"{path} is not a PneumoniaMNIST file: it lacks {', '.join(missing)} "
                    f"(found: {', '.join(sorted(found)) or 'nothing'}). {_REDO}"
                )
            return {key: npz[key] for key in wanted}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path} is not a valid .npz file ({err}). {_REDO}") from err


def load_pneumoniamnist(path: Path, *, verify: bool = False) -> dict[str, ImageSet]:
    """Load a PneumoniaMNIST .npz into ``{"train", "val", "test"}`` ImageSets.

    Labels are 0 = normal, 1 = pneumonia, as in ``records.CLASSES``. MedMNIST ships no patient
    ids, so each image gets its own (``mnist-train-00042``): patient-level splits cannot be
    checked on this source, and MedMNIST's own train/val/test split is used as given (how it was
    made: ``SPLIT_ORIGIN``).
    ``verify=True`` first checks the file's MD5 against MedMNIST's published value.
    """
    path = Path(path)
    size = size_from_name(path)
    if not path.is_file():
        size_arg = size if size is not None else f"{{{','.join(map(str, SIZES))}}}"
        raise DataError(
            f"{path} does not exist. Download it with: {_download_command(size_arg, path.parent)}"
        )
    if verify:
        verify_md5(path, size)
    arrays = _read_arrays(path)
    sets = {}
    for split in SPLITS:
        images = _to_grey_nchw(arrays[f"{split}_images"], path, f"{split}_images")
        labels = arrays[f"{split}_labels"].reshape(-1).astype(np.int64)
        if len(labels) != len(images):
            raise DataError(
                f"{path}: {split}_labels holds {len(labels)} labels for {len(images)} "
                f"images. {_REDO}"
            )
        if not np.isin(labels, (0, 1)).all():
            raise DataError(f"{path}: {split}_labels holds values other than 0 and 1. {_REDO}")
        sets[split] = ImageSet(
            images=images,
            labels=torch.from_numpy(labels),
            patients=[f"mnist-{split}-{i:05d}" for i in range(len(labels))],
            source=SOURCE,
        )
    return sets
