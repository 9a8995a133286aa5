"""Is this the data the model was not trained on? The check `evaluate` makes before scoring.

A checkpoint saved by `fit` records its data source, a fingerprint of its training split and the
patients in it. `evaluate` rebuilds the splits from `--data` and the checkpoint's seed; before it
scores one, this module refuses a split that holds training images (the score would be
flattered, silently) and warns when the rebuilt training split is not the one the model saw.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from medtl_helpers.data.sources import CourseData
from medtl_helpers.errors import MedtlError

# Sources whose train/val images are the Kermany train/ folder's X-rays under another form.
SAME_XRAYS_AS_KERMANY_TRAIN = {"pneumoniamnist"}


class LeakError(MedtlError):
    """An evaluation split that holds images the model was trained on."""


def check_unseen(meta: dict, data: CourseData, split: str, checkpoint: Path) -> None:
    """Raise LeakError when `split` of `data` holds training images; warn when data differ.

    Evaluating on `split="train"` is allowed (it measures the fit, not generalisation); a given
    test/ folder is the user's, reported by the data banner as it is.
    """
    trained_on = meta.get("data_source")
    fingerprint, patients = meta.get("train_fingerprint"), set(meta.get("train_patients", []))
    if fingerprint is None:
        warnings.warn(
            f"{checkpoint} records no fingerprint of its training data (saved before it was "
            "recorded), so evaluate cannot check that the split was held out.",
            stacklevel=2,
        )
        return
    if data.train.fingerprint() != fingerprint:
        warnings.warn(
            f"The training split rebuilt from {data.origin} is not the one {checkpoint} was "
            f"trained on (it came from {trained_on}, {meta.get('data_root', 'another folder')}): "
            "these are other data, so the scores measure how the model transfers to them, not its "
            "held-out performance.",
            stacklevel=2,
        )
    if split == "train" or (split == "test" and data.test_given):
        return
    carved_from_train = data.source == "kermany-folder"
    if trained_on in SAME_XRAYS_AS_KERMANY_TRAIN and carved_from_train:
        raise LeakError(
            f"{checkpoint} was trained on {trained_on}, whose training images are the X-rays of "
            f"the Kermany train/ folder; the {split} split here is carved out of {data.origin}"
            "/train, so the model has seen its images. Evaluate on a test/ folder it never saw "
            f"(the official Kermany test/), or on {trained_on}'s own test split."
        )
    seen = sorted(patients & set(getattr(data, split).patients))
    if trained_on == data.source and seen:
        raise LeakError(
            f"{len(seen)} patients of the {split} split (e.g. {', '.join(seen[:3])}) were in "
            f"the training split of {checkpoint}: scoring them would flatter the model. Use the "
            f"--data folder it was trained on ({meta.get('data_root', 'see its metadata')}) so "
            f"that its seed ({meta.get('seed')}) rebuilds the same held-out split."
        )
