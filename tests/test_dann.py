"""DANN: gradient reversal, the schedule, adversarial training, and the separation measured."""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from medtl_helpers import config
from medtl_helpers.adaptation import (
    FewShot,
    dann,
    dann_chosen,
    dann_schedule,
    dann_training,
    domain_discriminator,
    joint,
    reverse_gradient,
    separation_before_after,
)
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.metrics import predict_proba
from medtl_helpers.models import build_model
from medtl_helpers.training import backbone_features

KWARGS = dict(batch_size=8, eval_every=1, image_size=16, seed=0, optimizer="sgd", lr=1e-3)


@pytest.fixture(autouse=True)
def fp32(monkeypatch):
    """Exact comparisons need fp32: bf16 autocast (on CPUs that have it) rounds to 3 digits."""
    monkeypatch.setattr(config, "amp_dtype", lambda *args, **kwargs: None)


@pytest.fixture(scope="module")
def sites():
    """A source model, 16 labelled source images and 12 target images with unusable labels."""
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained="none", verbose=False).eval()
    source = make_synthetic(16, size=16, seed=5)
    target = make_synthetic(12, size=16, seed=9)
    # Label 7 is no class: any loss that read these labels would raise.
    return model, source, replace(target, labels=torch.full((12,), 7))


def test_gradient_reversal_is_the_identity_forward_and_minus_scale_backward():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x.detach())
    (y * torch.tensor([2.0, 4.0, -6.0])).sum().backward()
    assert x.grad.tolist() == [-1.0, -2.0, 3.0]
    x.grad = None
    reverse_gradient(x, 0.0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]  # λ = 0: the backbone gets nothing from the domain


