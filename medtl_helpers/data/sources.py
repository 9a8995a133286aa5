"""Choose the data source and return train / val / test ImageSets at the profile's size.

`auto` tries, in order: a Kermany folder ($MEDTL_DATA, or the one Kermany folder one level down in
it, such as chest_xray/; else Kaggle's copy in /kaggle/input; else data/chest_xray), a cached
PneumoniaMNIST file, a PneumoniaMNIST download (unless MEDTL_OFFLINE=1), and finally the built-in
synthetic set. Whatever is chosen is announced in a banner, with the reason when it is not real
data, so no notebook ever shows numbers on synthetic images without saying so. A Kermany folder is
only read: its caches go to `config.cache_dir()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from medtl_helpers import config
from medtl_helpers.config.profiles import KAGGLE_DATASET, in_kaggle_input, kaggle_data, kaggle_input
from medtl_helpers.data.augment import resize_uint8
from medtl_helpers.data.cache import TensorCache
from medtl_helpers.data.folder import find_splits, kermany_one_level_down, patient_id, scan_split
from medtl_helpers.data.records import ImageSet
from medtl_helpers.data.split import (
    check_no_patient_overlap,
    shared_patients,
    split_by_patient,
    subsample_by_patient,
)
from medtl_helpers.errors import DataError

SOURCES = ("auto", "folder", "pneumoniamnist", "synthetic")
MNIST_SIZES = (64, 128, 224)
HOLDOUT = 0.15


@dataclass
class CourseData:
    """The three splits the notebooks use, and where they came from."""

    train: ImageSet
    val: ImageSet
    test: ImageSet
    source: str
    origin: str
    notes: list[str] = field(default_factory=list)
    test_given: bool = False  # True: test is the user's own test/ folder, used as it is

    def banner(self) -> str:
        sizes = f"train {len(self.train):,} / val {len(self.val):,} / test {len(self.test):,}"
        lines = [f"Data source: {self.source} ({self.origin}); {sizes} images"]
        if self.source == "synthetic":
            lines.insert(0, "*** SYNTHETIC X-RAYS: numbers below are NOT about real patients ***")
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


def find_kermany_root() -> Path | None:
    """The Kermany folder the course reads, or None when there is none.

    $MEDTL_DATA when it has train/; else the Kermany folder one level down in it (chest_xray/,
    or the only subfolder with train/), for the common slip of naming the folder that holds
    chest_xray/. Then, on Kaggle, the data set added as input (`config.kaggle_data`); then, with
    MEDTL_DATA unset, data/chest_xray in the project.
    """
    setting = config.data_setting()
    if setting is not None:
        if not setting.exists():
            raise DataError(
                f"MEDTL_DATA={os.environ.get('MEDTL_DATA')} points to {setting}, which does not "
                "exist. Fix the path or unset MEDTL_DATA to use the default data folder."
            )
        if (setting / "train").is_dir():
            return setting
        inner = kermany_one_level_down(setting)
        if inner is not None:
            return inner
    kaggle = kaggle_data()
    if kaggle is not None or setting is not None:
        return kaggle
    default = config.data_dir() / "chest_xray"
    return default if (default / "train").is_dir() else None


def resize_images(data: ImageSet, size: int) -> ImageSet:
    """The same set at `size` px (itself when it already is)."""
    if data.image_size == size:
        return data
    images = resize_uint8(data.images, size)
    return ImageSet(images, data.labels, data.patients, data.source, data.paths, data.classes)


def folder_files(root: Path, splits: list[str]) -> dict[str, tuple[list[Path], list[int]]]:
    """Paths and labels of the two sets the course reads from a Kermany folder.

    "train+val": train/ and any val/ (16 images in Kaggle's copy of the Kermany set, too few to
    validate with): the course draws its own validation patients from it. "test": test/, if any.
    """
    pooled = [scan_split(root, s) for s in splits if s != "test"]
    files = {
        "train+val": ([p for s in pooled for p in s.paths], [y for s in pooled for y in s.labels])
    }
    if "test" in splits:
        scan = scan_split(root, "test")
        files["test"] = (scan.paths, scan.labels)
    return files


def cache_folder(
    root: Path, size: int, cache: TensorCache | None = None, splits: list[str] | None = None
) -> dict[str, ImageSet]:
    """Decode a Kermany folder into the tensor caches training reads: train+val pooled, test.

    `python -m medtl_helpers data cache` calls this too, so a cache built ahead of a lesson is the
    one `load_course_data` finds.
    """
    cache = cache or TensorCache(config.cache_dir())
    names = {"train+val": "kermany-trainval", "test": "kermany-test"}
    return {
        part: cache.load_or_build(paths, labels, size, name=names[part])
        for part, (paths, labels) in folder_files(root, splits or find_splits(root)).items()
    }


def load_folder(root: Path, size: int, seed: int = 0, val_fraction: float = HOLDOUT) -> CourseData:
    """Train / val / test from a Kermany folder; without test/, a patient holdout stands in.

    `val_fraction` of the training patients (by class) make the validation split.
    """
    splits = find_splits(root)
    return split_folder(root, splits, cache_folder(root, size, splits=splits), seed, val_fraction)


def preview_folder(root: Path, seed: int = 0, val_fraction: float = HOLDOUT) -> CourseData:
    """The split `load_folder` makes of `root`, from file names alone: nothing is decoded.

    Splitting reads only labels and patient ids, so each image is a 1-pixel placeholder here.
    Images that would not decode are still counted (caching skips them).
    """
    splits = find_splits(root)
    sets = {
        part: ImageSet(
            images=torch.zeros((len(paths), 1, 1, 1), dtype=torch.uint8),
            labels=torch.tensor(labels, dtype=torch.long),
            patients=[patient_id(p) for p in paths],
            source="kermany-folder",
        )
        for part, (paths, labels) in folder_files(root, splits).items()
    }
    return split_folder(root, splits, sets, seed, val_fraction)


def split_folder(
    root: Path, splits: list[str], sets: dict[str, ImageSet], seed: int, val_fraction: float
) -> CourseData:
    """The course's split of a Kermany folder's `sets` ("train+val", "test" when present).

    Any val/ (Kaggle's copy of the Kermany set has one) is in the pool; without test/, a patient
    holdout is the test; then `val_fraction` of the rest (by class) make validation.
    """
    pool = sets["train+val"]
    notes = []
    if "val" in splits:
        notes.append("val/ (16 images in Kaggle's copy) is merged into train/ before splitting")
    if "test" in sets:
        test = sets["test"]
        shared = shared_patients(pool, test)
        if shared:
            notes.append(test_overlap_note(shared))
    else:
        pool, test = split_by_patient(pool, HOLDOUT, seed)
        notes.append(
            f"no test/ folder: a patient-level {HOLDOUT:.0%} holdout of train/ is the test"
        )
    train, val = split_by_patient(pool, val_fraction, seed + 1)
    return CourseData(
        train, val, test, "kermany-folder", str(root), notes, test_given="test" in sets
    )


def test_overlap_note(shared: list[str]) -> str:
    """What the banner says when a given test/ folder reuses patient ids of train/."""
    examples = ", ".join(shared[:3])
    return (
        f"test/ reuses {len(shared)} patient ids of train/ (e.g. {examples}). The official "
        "Kermany release does this: file names alone cannot tell whether they are the same "
        "children, so test/ is used as given, as in the published results; if some are, "
        "test metrics are optimistic. train and val never share a patient."
    )


def _mnist_size(size: int) -> int:
    return next((s for s in MNIST_SIZES if s >= size), MNIST_SIZES[-1])


def _from_mnist(path: Path, size: int) -> CourseData:
    from medtl_helpers.data.medmnist import load_pneumoniamnist

    parts = {k: resize_images(v, size) for k, v in load_pneumoniamnist(path).items()}
    notes = [
        "MedMNIST has no patient ids: its own official splits are used, and MedMNIST does not say "
        "whether they keep a child on one side, so treat them as not patient-level (one child's "
        "X-rays may be in two splits)"
    ]
    return CourseData(
        parts["train"], parts["val"], parts["test"], "pneumoniamnist", str(path), notes
    )


def _from_synthetic(n: int, size: int, seed: int, reason: str) -> CourseData:
    from medtl_helpers.data.synthetic import make_synthetic

    pool, test = split_by_patient(make_synthetic(n, size=size, seed=seed), HOLDOUT, seed)
    train, val = split_by_patient(pool, HOLDOUT, seed + 1)
    hint = (
        "for real X-rays set MEDTL_DATA to a Kermany folder (train/NORMAL, train/PNEUMONIA) or "
        f"run `python -m medtl_helpers data download --source pneumoniamnist --size "
        f"{_mnist_size(size)}` (the file this profile's {size} px reads)"
    )
    return CourseData(train, val, test, "synthetic", f"{n} generated images", [reason, hint])


def _found_note(setting: Path | None, root: Path) -> str | None:
    """What the banner says when the folder read is not MEDTL_DATA itself."""
    if in_kaggle_input(root):
        return (
            f"Kaggle input folder {root} (only read: caches go to {config.cache_dir()}; the "
            "archive's second copy, chest_xray/chest_xray, and __MACOSX/ are not read)"
        )
    if setting is not None and root.parent == setting:
        return (
            f"MEDTL_DATA={setting} holds no train/; using the Kermany folder one level down, "
            f"{root} (only read: caches go to {config.cache_dir()})"
        )
    return None


def _pick(source: str, size: int, seed: int, profile: config.Profile) -> CourseData:
    setting = config.data_setting()
    if source in ("auto", "folder"):
        root = find_kermany_root()
        if root is not None:
            data = load_folder(root, size, seed)
            data.notes[:0] = [note] if (note := _found_note(setting, root)) else []
            return data
        if source == "folder":
            find_splits(setting or config.data_dir() / "chest_xray")
    reason = (
        f"no Kermany folder at MEDTL_DATA={setting} (no train/, itself or one level down)"
        if setting is not None
        else "no Kermany folder found (MEDTL_DATA unset, no data/chest_xray)"
    )
    if kaggle_input().is_dir():
        reason += f"; on Kaggle, add the data set paultimothymooney/{KAGGLE_DATASET} (Add Input)"
    if source == "synthetic":
        reason = "the synthetic set was asked for (MEDTL_SOURCE=synthetic or source='synthetic')"
    if source in ("auto", "pneumoniamnist"):
        from medtl_helpers.data.medmnist import download_pneumoniamnist, pneumoniamnist_path

        path = pneumoniamnist_path(_mnist_size(size))
        if path.exists():
            return _from_mnist(path, size)
        if source == "pneumoniamnist" or not config.offline():
            try:
                return _from_mnist(download_pneumoniamnist(_mnist_size(size)), size)
            except DataError as err:
                if source == "pneumoniamnist":
                    raise
                reason = f"{reason}; PneumoniaMNIST not cached and the download failed: {err}"
        else:
            reason = f"{reason}; PneumoniaMNIST not cached and MEDTL_OFFLINE=1 forbids downloading"
    return _from_synthetic(profile.synthetic_images, size, seed, reason)


def load_course_data(
    profile: config.Profile | None = None,
    source: str | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> CourseData:
    """Train / val / test for the course at the profile's image size and subset limits."""
    profile = profile or config.get_profile()
    source = (source or os.environ.get("MEDTL_SOURCE") or "auto").lower()
    if source not in SOURCES:
        raise ValueError(f"Unknown data source {source!r}: use one of {', '.join(SOURCES)}")
    data = _pick(source, profile.image_size, seed, profile)
    data.train = subsample_by_patient(data.train, profile.max_train_images, seed)
    data.val = subsample_by_patient(data.val, profile.max_eval_images, seed)
    data.test = subsample_by_patient(data.test, profile.max_eval_images, seed)
    if config.caps_note() is not None:
        data.notes.append(config.caps_note())
    if data.source != "pneumoniamnist":
        # The course's own splits never share a patient; a given test/ folder is reported instead.
        ours = {"train": data.train, "val": data.val}
        if not data.test_given:
            ours["test"] = data.test
        check_no_patient_overlap(**ours)
    if verbose:
        print(data.banner())
    return data
