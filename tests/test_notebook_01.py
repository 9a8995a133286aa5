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