def test_the_schedule_rises_from_0_to_1_as_in_the_paper():
    assert dann_schedule(0.0) == 0.0
    assert dann_schedule(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_schedule(0.5) == pytest.approx(0.98661, abs=1e-5)
    assert dann_schedule(1.0) == pytest.approx(0.99991, abs=1e-5)
    assert dann_schedule(0.1, gamma=1.0) == pytest.approx(2 / (1 + math.exp(-0.1)) - 1)


def test_the_discriminator_gives_one_logit_per_image():
    torch.manual_seed(0)
    net = domain_discriminator(512, hidden=8)
    assert net(torch.zeros(5, 512)).shape == (5, 1)
    assert sum(p.numel() for p in net.parameters()) == 512 * 8 + 8 + 8 + 1


def test_dann_follows_the_schedule_and_keeps_the_source_batchnorm(sites):
    model, source, target = sites
    before = copy.deepcopy(model.state_dict())
    tuned, curve = dann_training(model, source, target, source, weight=2.0, steps=3, **KWARGS)
    assert [row["step"] for row in curve] == [0, 1, 2, 3]
    reversal = [row["reversal"] for row in curve[1:]]
    assert reversal == pytest.approx([0.0, 2 * dann_schedule(0.5), 2 * dann_schedule(1.0)])
    assert all(0 < row["domain_loss"] < 5 and row["label_loss"] > 0 for row in curve[1:])
    assert type(tuned.fc) is nn.Linear  # the discriminator is gone from the model returned
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    state = tuned.state_dict()
    assert set(state) == set(before)
    buffers = [k for k in before if "running" in k]
    assert len(buffers) == 40 and all(torch.equal(state[k], before[k]) for k in buffers)
    assert curve[-1]["distance"] > 0


def test_the_reversal_moves_the_backbone_only_once_the_schedule_starts(sites, monkeypatch):
    scored = iter(range(1000))  # every scored step beats the last: the last step is kept
    monkeypatch.setattr(joint, "scores_on", lambda *a: {"val_loss": -next(scored)})
    model, source, target = sites
    runs = {
        weight: dann_training(model, source, target, source, weight=weight, steps=2, **KWARGS)
        for weight in (0.0, 10.0)
    }
    (control, control_curve), (adversarial, curve) = runs[0.0], runs[10.0]
    # step 1: λ_p = 0, the same step; step 2: λ_p = 1, the reversed domain gradient acts
    assert curve[1]["distance"] == control_curve[1]["distance"]
    assert curve[2]["distance"] != control_curve[2]["distance"]
    layer = "layer4.1.conv2.weight"
    moved = (control.state_dict()[layer] - adversarial.state_dict()[layer]).abs().max()
    assert moved > 1e-6


def test_dann_chosen_tries_0_first_and_keeps_the_lowest_validation_loss(sites, monkeypatch):
    model, source, target = sites
    losses = {0.0: 0.5, 0.1: 0.5, 1.0: 0.4}
    tried = []

    def fake(net, src, unlabelled, val, *, weight, **options):
        tried.append(weight)
        assert unlabelled is target and options["steps"] == 20 and options["image_size"] == 16
        assert options["seed"] == 3  # every ceiling trains on the same batches and start
        return net, [{"step": 0, "val_loss": 0.9}, {"step": 5, "val_loss": losses[weight]}], net

    monkeypatch.setattr(dann, "_adversarial_run", fake)
    site = type("Target", (), {"unlabelled": target, "val": source, "test": source})
    result = dann_chosen(
        model, source, site, FewShot(dann_weights=(1.0, 0.1)), image_size=16, seed=3
    )
    assert tried == [0.0, 0.1, 1.0]
    assert result["lambda"] == 1.0 and result["val_losses"] == losses
    assert result["p"].shape == (16,) and result["model"] is model
    losses[1.0] = 0.5  # a three-way tie keeps the control
    assert dann_chosen(model, source, site, FewShot(), image_size=16, seed=3)["lambda"] == 0.0


def test_dann_chosen_returns_the_lambda_0_control_scored_on_test(sites, monkeypatch):
    # DANN's arm also trains extra steps on the source; the λ = 0 run of those same steps is
    # returned and scored, so that DANN minus the control is what the adversary added.
    model, source, target = sites
    nets = {w: copy.deepcopy(model) for w in (0.0, 1.0)}
    with torch.no_grad():
        nets[1.0].fc.bias += torch.tensor([-2.0, 2.0])  # a run whose scores differ from 0's
    curves = {w: [{"step": 0, "val_loss": 0.9}, {"step": 2, "val_loss": v}]
              for w, v in ((0.0, 0.5), (1.0, 0.4))}  # fmt: skip

    def fake(net, src, unlabelled, val, *, weight, **options):
        return nets[weight], curves[weight], nets[weight]

    monkeypatch.setattr(dann, "_adversarial_run", fake)
    site = type("Target", (), {"unlabelled": target, "val": source, "test": source})
    result = dann_chosen(model, source, site, FewShot(dann_weights=(1.0,)), image_size=16)
    control = result["control"]
    assert result["lambda"] == 1.0 and control["lambda"] == 0.0
    assert control["curve"] is curves[0.0] and result["curve"] is curves[1.0]
    assert control["p"].shape == result["p"].shape == (16,)
    assert (control["p"] < result["p"]).all()  # the control's own model, not the chosen one


def test_separation_before_after_scores_each_model_on_its_own_features(sites):
    model, source, _ = sites
    source = make_synthetic(40, size=16, seed=3)
    target = replace(
        source, images=255 - source.images, patients=[f"t{p}" for p in source.patients]
    )
    blind = copy.deepcopy(model)
    with torch.no_grad():
        blind.conv1.weight.zero_()  # every image gives the same features
    table = separation_before_after(model, blind, source, target, image_size=16)
    assert list(table.index) == ["before", "after"]
    assert list(table.columns) == ["domain_auroc", "domain_error", "proxy_a_distance"]
    assert (
        table.loc["before", "domain_auroc"] > 0.95 and table.loc["before", "proxy_a_distance"] > 1.5
    )
    assert table.loc["after", "domain_auroc"] == pytest.approx(0.5)
    assert table.loc["after", "domain_error"] == pytest.approx(0.5)
    assert table.loc["after", "proxy_a_distance"] == pytest.approx(0.0)


def test_dann_chosen_measures_a_run_with_the_adversary_even_when_0_is_chosen(sites, monkeypatch):
    # With ceiling 0 chosen, the chosen model is the control: it had no adversary, so the
    # separation check must read the largest ceiling's run instead.
    model, source, target = sites
    nets = {w: copy.deepcopy(model) for w in (0.0, 0.1, 1.0)}
    finals = {w: copy.deepcopy(model) for w in nets}
    losses = {0.0: 0.3, 0.1: 0.5, 1.0: 0.4}

    def fake(net, src, unlabelled, val, *, weight, **options):
        curve = [{"step": 0, "val_loss": 0.9}, {"step": 2, "val_loss": losses[weight]}]
        return nets[weight], curve, finals[weight]

    monkeypatch.setattr(dann, "_adversarial_run", fake)
    site = type("Target", (), {"unlabelled": target, "val": source, "test": source})
    result = dann_chosen(model, source, site, FewShot(dann_weights=(1.0, 0.1)), image_size=16)
    assert result["lambda"] == 0.0 and result["model"] is nets[0.0]
    assert result["adversary"]["lambda"] == 1.0 and result["adversary"]["model"] is finals[1.0]
    losses[0.1] = 0.2  # a positive ceiling chosen: that run is the one measured
    result = dann_chosen(model, source, site, FewShot(dann_weights=(1.0, 0.1)), image_size=16)
    assert result["adversary"] == {"model": finals[0.1], "lambda": 0.1, "kept_step": 2}
    assert result["kept_steps"] == {0.0: 2, 0.1: 2, 1.0: 2}


def test_the_adversary_is_measured_at_the_end_of_training_when_step_0_is_kept(sites, monkeypatch):
    # Validation keeps step 0 for every ceiling, so every scored run is the source model; the
    # separation check must still read the weights the adversary trained, not the source's.
    scored = iter(range(1000))  # every scored step is worse than the last: step 0 is kept
    monkeypatch.setattr(joint, "scores_on", lambda *a: {"val_loss": next(scored)})
    model, source, target = sites
    settings = FewShot(steps=2, eval_every=1, batch_size=8, lr=1e-3, optimizer="sgd")
    site = type("Target", (), {"unlabelled": target, "val": source, "test": source})
    result = dann_chosen(model, source, site, replace(settings, dann_weights=(10.0,)), 16)
    assert result["lambda"] == 0.0 and result["kept_steps"] == {0.0: 0, 10.0: 0}
    assert result["adversary"]["lambda"] == 10.0 and result["adversary"]["kept_step"] == 0
    source_p = predict_proba(model, source.images, image_size=16)
    assert np.array_equal(result["p"], source_p)  # the scored row is the source model itself
    before = backbone_features(model, source.images, 16)
    after = backbone_features(result["adversary"]["model"], source.images, 16)
    assert np.abs(before - after).max() > 1e-6
