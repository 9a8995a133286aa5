"""Joint training L_source + λ·L_target: its limits in λ, its batches, and the choice of λ."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from medtl_helpers import config
from medtl_helpers.adaptation import (
    FewShot,
    balanced_log_loss,
    fine_tune,
    joint,
    joint_chosen,
    joint_training,
    l2sp,
)
from medtl_helpers.adaptation.joint import Stacked, paired_batches
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.metrics import predict_proba
from medtl_helpers.models import build_model

KWARGS = dict(batch_size=8, eval_every=1, image_size=16, seed=0, optimizer="sgd")


@pytest.fixture(autouse=True)
def fp32(monkeypatch):
    """Exact comparisons need fp32: bf16 autocast (on CPUs that have it) rounds to 3 digits."""
    monkeypatch.setattr(config, "amp_dtype", lambda *args, **kwargs: None)


@pytest.fixture(scope="module")
def sets():
    """A source model, 16 source images, and the target task: 8 of them with opposite labels."""
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained="none", verbose=False).eval()
    source = make_synthetic(16, size=16, seed=5)
    flipped = source.subset(range(8))
    return model, source, replace(flipped, labels=1 - flipped.labels)


@pytest.fixture
def keep_last(monkeypatch):
    """Every scored step beats the one before, so the last step's weights are returned."""
    scored = iter(range(1000))

    def fake(*args):
        return {"val_loss": -next(scored), "val_auroc": 0.0}

    monkeypatch.setattr(l2sp, "scores_on", fake)
    monkeypatch.setattr(joint, "scores_on", fake)


def test_stacked_indexes_two_sets_as_one_without_mixing_them(sets):
    _, source, target = sets
    stacked = Stacked(target, source)
    assert len(stacked) == 24 and stacked.first_size == 8
    index = torch.tensor([3, 10, 0, 23])
    rows = stacked.images[index]
    assert torch.equal(rows[0], target.images[3]) and torch.equal(rows[2], target.images[0])
    assert torch.equal(rows[1], source.images[2]) and torch.equal(rows[3], source.images[15])
    expected = [target.labels[3], source.labels[2], target.labels[0], source.labels[15]]
    assert stacked.labels[index].tolist() == [int(label) for label in expected]
    assert stacked.labels[:8].tolist() != stacked.labels[8:16].tolist()  # the flipped labels
    with pytest.raises(ValueError, match="cannot share a batch"):
        Stacked(target, make_synthetic(4, size=8, seed=1))


def test_paired_batches_take_one_batch_from_each_set():
    stacked = Stacked(make_synthetic(6, size=8, seed=1), make_synthetic(20, size=8, seed=2))
    generators = (torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    cut = list(paired_batches(stacked, 4, 5, generators))
    assert len(cut) == 5 and all(len(index) == 8 for index in cut)
    assert all((index[:4] < 6).all() and (index[4:] >= 6).all() for index in cut)
    # the first set's batches are exactly `batches`' with the first generator
    alone = list(l2sp.batches(6, 4, 5, torch.Generator().manual_seed(0)))
    assert all(torch.equal(index[:4], a) for index, a in zip(cut, alone, strict=True))


def test_a_very_large_lambda_is_fine_tune_all(sets):
    # SGD with lr·λ fixed: each step is lr·(∇L_target + ∇L_source / λ), so with λ = 1e6 the
    # source term is a millionth of it, and the same target batches and augmentations give the
    # same steps as fine_tune's.
    model, source, target = sets
    plain, plain_curve = fine_tune(model, target, target, steps=3, lr=1e-3, **KWARGS)
    kept, curve = joint_training(model, target, source, target, lam=1e6, steps=3, lr=1e-9,
                                 **KWARGS)  # fmt: skip
    assert [r["step"] for r in curve] == [0, 1, 2, 3]
    assert curve[-1]["distance"] > 1e-3
    for ours, theirs in zip(curve, plain_curve, strict=True):
        assert ours["distance"] == pytest.approx(theirs["distance"], rel=1e-4, abs=1e-9)
        assert ours["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-5)
    p_plain = predict_proba(plain, source.images, image_size=16)
    np.testing.assert_allclose(
        predict_proba(kept, source.images, image_size=16), p_plain, atol=1e-6
    )


def test_a_small_lambda_keeps_the_source_loss_below_fine_tune_all(sets, keep_last):
    # The target task is the source's with the labels swapped: fine-tuning on it forgets the
    # source task, and joint training with a small λ keeps learning it.
    model, source, target = sets
    before = copy.deepcopy(model.state_dict())
    plain, _ = fine_tune(model, target, target, steps=2, lr=1e-3, **KWARGS)
    kept, curve = joint_training(model, target, source, target, lam=0.01, steps=2, lr=1e-3,
                                 **KWARGS)  # fmt: skip
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert {"target_loss", "source_loss", "distance"} <= set(curve[-1])

    def source_loss(net):
        return balanced_log_loss(source.labels, predict_proba(net, source.images, image_size=16))

    assert source_loss(kept) < source_loss(model) and source_loss(kept) < source_loss(plain)
    buffers = {k: v for k, v in kept.state_dict().items() if "running" in k}
    assert len(buffers) == 40 and all(torch.equal(v, before[k]) for k, v in buffers.items())


def test_joint_chosen_keeps_the_lambda_with_the_lowest_validation_loss(sets, monkeypatch):
    model, source, target = sets
    losses = {0.1: 0.5, 1.0: 0.3, 10.0: 0.4}
    tried = []

    def fake(net, support, src, val, *, lam, **options):
        tried.append(lam)
        return net, [{"step": 0, "val_loss": 0.9}, {"step": 5, "val_loss": losses[lam]}]

    monkeypatch.setattr(joint, "joint_training", fake)
    site = type("Target", (), {"val": target, "test": source})
    result = joint_chosen(model, target, source, site, (10.0, 0.1, 1.0), image_size=16)
    assert tried == [0.1, 1.0, 10.0]  # the smallest λ first: it wins a tie
    assert result["lambda"] == 1.0 and result["val_losses"] == losses
    assert result["p"].shape == (16,) and result["curve"][1]["val_loss"] == 0.3
    losses.update({1.0: 0.5, 10.0: 0.5})
    assert joint_chosen(model, target, source, site, (10.0, 1.0, 0.1))["lambda"] == 0.1


def test_few_shot_settings_hold_the_new_grids_with_defaults():
    settings = FewShot()
    assert settings.joint_lambdas == (0.1, 1.0, 10.0) and settings.dann_weights == (0.1, 1.0)
    assert FewShot(joint_lambdas=(1.0,)).steps == 20
