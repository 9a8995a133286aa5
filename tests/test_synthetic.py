"""The synthetic chest X-rays: deterministic, Kermany-shaped, learnable, and not trivially so."""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from medtl_helpers.data.synthetic import make_synthetic, synthetic_stems, write_synthetic_folder

PERSON = re.compile(r"^(person\d+)_")
IM = re.compile(r"^(.*IM-\d+)-\d+$")
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def train_val():
    """800 training and 200 validation images at 64 px from different seeds."""
    return make_synthetic(800, size=64, seed=0), make_synthetic(200, size=64, seed=1)


def test_same_seed_gives_identical_images_and_another_seed_does_not():
    a, b, c = (make_synthetic(40, size=32, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels) and a.patients == b.patients
    assert not torch.equal(a.images, c.images)


@pytest.mark.parametrize("size", [32, 64, 128, 224])
def test_shapes_dtypes_and_source(size):
    images = make_synthetic(6, size=size, seed=1)
    assert images.images.shape == (6, 1, size, size)
    assert images.images.dtype == torch.uint8
    assert images.labels.dtype == torch.int64
    assert set(images.labels.tolist()) <= {0, 1}
    assert len(images.patients) == 6
    assert images.source == "synthetic" and images.paths is None
    assert images.unit == "patients"  # synthetic sets carry patient ids
    # Not blank: a dark background and a bright body both show up.
    assert images.images.min() < 40 and images.images.max() > 150


def test_empty_set_and_bad_arguments():
    assert make_synthetic(0).images.shape == (0, 1, 64, 64)
    with pytest.raises(ValueError, match="pneumonia_fraction"):
        make_synthetic(10, pneumonia_fraction=1.5)
    with pytest.raises(ValueError, match="size >= 8"):
        make_synthetic(10, size=4)


@pytest.mark.parametrize("fraction", [0.74, 0.3])
def test_class_fraction_is_close_to_requested(fraction):
    labels = make_synthetic(1000, size=16, seed=2, pneumonia_fraction=fraction).labels
    assert abs(labels.float().mean().item() - fraction) < 0.04


def test_each_patient_has_one_label_and_at_most_max_images():
    images = make_synthetic(300, size=16, seed=5, max_images_per_patient=4)
    per_patient = defaultdict(list)
    for pid, label in zip(images.patients, images.labels.tolist()):
        per_patient[pid].append(label)
    sizes = [len(labels) for labels in per_patient.values()]
    assert min(sizes) >= 1 and max(sizes) == 4
    assert all(len(set(labels)) == 1 for labels in per_patient.values())
    assert 300 / 4 <= len(per_patient) < 300


def test_patient_ids_follow_kermany_patterns():
    images = make_synthetic(200, size=16, seed=6)
    for pid, label in zip(images.patients, images.labels.tolist()):
        pattern = r"person\d+" if label == 1 else r"IM-\d{4,}"
        assert re.fullmatch(pattern, pid), pid


def test_stems_number_images_per_patient():
    stems = synthetic_stems(["IM-0001", "IM-0001", "person2", "person3", "person3"])
    assert stems == [
        "IM-0001-0001",
        "IM-0001-0002",
        "person2_bacteria_3",
        "person3_virus_4",
        "person3_virus_5",
    ]


def test_folder_has_kermany_layout_and_recoverable_patients(tmp_path):
    root = write_synthetic_folder(tmp_path / "chest_xray", n_train=24, n_test=10, size=32, seed=1)
    assert root == tmp_path / "chest_xray"
    patients = {}
    for split, expected in (("train", 24), ("test", 10)):
        files = sorted((root / split).glob("*/*.png"))
        assert len(files) == expected
        assert {f.parent.name for f in files} <= {"NORMAL", "PNEUMONIA"}
        patients[split] = set()
        for f in files:
            match = PERSON.match(f.stem) or IM.match(f.stem)
            assert match, f.name
            assert (f.parent.name == "PNEUMONIA") == f.stem.startswith("person"), f
            patients[split].add(match.group(1))
        with Image.open(files[0]) as img:
            assert img.size == (32, 32) and img.mode == "L"
    assert not patients["train"] & patients["test"]
    assert patients["train"] == set(make_synthetic(24, size=32, seed=1).patients)


def test_pneumonia_lungs_are_brighter_than_normal_lungs():
    images = make_synthetic(400, size=64, seed=7)
    pixels = images.images.float()[:, 0]
    lung_boxes = torch.cat([pixels[:, 18:38, 12:24], pixels[:, 18:38, 40:52]], dim=2)
    # Relative to the whole image, so per-patient exposure cancels out.
    lung_vs_image = lung_boxes.mean(dim=(1, 2)) - pixels.mean(dim=(1, 2))
    sick = images.labels == 1
    assert lung_vs_image[sick].mean() - lung_vs_image[~sick].mean() > 5.0


def test_mean_intensity_alone_does_not_separate_the_classes(train_val):
    train, val = train_val
    brightness = [s.images.float().mean(dim=(1, 2, 3)).numpy()[:, None] for s in train_val]
    classifier = LogisticRegression().fit(brightness[0], train.labels.numpy())
    auroc = roc_auc_score(val.labels.numpy(), classifier.predict_proba(brightness[1])[:, 1])
    assert auroc < 0.9


def _as_imagenet_input(images: torch.Tensor) -> torch.Tensor:
    rgb = images.float().div(255.0).repeat(1, 3, 1, 1)
    return (rgb - IMAGENET_MEAN) / IMAGENET_STD


def test_resnet18_from_scratch_learns_it_in_one_epoch(train_val):
    train, val = train_val
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=2)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for batch in torch.randperm(len(train)).split(32):
        logits = model(_as_imagenet_input(train.images[batch]))
        loss = torch.nn.functional.cross_entropy(logits, train.labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        scores = model(_as_imagenet_input(val.images)).softmax(dim=1)[:, 1]
    auroc = roc_auc_score(val.labels.numpy(), scores.numpy())
    assert np.isfinite(auroc) and auroc >= 0.9
