"""Patient-level, class-stratified splitting, and the check that no patient crosses splits.

Kermany's training folder has about 1.8 images per patient. Splitting images at random puts the
same child's X-rays on both sides, and validation then rewards memorising patients. Here whole
patients are assigned to one side, class by class, until each side holds the asked-for share of
that class's images.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np

from medtl_helpers.data.records import ImageSet
from medtl_helpers.errors import DataError


def patient_groups(data: ImageSet) -> dict[int, list[list[int]]]:
    """Image indices grouped by patient, grouped by the patient's majority label."""
    return patient_groups_of(data.labels.tolist(), data.patients)


def patient_groups_of(labels, patients) -> dict[int, list[list[int]]]:
    """`patient_groups` of plain labels and patient ids (one each per image), patients in
    sorted order within each class."""
    by_patient: dict[str, list[int]] = defaultdict(list)
    for i, patient in enumerate(patients):
        by_patient[patient].append(i)
    labels = [int(label) for label in labels]
    by_class: dict[int, list[list[int]]] = defaultdict(list)
    for patient in sorted(by_patient):
        index = by_patient[patient]
        majority = Counter(labels[i] for i in index).most_common(1)[0][0]
        by_class[majority].append(index)
    return by_class


def patient_fraction_index(
    data: ImageSet, fraction: float, seed: int = 0, *, stratify: bool = True
) -> np.ndarray:
    """Indices of whole patients holding about `fraction` of each class's images (sorted).

    Patients are drawn in random order and taken while that brings the class closer to its
    share, so the result never misses the share by more than one patient's images.
    `stratify=False` draws from all patients as one group: about `fraction` of all images, with
    whatever class balance the draw gives (the comparison notebook 00 makes).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    groups = patient_groups(data)
    if not stratify:
        groups = {0: [index for label in sorted(groups) for index in groups[label]]}
    for label in sorted(groups):
        patients = groups[label]
        order = rng.permutation(len(patients))
        target = fraction * sum(len(p) for p in patients)
        taken = 0
        for rank, j in enumerate(order):
            size = len(patients[j])
            # closest to the target wins; every class with 2+ patients gives at least one
            keep = abs(taken + size - target) < abs(taken - target)
            if keep or (rank == 0 and len(patients) > 1):
                chosen.extend(patients[j])
                taken += size
    return np.array(sorted(chosen), dtype=np.int64)


def split_by_patient(
    data: ImageSet, holdout_fraction: float = 0.15, seed: int = 0
) -> tuple[ImageSet, ImageSet]:
    """Split into (kept, holdout) with whole patients on each side, stratified by class."""
    holdout = patient_fraction_index(data, holdout_fraction, seed)
    mask = np.ones(len(data), dtype=bool)
    mask[holdout] = False
    kept = np.flatnonzero(mask)
    if len(kept) == 0 or len(holdout) == 0:
        raise DataError(
            f"Cannot split {len(data)} images from {data.n_patients()} patients with a "
            f"{holdout_fraction:.0%} holdout: one side would be empty. Use more data."
        )
    sides = (data.subset(kept), data.subset(holdout))
    check_no_patient_overlap(kept=sides[0], holdout=sides[1])
    return sides


def subsample_by_patient(data: ImageSet, max_images: int | None, seed: int = 0) -> ImageSet:
    """At most about `max_images` images, taken as whole patients, keeping the class balance."""
    if max_images is None or len(data) <= max_images:
        return data
    return data.subset(patient_fraction_index(data, max_images / len(data), seed))


def _natural(patient: str) -> tuple:
    """Sort key that puts person2 before person10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", patient))


def shared_patients(first: ImageSet, second: ImageSet) -> list[str]:
    """Patient ids with images in both sets, in natural order (person2 before person10)."""
    return sorted(set(first.patients) & set(second.patients), key=_natural)


def check_no_patient_overlap(**splits: ImageSet) -> None:
    """Raise DataError naming the patients found in more than one split."""
    names = list(splits)
    clashes = [
        f"{patient} ({a} and {b})"
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        for patient in shared_patients(splits[a], splits[b])
    ]
    if clashes:
        raise DataError(
            f"{len(clashes)} patient{' appears' if len(clashes) == 1 else 's appear'} in more "
            "than one split, "
            f"e.g. {', '.join(clashes[:3])}. "
            "Split by patient with split_by_patient() so no child is on both sides."
        )


def describe_test_split(train: ImageSet, val: ImageSet, test: ImageSet, test_given: bool) -> str:
    """Check the test split against train and val as far as its source allows; say what was found.

    PneumoniaMNIST's split is MedMNIST's and cannot be checked by patient (``SPLIT_ORIGIN``).
    A given test/ folder is used as it is, so the patient ids it shares are counted. A test split
    the course carved out of the same pool as train and val is checked (DataError on overlap).
    """
    from medtl_helpers.data.medmnist import SOURCE, SPLIT_ORIGIN

    if test.source == SOURCE:
        return SPLIT_ORIGIN
    if test_given:
        reused = {*shared_patients(train, test), *shared_patients(val, test)}
        return (
            f"the given test/ folder: {len(reused)} of its {test.n_patients()} patient ids "
            "also name a patient in train or val"
        )
    check_no_patient_overlap(train=train, val=val, test=test)
    return (
        "the test split is a patient-level holdout of the same pool as train and val: "
        "it shares no patient with either"
    )


def too_small_to_validate(
    data: ImageSet, min_images: int = 20, min_patients: int = 10
) -> str | None:
    """Why `data` is too small to pick a model or a threshold with, or None when it is not.

    With fewer than about 20 images or 10 patients of a class, one image more or less right moves
    AUROC, sensitivity or specificity by several points: the number is noise, not a measurement.
    """
    problems = []
    for label, name in enumerate(data.classes):
        index = (data.labels == label).nonzero().flatten().tolist()
        patients = len({data.patients[i] for i in index})
        if len(index) < min_images or patients < min_patients:
            problems.append(f"{len(index)} {name} images from {patients} patients")
    if not problems:
        return None
    return (
        f"holds only {' and '.join(problems)} (fewer than {min_images} images or "
        f"{min_patients} patients of a class): its scores are too noisy to choose a model or "
        "a threshold with"
    )


def split_report(**splits: ImageSet) -> list[dict[str, object]]:
    """One row per split: images, patients, class counts and the pneumonia share."""
    rows = []
    for name, part in splits.items():
        counts = part.class_counts()
        share = float(part.labels.float().mean()) if len(part) else 0.0
        rows.append(
            {
                "split": name,
                "images": len(part),
                "patients": part.n_patients(),
                **counts,
                "pneumonia_share": round(share, 4),
            }
        )
    return rows
