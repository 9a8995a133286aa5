"""Checkers for the exercises of notebook 00 (data and patient-level splits).

Each checker runs the student's answer on a small case with a known answer and, when it differs,
raises AssertionError with a sentence saying what the first difference is and what to change.
On success it prints one sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from medtl_helpers.course.checks.common import call_answer, plain, plain_number, require_answer
from medtl_helpers.data.records import ImageSet


def _image_set(patients: list[str], labels: list[int]) -> ImageSet:
    n = len(patients)
    return ImageSet(
        images=torch.zeros((n, 1, 4, 4), dtype=torch.uint8),
        labels=torch.tensor(labels, dtype=torch.long),
        patients=patients,
        source="synthetic",
    )


def _leak_cases() -> list[tuple[ImageSet, ImageSet, set[str]]]:
    """(train, val, expected) triples: a leaky split, a clean one, and one whose leaked patients
    sit at the ends of the lists. Some patients have two images on one side only: no leak."""
    leaky = (
        _image_set(["person1", "person1", "person2", "person2", "IM-0003"], [1, 1, 1, 1, 0]),
        _image_set(["IM-0003", "person4", "person1", "IM-0005", "IM-0005"], [0, 1, 1, 0, 0]),
        {"person1", "IM-0003"},
    )
    clean = (
        _image_set(["person1", "person1", "person2"], [1, 1, 1]),
        _image_set(["person3", "IM-0004"], [1, 0]),
        set(),
    )
    # Each leaked patient has its only image of one split at one end of that split's list, and
    # no other end: an answer that skips the first or last id ([1:], [:-1]) misses a known one.
    at_the_ends = (
        _image_set(
            ["person10", "person12", "IM-0020", "IM-0020", "person13", "person11"],
            [1, 1, 0, 0, 1, 1],
        ),
        _image_set(["person12", "person10", "person30", "person11", "person13"], [1, 1, 1, 1, 1]),
        {"person10", "person11", "person12", "person13"},
    )
    return [leaky, clean, at_the_ends]


def _known_mistake(got: set, train: ImageSet, val: ImageSet) -> str | None:
    """The sentence for a result that one typical wrong rule gives, or None."""
    both = list(train.patients) + list(val.patients)
    mistakes = {
        "the union (|): that is every patient of either split; a leaked patient has images in "
        "BOTH splits, so take the intersection (&)": set(train.patients) | set(val.patients),
        "the patients with two or more images anywhere: two films of one patient in the same "
        "split are no leak; a leaked patient has images in BOTH splits, so take "
        "set(train.patients) & set(val.patients)": {p for p in both if both.count(p) > 1},
        "the patients in exactly one split (^); a leaked patient is in both (&)": (
            set(train.patients) ^ set(val.patients)
        ),
        "the train patients that are not in val (-); the leaked ones are those that ARE (&)": (
            set(train.patients) - set(val.patients)
        ),
    }
    expected = set(train.patients) & set(val.patients)
    return next((why for why, wrong in mistakes.items() if got == wrong != expected), None)


def _leak_problem(got: set, expected: set[str], train: ImageSet, val: ImageSet) -> str | None:
    """Why `got` is not the set of leaked patients, or None when it is."""
    if got == expected:
        return None
    known = _known_mistake(got, train, val)
    if known is not None:
        return f"your result {sorted(got)} is {known}; expected {sorted(expected)}."
    only_one_side = sorted(got - expected)
    if only_one_side:
        patient = only_one_side[0]
        if patient not in train.patients and patient not in val.patients:
            return (
                f"your result contains {patient!r}, which is in neither split: return patient "
                "ids (train.patients), not file names, labels or indices, and take them from "
                "the `train` and `val` arguments, not from the notebook's own splits."
            )
        side = train if patient in train.patients else val
        images = list(side.patients).count(patient)
        return (
            f"your result contains {patient!r}, which is only in "
            f"{'train' if side is train else 'val'} ({images} image(s) there): a leaked patient "
            "has images in BOTH splits, so keep only the ids found in train.patients and in "
            "val.patients."
        )
    missing = sorted(expected - got)
    return (
        f"your result misses {missing[0]!r}, which has images in train and in val; "
        f"expected {sorted(expected)}, got {sorted(got)}.{_end_hint(missing[0], train, val)}"
    )


def _end_hint(patient: str, train: ImageSet, val: ImageSet) -> str:
    """An off-by-one hint when `patient`'s only image in a split is that split's first or last."""
    ends = [
        f"the {end} id of {name}.patients"
        for name, ids in (("train", list(train.patients)), ("val", list(val.patients)))
        if ids.count(patient) == 1
        for end, index in (("first", 0), ("last", -1))
        if ids[index] == patient
    ]
    if not ends:
        return ""
    return (
        f" It is {' and '.join(ends)}, with no other image in that split: an off-by-one ([1:], "
        "[:-1], or a range that starts at 1 or stops one short) skips an end of the list; use "
        "every id."
    )


def check_leaked_patients(leaked_patients: Callable[[ImageSet, ImageSet], object]) -> None:
    """`leaked_patients(train, val)` must return the set of patient ids found in both splits."""
    require_answer(leaked_patients, "your leaked_patients")
    for train, val, expected in _leak_cases():
        got = call_answer(
            leaked_patients,
            (train, val),
            "leaked_patients(train, val)",
            "Use the patient ids in train.patients and val.patients (paths can be None).",
        )
        plain(got, "the value leaked_patients returned")
        if got is None:
            raise AssertionError(
                "leaked_patients returned None: did you forget the `return` statement?"
            )
        if type(got) not in (set, frozenset):
            raise AssertionError(
                f"leaked_patients returned a {type(got).__name__} ({got!r}); expected a set of "
                "patient ids, e.g. set(train.patients) & set(val.patients)."
            )
        problem = _leak_problem(set(got), expected, train, val)
        if problem is not None:
            raise AssertionError(problem)
    print("Correct: leaked_patients finds exactly the patients who are in both splits.")


# Shares are exact fractions, and two stratified splits can differ by less than 0.001
# (2798/3767 and 494/665 differ by 0.00009), so only float rounding is forgiven.
_EXACT = 1e-6


def _share(data: ImageSet) -> float:
    return float(data.labels.double().mean())


def _other_share(got: float, name: str, splits: Mapping[str, ImageSet]) -> str | None:
    """Which other share `got` is (another split's, or all splits pooled), or None."""
    pooled = torch.cat([data.labels.reshape(-1) for data in splits.values()])
    candidates = {f"the {other!r} share": _share(data) for other, data in splits.items()}
    candidates["the share of all splits pooled"] = float(pooled.double().mean())
    expected = _share(splits[name])
    return next(
        (
            what
            for what, share in candidates.items()
            if abs(got - share) < _EXACT and abs(share - expected) >= _EXACT
        ),
        None,
    )


def _share_problem(name: str, got: object, splits: Mapping[str, ImageSet]) -> str | None:
    """Why `got` is not the pneumonia share of `splits[name]`, or None when it is."""
    data = splits[name]
    expected, n = _share(data), len(data)
    got = plain_number(got, f"the share for {name!r}")
    if type(got) not in (int, float):
        return (
            f"the share for {name!r} is a {type(got).__name__}; expected a float between 0 and 1 "
            "(use float(...) on a tensor)."
        )
    got = float(got)
    if abs(got - expected) < _EXACT:
        return None
    said = f"the share for {name!r} is {got:.4f}"
    other = _other_share(got, name, splits)
    if other is not None:
        return f"{said}, which is {other}; expected {expected:.4f}, from {name!r}'s own labels."
    if abs(got - (1.0 - expected)) < _EXACT:
        return (
            f"{said}, which is the NORMAL share; expected {expected:.4f}: PNEUMONIA is label 1, "
            "so count labels == 1."
        )
    if abs(got - 100.0 * expected) < 100 * _EXACT:
        return f"{said}, a percentage; give a fraction between 0 and 1 ({expected:.4f})."
    if abs(got - expected * n) < _EXACT:
        return (
            f"{said}, more than 1: that looks like a count; divide by the number of images in "
            f"the split ({n}) to get {expected:.4f}."
        )
    if expected < 1.0 and abs(got - expected / (1.0 - expected)) < _EXACT:
        return (
            f"{said}, which is PNEUMONIA per NORMAL image; a share divides PNEUMONIA by all {n} "
            f"images of the split: {expected:.4f}."
        )
    near = _near_miss(got, expected, name)
    if near is not None:
        return f"{said}, {near}"
    return f"{said}; expected {expected:.4f} (PNEUMONIA images / all {n} images of that split)."


def _near_miss(got: float, expected: float, name: str) -> str | None:
    """Why `got` is a rounding of `expected`, or is close to it: other images, or lost precision."""
    # 1e-7 also forgives a float32 rounding (torch.round(..., decimals=k)).
    if any(abs(got - round(expected, k)) < 1e-7 for k in range(1, 7)):
        return (
            f"{expected:.6f} rounded; give the exact share (no round()): splits can differ by "
            "less than 0.001."
        )
    if abs(got - expected) < 5e-4:
        return (
            f"close to, but not, the share of splits[{name!r}]'s own labels ({expected:.6f}): "
            "did you use other images (section 5's kept/held, or the pool before the split), "
            "or did you round, truncate or compute in low precision?"
        )
    return None


def check_pneumonia_shares(shares: Mapping[str, object], splits: Mapping[str, ImageSet]) -> None:
    """`shares[name]` must be the fraction of PNEUMONIA images in `splits[name]`, for each split."""
    require_answer(shares, "your shares")
    plain(shares, "shares")
    if not isinstance(shares, Mapping):
        raise AssertionError(
            f"shares is a {type(shares).__name__}; expected a dict from split name to share, "
            'e.g. {"train": 0.74, "val": 0.75, "test": 0.75}.'
        )
    missing = [name for name in splits if name not in shares]
    if missing:
        raise AssertionError(
            f"shares has no entry for {missing[0]!r}; expected one per split: {list(splits)}."
        )
    for name in splits:
        problem = _share_problem(name, shares[name], splits)
        if problem is not None:
            raise AssertionError(problem)
    print(f"Correct: the pneumonia share of each of the {len(splits)} splits matches.")
