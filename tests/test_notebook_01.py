"""Notebook 01's cells compute what they claim: loop sizes, memory, gradients per weight."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from notebook_cells import cell_source, run_cells

NB = "01_residual_blocks"
IMPORTS, PARAMETERS, MEMORY = "5704216b", "b01ca1d3", "5c4db877"
NETWORKS = ["01347b62", "d7c5b1ed", "68ec17e8"]  # PlainBlock, deep_net, conv_layers + the two nets
GRADIENTS = "24734a13"
MAPS, TRAINING_END = "756827b5", "3860f615"


def prepared(**names) -> dict:
    """The notebook's imports and parameters, then `names` on top."""
    namespace: dict = {}
    run_cells(NB, [IMPORTS, PARAMETERS], namespace)
    return namespace | names


@pytest.mark.parametrize(
    ("profile", "cap", "steps"),
    [
        ("quick", "", 120),
        ("cpu", "", 360),
        ("gpu", "", 960),
        ("cpu", "600", 120),
        ("gpu", "600", 120),
    ],
)
def test_train_steps_follow_profile_scale(profile, cap, steps, monkeypatch):
    monkeypatch.setenv("MEDTL_PROFILE", profile)
    monkeypatch.setenv("MEDTL_MAX_IMAGES", cap)
    assert prepared()["TRAIN_STEPS"] == steps


def test_memory_of_a_float_copy_is_computed():
    names = {"x_train": torch.zeros(2, 3, 32, 32), "data": SimpleNamespace(train=range(802))}
    out = run_cells(NB, [MEMORY], prepared(**names))
    assert "these 802 training images at 64 px as model input: 0.04 GB" in out  # 802*64²*12 B
    assert "one chunk of 512 at 64 px as model input: 0.03 GB" in out
    assert "Kermany's 5,216 training images at 224 px as model input: 3.14 GB" in out
    assert "about a gigabyte" not in cell_source(NB, "fb40f9fa")


def test_gradients_at_initialisation_are_per_weight():
    gen = torch.Generator().manual_seed(0)
    names = {"x_train": torch.randn(40, 3, 32, 32, generator=gen)}
    names["y_train"] = torch.randint(0, 2, (40,), generator=gen)
    namespace = prepared(**names)
    out = run_cells(NB, [*NETWORKS, GRADIENTS], namespace)
    assert "weights per conv: first 216, last 9,216 (43x as many)" in out
    net = namespace["plain"]
    convs = namespace["conv_layers"](net)
    net.zero_grad()
    F.cross_entropy(net(namespace["x_probe"]), namespace["y_probe"]).backward()
    rms = torch.tensor([c.weight.grad.pow(2).mean().sqrt().item() for c in convs])
    assert torch.allclose(namespace["grads"]["plain"], rms, rtol=1e-4)
    assert torch.allclose(namespace["grad_norms"](net), rms, rtol=1e-4)


def test_feature_maps_follow_the_stem_and_stage_strides():
    names = {"x_train": torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))}
    namespace = prepared(**names)
    out = run_cells(NB, [*NETWORKS, MAPS], namespace)
    assert "input           (3, 32, 32)\n" in out
    assert "after the stem  (8, 16, 16)\nafter stage 1   (8, 16, 16)\n" in out  # stage 1: stride 1
    assert "after stage 2   (16, 8, 8)\nafter stage 3   (32, 4, 4)\n" in out
    plain = namespace["plain"]
    assert plain.training  # the look put it back in train mode, its statistics untouched
    assert all(torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
               for bn in plain.modules() if isinstance(bn, torch.nn.BatchNorm2d))  # fmt: skip


@pytest.mark.parametrize(
    ("plain_shift", "noise", "residual_shift", "printed"),
    [
        (0.01, 0.2, 0.0, "+0.010 ± 0.092 (2 standard errors of the per-step differences): "
         "not separable"),
        (0.3, 0.02, 0.0, "+0.300 ± 0.009 (2 standard errors of the per-step differences): "
         "residual ends lower"),
        (0.0, 0.02, 0.3, "-0.300 ± 0.009 (2 standard errors of the per-step differences): "
         "plain ends lower"),
    ],
)  # fmt: skip
def test_end_of_training_verdict_is_paired_with_a_tie_band(
    plain_shift, noise, residual_shift, printed
):
    # last 20 differences alternate shift ± noise: mean = shift, sd = noise * sqrt(20 / 19)
    base = torch.linspace(1.0, 0.5, 120)
    wiggle = torch.tensor([noise, -noise] * 60)
    curves = {"plain": base + plain_shift + wiggle, "residual": base + residual_shift}
    names = {"plain": "plain", "residual": "residual", "y_train": torch.tensor([0, 1, 1, 1])}
    namespace = prepared(**names, train_losses=curves.__getitem__)
    out = run_cells(NB, [TRAINING_END], namespace)
    assert f"plain - residual, last 20 steps: {printed}" in out


def test_gradient_trend_leaves_out_the_stem_and_calls_no_direction_within_the_scatter():
    # the factor read only the two ends: one jump at the stem, over a flat profile, printed
    # "x1.144 per layer ... the first (input) layer gets the larger gradient"
    flat = torch.tensor([5e-3] + [2e-4, 2.4e-4, 2.4e-4, 2e-4] * 6)  # stem 25x the next conv
    steady = 0.5 * 1.2 ** -torch.arange(25.0)  # x1.2 per layer from the output to the input
    names = {"grads": {"residual": steady}, "grads_no_bn": {"residual": flat}}
    namespace = prepared(**names)
    out = run_cells(NB, [*NETWORKS, "00c7b6e1"], namespace)
    assert "fan-in: stem 27 (3 image channels x 3 x 3), block convs 72 or more\n" in out
    assert (
        "with BatchNorm    residual  x1.200 per layer = 66.2x over the block convs, scatter 1x, "
        "stem/next 1.2x: larger towards the input\n"
    ) in out
    assert (
        "without BatchNorm residual  x1.000 per layer = 1x over the block convs, scatter 1.2x, "
        "stem/next 25x: no clear direction (the change is within the scatter)\n"
    ) in out
    factor, scatter = namespace["gradient_trend"](torch.tensor([9.0, 8.0, 4.0, 2.0, 1.0]))
    assert factor == pytest.approx(2.0) and scatter == pytest.approx(1.0)  # stem 9 left out
