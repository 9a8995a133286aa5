"""`data verify`: check a Kermany folder or a PneumoniaMNIST file and count what is in it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from medtl_helpers.data.folder import find_splits, load_grey, patient_id, scan_split
from medtl_helpers.data.records import CLASSES
from medtl_helpers.errors import DataError

# Why two folders of a Kermany download may share patients, and what the course makes of it.
_SHARED_WHY = {
    ("train", "val"): "val/ is merged into train/ before the course splits by patient",
    ("train", "test"): "the official release reuses train/ patient ids in test/; the course uses "
    "test/ as given and its banner says so",
    ("val", "test"): "val/ is merged into train/, and test/ is used as given, as for train/",
}


@dataclass
class VerifyReport:
    """Counts per (split, class): images and patients; skipped and corrupt files; shared patients.

    `shared_pairs` counts the patients each pair of split folders shares: {("train", "test"): 170}.
    """

    root: Path
    rows: list[dict[str, object]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    corrupt: list[Path] = field(default_factory=list)
    shared_patients: int = 0
    shared_pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    decoded: bool = True  # False: the images were not opened, so no corrupt one can be known

    def count(self, split: str, cls: str) -> int:
        return next(
            int(r["images"]) for r in self.rows if r["split"] == split and r["class"] == cls
        )

    def table(self) -> pd.DataFrame:
        """Images and patients per (split, class), indexed by split and class."""
        columns = ["split", "class", "images", "patients"]
        return pd.DataFrame(self.rows, columns=columns).set_index(["split", "class"])

    def notes(self) -> str:
        """What the table does not show: skipped and corrupt files, patients shared by splits."""
        names = sorted({p.name for p in self.skipped})
        listed = f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else ""
        lines = [f"skipped non-image files: {len(self.skipped)}{listed}"]
        lines.append(
            f"corrupt images: {len(self.corrupt)}"
            if self.decoded
            else "corrupt images: not checked (the images were not opened: --no-decode)"
        )
        lines.extend(f"  corrupt: {p}" for p in self.corrupt[:10])
        lines.append(f"patients in more than one split: {self.shared_patients}")
        for (first, second), n in self.shared_pairs.items():
            lines.append(f"  {first}/ and {second}/ share {n:,}: {_SHARED_WHY[first, second]}")
        return "\n".join(lines)


def _decodes(path: Path) -> bool:
    try:
        load_grey(path, draft=(64, 64))
        return True
    except DataError:
        return False


def verify_folder(root: Path, decode: bool = True, workers: int = 4) -> VerifyReport:
    """Scan every split of a Kermany folder; with `decode`, also open every image."""
    root = Path(root)
    splits = find_splits(root)
    report = VerifyReport(
        root, skipped=[p for p in root.iterdir() if not p.is_dir()], decoded=decode
    )
    owners: dict[str, set[str]] = {}
    for split in splits:
        scan = scan_split(root, split)
        report.skipped.extend(scan.skipped)
        if decode:
            with ThreadPoolExecutor(workers) as pool:
                ok = list(pool.map(_decodes, scan.paths, chunksize=32))
            report.corrupt.extend(p for p, good in zip(scan.paths, ok) if not good)
        for label, cls in enumerate(CLASSES):
            paths = [p for p, y in zip(scan.paths, scan.labels) if y == label]
            patients = {patient_id(p) for p in paths}
            for patient in patients:
                owners.setdefault(patient, set()).add(split)
            report.rows.append(
                {"split": split, "class": cls, "images": len(paths), "patients": len(patients)}
            )
    report.shared_patients = sum(len(s) > 1 for s in owners.values())
    for i, first in enumerate(splits):
        for second in splits[i + 1 :]:
            n = sum({first, second} <= s for s in owners.values())
            if n:
                report.shared_pairs[first, second] = n
    return report


def verify_npz(path: Path) -> tuple[pd.DataFrame, str]:
    """Images per (split, class) of a PneumoniaMNIST file, and its MD5 check as one line.

    The MD5 is MedMNIST's published one for the file's size, read from the file name
    (``pneumoniamnist.npz`` is the 28 px file, ``pneumoniamnist_64.npz`` the 64 px one) or, for a
    renamed copy, from the size of its images. A mismatch raises ChecksumError, so `data verify`
    fails (exit status 2). The line says when no MD5 is published for the images' size.
    """
    from medtl_helpers.data.download import md5sum
    from medtl_helpers.data.medmnist import SIZES, load_pneumoniamnist, size_from_name, verify_md5

    parts = load_pneumoniamnist(path)
    rows = [
        {"split": split, "class": cls, "images": n}
        for split, part in parts.items()
        for cls, n in part.class_counts().items()
    ]
    table = pd.DataFrame(rows, columns=["split", "class", "images"]).set_index(["split", "class"])
    pixels = int(parts["train"].images.shape[-1])
    size = size_from_name(path) or (pixels if pixels in SIZES else None)
    if size is None:
        return table, f"md5 {md5sum(path)}: not checked, MedMNIST publishes none for {pixels} px"
    return table, f"md5 {verify_md5(path, size)}: OK, MedMNIST's for the {size} px file"
