"""The notebook-00 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

import math

import pytest
import torch

from medtl_helpers.course.checks import TODO, check_leaked_patients, check_pneumonia_shares
from medtl_helpers.data.records import ImageSet


def reference_leaked(train, val):
    return set(train.patients) & set(val.patients)


def test_leaked_patients_accepts_the_reference(capsys):
    check_leaked_patients(reference_leaked)
    assert "Correct" in capsys.readouterr().out


def test_leaked_patients_rejects_the_union():
    with pytest.raises(AssertionError, match=r"is the union \(\|\).*take the intersection \(&\)"):
        check_leaked_patients(lambda train, val: set(train.patients) | set(val.patients))


def repeated_patients(train, val):
    """Any patient with two images, wherever they are: a repeat in one split is no leak."""
    both = list(train.patients) + list(val.patients)
    return {p for p in both if both.count(p) > 1}


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (repeated_patients, r"two or more images anywhere: two films of one patient in the same"),
        (lambda t, v: set(t.patients) ^ set(v.patients), r"in exactly one split \(\^\)"),
        (lambda t, v: set(t.patients) - set(v.patients), r"train patients that are not in val"),
    ],
)
def test_leaked_patients_names_other_set_operations(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_leaked_patients(wrong)


def test_leaked_patients_names_a_one_sided_patient_with_its_images():
    # person2 has two images, both in train; the answer is otherwise right
    def plus_person2(train, val):
        return (set(train.patients) & set(val.patients)) | {"person2"}

    with pytest.raises(AssertionError, match=r"'person2', which is only in train \(2 image"):
        check_leaked_patients(plus_person2)


def test_leaked_patients_rejects_a_list():
    with pytest.raises(AssertionError, match="returned a list"):
        check_leaked_patients(lambda train, val: [p for p in val.patients if p in train.patients])


def test_leaked_patients_rejects_a_missing_return():
    def forgot_return(train, val):
        set(train.patients) & set(val.patients)

    with pytest.raises(AssertionError, match="forget the `return`"):
        check_leaked_patients(forgot_return)


def test_leaked_patients_rejects_a_partial_answer():
    with pytest.raises(AssertionError, match="misses 'person1'"):
        check_leaked_patients(lambda train, val: {"IM-0003"} & set(train.patients))


@pytest.mark.parametrize(
    ("off_by_one", "message"),
    [
        (lambda t, v: set(t.patients[1:]) & set(v.patients), r"first id of train\.patients"),
        (lambda t, v: set(t.patients[:-1]) & set(v.patients), r"last id of train\.patients"),
        (lambda t, v: set(t.patients) & set(v.patients[1:]), r"first id of val\.patients"),
        (lambda t, v: set(t.patients) & set(v.patients[:-1]), r"last id of val\.patients"),
        (
            lambda t, v: {t.patients[i] for i in range(1, len(t)) if t.patients[i] in v.patients},
            r"first id of train\.patients",
        ),
    ],
)
def test_leaked_patients_names_an_off_by_one(off_by_one, message):
    """train.patients[1:] and val.patients[:-1] passed: no leaked patient sat at those ends."""
    with pytest.raises(AssertionError, match=rf"misses '[^']+'.*{message}"):
        check_leaked_patients(off_by_one)
    with pytest.raises(AssertionError, match="off-by-one"):
        check_leaked_patients(off_by_one)


def test_leaked_patients_explains_a_crash_on_paths():
    with pytest.raises(AssertionError, match="raised TypeError.*paths can be None"):
        check_leaked_patients(lambda train, val: set(train.paths) & set(val.paths))


def split(labels: list[int]) -> ImageSet:
    n = len(labels)
    return ImageSet(
        images=torch.zeros((n, 1, 4, 4), dtype=torch.uint8),
        labels=torch.tensor(labels),
        patients=[f"person{i}" for i in range(n)],
        source="synthetic",
    )


SPLITS = {"train": split([1, 1, 1, 0]), "val": split([1, 0]), "test": split([1, 1, 0, 0, 0])}


def test_shares_accept_the_reference(capsys):
    shares = {name: float(part.labels.float().mean()) for name, part in SPLITS.items()}
    check_pneumonia_shares(shares, SPLITS)
    assert "Correct" in capsys.readouterr().out


def test_shares_accept_one_element_tensors(capsys):
    check_pneumonia_shares({k: v.labels.float().mean() for k, v in SPLITS.items()}, SPLITS)
    assert "Correct" in capsys.readouterr().out


def test_shares_reject_the_normal_share():
    shares = {name: float((part.labels == 0).float().mean()) for name, part in SPLITS.items()}
    with pytest.raises(AssertionError, match="'train' is 0.2500, which is the NORMAL share"):
        check_pneumonia_shares(shares, SPLITS)


def test_shares_reject_counts():
    shares = {name: int(part.labels.sum()) for name, part in SPLITS.items()}
    with pytest.raises(AssertionError, match="more than 1: that looks like a count"):
        check_pneumonia_shares(shares, SPLITS)


def counted(normal: int, pneumonia: int) -> ImageSet:
    return split([0] * normal + [1] * pneumonia)


# The class counts of the cpu run's stratified Kermany splits: their shares differ by < 0.001.
KERMANY = {"train": counted(969, 2798), "val": counted(171, 494), "test": counted(201, 583)}
KERMANY_SHARES = {name: float(part.labels.float().mean()) for name, part in KERMANY.items()}


def test_shares_accept_the_reference_on_close_splits(capsys):
    check_pneumonia_shares(KERMANY_SHARES, KERMANY)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        ({k: KERMANY_SHARES["train"] for k in KERMANY}, r"'val' is 0.7428, which is the 'train'"),
        (
            {**KERMANY_SHARES, "train": KERMANY_SHARES["val"], "val": KERMANY_SHARES["train"]},
            r"'train' is 0.7429, which is the 'val' share; expected 0.7428",
        ),
        ({k: (3875 / 5216) for k in KERMANY}, r"'train' is 0.7429, which is the share of all"),
        ({**KERMANY_SHARES, "train": 0.743}, r"0.742766 rounded; give the exact share"),
    ],
)
def test_shares_name_another_splits_share_on_close_splits(wrong, message):
    """Within 0.001 of each other, these three wrong answers were called correct."""
    with pytest.raises(AssertionError, match=message):
        check_pneumonia_shares(wrong, KERMANY)


# Wrong images, not rounding: the pool of train and val before the split (3292 / 4432), and a
# near miss that is no rounding of 2798 / 3767 = 0.742766 (0.7426 rounds it to neither k).
@pytest.mark.parametrize("near_miss", [3292 / 4432, 0.7426])
def test_shares_blame_other_images_not_rounding_for_a_near_miss(near_miss):
    with pytest.raises(AssertionError) as raised:
        check_pneumonia_shares({**KERMANY_SHARES, "train": near_miss}, KERMANY)
    message = str(raised.value)
    assert "rounded;" not in message
    assert "close to, but not, the share of splits['train']'s own labels (0.742766)" in message
    assert "section 5's kept/held, or the pool before the split" in message


# The right images with precision lost another way: truncated to 4 decimals (0.7427, no rounding
# of 0.742766), and a float16 mean. The near-miss message must also name that cause.
@pytest.mark.parametrize(
    "lossy",
    [
        math.floor(KERMANY_SHARES["train"] * 1e4) / 1e4,
        float(KERMANY["train"].labels.half().mean()),
    ],
)
def test_shares_near_miss_also_names_lost_precision(lossy):
    with pytest.raises(AssertionError) as raised:
        check_pneumonia_shares({**KERMANY_SHARES, "train": lossy}, KERMANY)
    message = str(raised.value)
    assert "rounded;" not in message
    assert "close to, but not, the share of splits['train']'s own labels" in message
    assert message.endswith("or did you round, truncate or compute in low precision?")


@pytest.mark.parametrize("digits", [2, 4, 5])
def test_shares_say_rounded_only_for_a_rounding_of_the_share(digits):
    rounded = round(KERMANY_SHARES["train"], digits)
    with pytest.raises(AssertionError, match=r"0.742766 rounded; give the exact share"):
        check_pneumonia_shares({**KERMANY_SHARES, "train": rounded}, KERMANY)


def test_shares_name_a_pneumonia_per_normal_ratio():
    with pytest.raises(AssertionError, match=r"'train' is 2.8875, which is PNEUMONIA per NORMAL"):
        check_pneumonia_shares({**KERMANY_SHARES, "train": 2798 / 969}, KERMANY)


def test_leaked_patients_names_the_notebooks_own_splits():
    notebook_train = split([1, 1])
    notebook_val = split([1])
    with pytest.raises(AssertionError, match="not from the notebook's own splits"):
        check_leaked_patients(
            lambda train, val: set(notebook_train.patients) & set(notebook_val.patients)
        )


def test_shares_reject_percentages():
    shares = {name: 100 * float(part.labels.float().mean()) for name, part in SPLITS.items()}
    with pytest.raises(AssertionError, match="a percentage"):
        check_pneumonia_shares(shares, SPLITS)


def test_shares_reject_a_missing_split():
    with pytest.raises(AssertionError, match="no entry for 'test'"):
        check_pneumonia_shares({"train": 0.75, "val": 0.5}, SPLITS)


def test_shares_reject_a_list():
    with pytest.raises(AssertionError, match="expected a dict"):
        check_pneumonia_shares([0.75, 0.5, 0.4], SPLITS)


def test_checkers_ask_for_an_answer_on_the_student_placeholder():
    with pytest.raises(NotImplementedError, match="your leaked_patients is not written yet"):
        check_leaked_patients(TODO)
    with pytest.raises(NotImplementedError, match="your shares is not written yet"):
        check_pneumonia_shares(TODO, SPLITS)
