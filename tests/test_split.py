import pytest
import torch

from medtl_helpers.data.records import ImageSet
from medtl_helpers.data.split import (
    check_no_patient_overlap,
    describe_test_split,
    patient_fraction_index,
    shared_patients,
    split_by_patient,
    split_report,
    subsample_by_patient,
)
from medtl_helpers.errors import DataError


def make_set(n_patients: int = 300, seed: int = 0) -> ImageSet:
    """Patients with 1-3 images each, a quarter NORMAL, like Kermany's 1:3 imbalance."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, 4, (n_patients,), generator=gen).tolist()
    labels, patients = [], []
    for p, c in enumerate(counts):
        labels += [int(p % 4 != 0)] * c
        patients += [f"person{p}"] * c
    n = len(labels)
    return ImageSet(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.tensor(labels), patients, "t")


def test_split_keeps_patients_whole_and_classes_balanced():
    data = make_set()
    train, val = split_by_patient(data, 0.15, seed=1)
    assert len(train) + len(val) == len(data)
    assert not set(train.patients) & set(val.patients)
    share = data.labels.float().mean()
    assert abs(val.labels.float().mean() - share) < 0.02
    assert abs(train.labels.float().mean() - share) < 0.02
    assert 0.13 < len(val) / len(data) < 0.18


def test_split_is_deterministic_by_seed():
    data = make_set()
    assert split_by_patient(data, 0.2, 5)[1].patients == split_by_patient(data, 0.2, 5)[1].patients
    assert split_by_patient(data, 0.2, 5)[1].patients != split_by_patient(data, 0.2, 6)[1].patients


def test_overlap_is_reported_with_patient_names():
    data = make_set(20)
    with pytest.raises(
        DataError, match=r"^1 patient appears in more than one split, e.g. person0 \(a and b\)\."
    ):
        check_no_patient_overlap(a=data.subset([0, 1, 2]), b=data.subset([0, 5]))


def test_shared_patients_in_natural_order_and_every_pair_checked():
    data = make_set(20)
    by_patient = {p: i for i, p in enumerate(data.patients)}  # one image of each patient
    pick = lambda *ids: data.subset([by_patient[f"person{i}"] for i in ids])  # noqa: E731
    assert shared_patients(pick(10, 2, 3), pick(3, 10, 2, 4)) == ["person2", "person3", "person10"]
    assert shared_patients(pick(1), pick(2)) == []
    # train/val clean, but val and test share person7: the third pair is checked too
    with pytest.raises(
        DataError,
        match=r"^1 patient appears in more than one split, e\.g\. person7 \(val and test\)\.",
    ):
        check_no_patient_overlap(train=pick(1, 2), val=pick(3, 7), test=pick(7, 8))


def test_fraction_index_validates_and_subsample_keeps_balance():
    data = make_set()
    with pytest.raises(ValueError, match="fraction"):
        patient_fraction_index(data, 0.0)
    small = subsample_by_patient(data, 100, seed=0)
    assert 95 <= len(small) <= 110
    assert abs(small.labels.float().mean() - data.labels.float().mean()) < 0.05
    assert subsample_by_patient(data, None) is data


def test_split_too_small_says_use_more_data():
    one = make_set(1)
    with pytest.raises(DataError, match="one side would be empty"):
        split_by_patient(one, 0.15)


def test_split_report_rows():
    data = make_set(8)
    row = split_report(all=data)[0]
    assert row["images"] == len(data) and row["patients"] == 8
    assert row["NORMAL"] + row["PNEUMONIA"] == len(data)


def test_whole_fraction_takes_everyone_and_small_classes_still_appear():
    data = make_set(40)
    assert len(patient_fraction_index(data, 1.0)) == len(data)
    tiny = patient_fraction_index(data, 0.01)
    assert set(data.labels[tiny].tolist()) == {0, 1}


def test_a_split_too_small_to_validate_with_is_named_class_by_class():
    import torch

    from medtl_helpers.data.records import ImageSet
    from medtl_helpers.data.split import too_small_to_validate

    def image_set(normal: int, pneumonia: int) -> ImageSet:
        n = normal + pneumonia
        labels = torch.tensor([0] * normal + [1] * pneumonia)
        return ImageSet(
            torch.zeros((n, 1, 2, 2), dtype=torch.uint8), labels, [f"p{i}" for i in range(n)], "t"
        )

    assert too_small_to_validate(image_set(20, 60)) is None
    problem = too_small_to_validate(image_set(2, 60))
    assert problem.startswith("holds only 2 NORMAL images from 2 patients (fewer than 20 images")
    assert "PNEUMONIA" not in problem


def test_describe_test_split_quotes_medmnist_and_claims_no_patient_check():
    mnist = [
        ImageSet(
            torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
            torch.tensor([0, 1, 0, 1]),
            [f"mnist-{s}-{i:05d}" for i in range(4)],
            "pneumoniamnist",
        )
        for s in ("train", "val", "test")
    ]
    note = describe_test_split(*mnist, test_given=False)
    assert note.startswith("MedMNIST made this split: it divided the source's training set 9:1")
    assert '"its source validation set"' in note and "carved" not in note
    assert note.endswith("so no split of this source can be checked by patient")


def test_describe_test_split_counts_a_given_folders_reused_ids_and_checks_a_carved_one():
    data = make_set(40)
    train, test = split_by_patient(data, 0.3, seed=0)
    reused = train.subset(range(3))  # test/ holding train's first patient(s) again
    given = ImageSet(
        torch.cat([test.images, reused.images]),
        torch.cat([test.labels, reused.labels]),
        test.patients + reused.patients,
        "t",
    )
    n_reused = len(set(reused.patients))
    assert describe_test_split(train, train.subset([]), given, test_given=True) == (
        f"the given test/ folder: {n_reused} of its {given.n_patients()} patient ids also name "
        "a patient in train or val"
    )
    assert "shares no patient" in describe_test_split(train, train.subset([]), test, False)
    with pytest.raises(DataError, match="in more than one split"):
        describe_test_split(train, train.subset([]), given, test_given=False)


def test_unstratified_index_takes_the_fraction_of_all_images_with_any_balance():
    data = make_set()
    labels = data.labels.numpy()
    share = labels.mean()

    def gaps(stratify):
        return [
            abs(labels[patient_fraction_index(data, 0.15, s, stratify=stratify)].mean() - share)
            for s in range(40)
        ]

    unstratified = patient_fraction_index(data, 0.15, seed=3, stratify=False)
    assert 0.13 < len(unstratified) / len(data) < 0.17
    assert max(gaps(True)) < 0.02 < sorted(gaps(False))[20]  # the median of 40
