"""Kermany-layout folders: `root/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg`.

Scanning skips what is not an image (`.DS_Store`, `__MACOSX`, text files); decoding turns every
image into one grey channel whatever its mode (RGB, CMYK, palette, 16-bit); layout problems raise
`DataError` with the path and the fix. `KermanyFolder` is the classic per-image `Dataset`, used by
the naive pipeline we benchmark against; the course itself decodes once into a `TensorCache`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from medtl_helpers.config.profiles import kermany_subfolders
from medtl_helpers.data.records import CLASSES
from medtl_helpers.errors import DataError, in_terms

IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff"}
SPLITS = ("train", "val", "test")
_PERSON = re.compile(r"^(person\d+)_", re.IGNORECASE)
_IM = re.compile(r"^(.*IM-\d+)-\d+", re.IGNORECASE)
# How a fix names a data folder on the command line: `--data PATH` (train, evaluate) unless the
# running command takes it otherwise (`data verify PATH`, `data cache PATH`: see `data_given_as`).
_CLI_DATA = ContextVar("medtl_cli_data", default="--data {path}")


def patient_id(filename: str | Path) -> str:
    """Patient id from a Kermany file name: its `personN` or `IM-NNNN` prefix.

    person1000_bacteria_2931 -> person1000; IM-0115-0001 -> IM-0115;
    NORMAL2-IM-1427-0001 -> NORMAL2-IM-1427. The data set does not document this naming. A
    `personN_bacteria_*` and a `personN_virus_*` file get the same id: the cautious reading
    for leakage, which may count more images per patient than there are.
    """
    stem = Path(filename).stem
    for pattern in (_PERSON, _IM):
        match = pattern.match(stem)
        if match:
            return match.group(1)
    return stem


def is_image_file(path: Path) -> bool:
    hidden = path.name.startswith(".")
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not hidden


@dataclass
class SplitScan:
    """The files of one split: image paths with labels, and what was skipped."""

    split: str
    paths: list[Path]
    labels: list[int]
    skipped: list[Path]


@contextmanager
def data_given_as(template: str) -> Iterator[None]:
    """While active, a fix on the command line names a data folder as `template` ({path})."""
    token = _CLI_DATA.set(template)
    try:
        yield
    finally:
        _CLI_DATA.reset(token)


def use_data(path: Path) -> str:
    """The words that point the course at `path`, in the interface the user is in."""
    return in_terms(f"MEDTL_DATA={path}", _CLI_DATA.get().format(path=path))


def kermany_one_level_down(folder: Path) -> Path | None:
    """The Kermany folder inside `folder`: chest_xray/, else the only subfolder with train/.

    None when there is none; several, none of them chest_xray/, raise DataError naming them,
    since which one is meant is for the user to say.
    """
    found = kermany_subfolders(folder)
    if len(found) > 1 and found[0].name != "chest_xray":
        names = ", ".join(sub.name for sub in found)
        raise DataError(
            f"{folder} has no train/ folder, and {len(found)} folders in it hold one ({names}): "
            f"say which to use, {' or '.join(use_data(sub) for sub in found)}."
        )
    return found[0] if found else None


def find_splits(root: Path) -> list[str]:
    """Return the splits present under `root`, or raise DataError describing the right layout."""
    root = Path(root)
    if not root.is_dir():
        fix = in_terms(
            "Set MEDTL_DATA to a folder holding train/NORMAL and train/PNEUMONIA, or run "
            "`python -m medtl_helpers data download`.",
            "Check the path: it must name a folder holding train/NORMAL and train/PNEUMONIA.",
        )
        raise DataError(f"Data folder {root} does not exist. {fix}")
    present = [s for s in SPLITS if (root / s).is_dir()]
    if "train" in present:
        return present
    hint = ""
    inner = kermany_one_level_down(root)
    if inner is not None:
        hint = f" It looks like the data is one level down: use {use_data(inner)}."
    elif all((root / c).is_dir() for c in CLASSES):
        hint = f" {root} holds the class folders directly: move them into {root / 'train'}."
    raise DataError(
        f"{root} has no train/ folder. Expected the Kermany layout "
        f"root/{{train,val,test}}/{{{','.join(CLASSES)}}}/*.jpeg.{hint}"
    )


def scan_split(root: Path, split: str) -> SplitScan:
    """List the images of one split; raise DataError for a missing or empty class folder."""
    paths: list[Path] = []
    labels: list[int] = []
    skipped = [p for p in sorted((Path(root) / split).iterdir()) if not p.is_dir()]
    for label, name in enumerate(CLASSES):
        folder = Path(root) / split / name
        if not folder.is_dir():
            raise DataError(
                f"Missing class folder {folder}. Each split needs {' and '.join(CLASSES)} "
                "subfolders (names in capitals, as in the Kermany archive)."
            )
        found, others = 0, 0
        for path in sorted(folder.iterdir()):
            if is_image_file(path):
                paths.append(path)
                labels.append(label)
                found += 1
            else:
                skipped.append(path)
                others += 1
        if found == 0:
            raise DataError(
                f"Class folder {folder} holds no images ({others} other files skipped). "
                "Copy its .jpeg/.png files back, or re-extract the archive."
            )
    return SplitScan(split, paths, labels, skipped)


def load_grey(path: Path, draft: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image into 8-bit grey ('L'); raise DataError naming a corrupt file.

    `draft` lets JPEG decode at a reduced scale no smaller than that size (much faster).
    """
    try:
        with Image.open(path) as img:
            if draft is not None and img.format == "JPEG":
                img.draft("L", draft)
            img.load()
            return to_grey(img)
    except Image.DecompressionBombError as err:
        raise DataError(
            f"Refused {path}: {err} Pillow refuses images this large because they can exhaust "
            "memory (a 'decompression bomb'). If the file is a genuine X-ray, shrink it first, "
            "or raise PIL.Image.MAX_IMAGE_PIXELS for files you trust; caching skips it."
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"Cannot decode {path}: {err}. The file is corrupt or truncated: delete it or "
            "re-download the dataset (corrupt files are skipped and counted when caching)."
        ) from err


def to_grey(img: Image.Image) -> Image.Image:
    """Any PIL mode to 'L'. 16-bit and float images are stretched to their own min..max."""
    if img.mode == "L":
        return img.copy()
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        low, high = float(arr.min()), float(arr.max())
        scaled = (arr - low) / (high - low) * 255.0 if high > low else np.zeros_like(arr)
        return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB").convert("L")


class KermanyFolder(Dataset):
    """Per-image dataset over one split: decodes with PIL on every access (the naive pipeline)."""

    def __init__(self, root: Path, split: str = "train", transform: Callable | None = None):
        find_splits(root)
        scan = scan_split(root, split)
        self.paths, self.labels, self.transform = scan.paths, scan.labels, transform
        self.patients = [patient_id(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        image = load_grey(self.paths[index]).convert("RGB")
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]
