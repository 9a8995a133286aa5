"""The notebook-00 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

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
    with pytest.raises(AssertionError, match="'train' is 0.250, which is the NORMAL share"):
        check_pneumonia_shares(shares, SPLITS)


def test_shares_reject_counts():
    shares = {name: int(part.labels.sum()) for name, part in SPLITS.items()}
    with pytest.raises(AssertionError, match="more than 1: that looks like a count"):
        check_pneumonia_shares(shares, SPLITS)


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
