"""evaluate's check that a split was held out from the model's training data."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from medtl_helpers.data.records import ImageSet
from medtl_helpers.data.sources import CourseData
from medtl_helpers.evaluation.provenance import LeakError, check_unseen

CKPT = Path("runs/r18/best.pt")


def image_set(patients: list[str], source: str = "kermany-folder") -> ImageSet:
    n = len(patients)
    images = torch.zeros((n, 1, 4, 4), dtype=torch.uint8)
    return ImageSet(images, torch.tensor([i % 2 for i in range(n)]), patients, source)


def kermany(test_given: bool = False) -> CourseData:
    train = image_set(["person1", "person2", "IM-0001", "IM-0002"])
    val, test = image_set(["person3", "IM-0003"]), image_set(["person4", "IM-0004"])
    return CourseData(train, val, test, "kermany-folder", "/data/xray", test_given=test_given)


def meta_for(data: ImageSet, source: str | None = None) -> dict:
    return {
        "data_source": source or data.source,
        "train_fingerprint": data.fingerprint(),
        "train_patients": sorted(set(data.patients)),
        "seed": 0,
    }


def test_a_held_out_split_passes_silently():
    data = kermany()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_unseen(meta_for(data.train), data, "test", CKPT)


def test_a_pneumoniamnist_model_is_refused_on_a_holdout_of_kermany_train():
    data = kermany()
    meta = meta_for(image_set(["train-0", "train-1"], "pneumoniamnist"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the data differ too; the refusal is the point
        with pytest.raises(LeakError, match=r"trained on pneumoniamnist.*has seen its images"):
            check_unseen(meta, data, "test", CKPT)
        check_unseen(meta, kermany(test_given=True), "test", CKPT)  # the official test/: fine


def test_training_patients_in_the_split_are_refused_and_named():
    data = kermany()
    meta = meta_for(data.train)
    meta["train_patients"].append("person4")
    with pytest.raises(LeakError, match=r"1 patients of the test split \(e.g. person4\)"):
        check_unseen(meta, data, "test", CKPT)
    check_unseen(meta, data, "train", CKPT)  # scoring the training split itself is allowed


def test_other_data_is_scored_with_a_warning():
    data = kermany()
    meta = meta_for(image_set(["person9", "IM-0009"]))
    with pytest.warns(UserWarning, match="is not the one .* was trained on"):
        check_unseen(meta, data, "test", CKPT)
    with pytest.warns(UserWarning, match="records no fingerprint"):
        check_unseen({"data_source": "kermany-folder"}, data, "test", CKPT)
