"""AdaBN touches only BatchNorm statistics; batch statistics make predictions batch-dependent."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from medtl_helpers.adaptation import (
    adapt_batchnorm,
    batchnorm_drift,
    batchnorm_input_drift,
    batchnorm_layers,
    predict_with_batch_statistics,
    reset_batchnorm_statistics,
)
from medtl_helpers.adaptation.adabn import even_batches, one_class_share
from medtl_helpers.data import to_model_input
from medtl_helpers.models import build_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model("resnet18", pretrained="none", verbose=False).eval()
    # A source model whose statistics are not the defaults (mean 0, variance 1).
    with torch.no_grad():
        for layer in batchnorm_layers(net).values():
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
    return net


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (12, 1, 32, 32), dtype=torch.uint8)


def test_reset_forgets_statistics_and_keeps_weights(model):
    net = copy.deepcopy(model)
    with torch.no_grad():
        net.bn1.weight.fill_(2.0)
    assert reset_batchnorm_statistics(net) == 20  # resnet18: 1 + 8 blocks x 2 + 3 downsample
    for layer in batchnorm_layers(net).values():
        assert torch.equal(layer.running_mean, torch.zeros_like(layer.running_mean))
        assert torch.equal(layer.running_var, torch.ones_like(layer.running_var))
        assert int(layer.num_batches_tracked) == 0 and layer.momentum is None
    assert torch.equal(net.bn1.weight, torch.full_like(net.bn1.weight, 2.0))


def test_adabn_changes_only_the_running_statistics(model, images):
    before = copy.deepcopy(model.state_dict())
    adapted = adapt_batchnorm(model, images, batch_size=5)
    for name, param in model.named_parameters():
        assert torch.equal(param, dict(adapted.named_parameters())[name]), name
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert len(stats) == 40
    assert all(not torch.equal(before[k], adapted.state_dict()[k]) for k in stats)
    for key, value in model.state_dict().items():  # the source model is left as it was
        assert torch.equal(value, before[key]), key
    assert not adapted.training
    assert all(layer.momentum == 0.1 for layer in batchnorm_layers(adapted).values())


def test_adabn_statistics_are_the_target_statistics(model, images):
    adapted = adapt_batchnorm(model, images, batch_size=len(images))
    with torch.no_grad():
        first = model.conv1(to_model_input(images))  # bn1 sees conv1's output
    mean = first.mean(dim=(0, 2, 3))
    var = first.var(dim=(0, 2, 3), unbiased=True)
    assert torch.allclose(adapted.bn1.running_mean, mean, atol=1e-5)
    assert torch.allclose(adapted.bn1.running_var, var, rtol=1e-4)


def test_adabn_averages_batches_of_near_equal_size():
    assert [len(b) for b in even_batches(10, 4)] == [5, 5]
    assert [len(b) for b in even_batches(11, 2)] == [3, 2, 2, 2, 2]  # never a batch of one
    assert [len(b) for b in even_batches(3, 64)] == [3]
    assert np.concatenate(even_batches(11, 2)).tolist() == list(range(11))
    with pytest.raises(ValueError, match="got no images"):
        adapt_batchnorm(torch.nn.BatchNorm2d(3), torch.zeros(0, 1, 8, 8, dtype=torch.uint8))


def test_batch_statistics_depend_on_the_batch(model, images):
    before = copy.deepcopy(model.state_dict())
    whole = predict_with_batch_statistics(model, images, batch_size=len(images))
    with torch.no_grad():
        expected = copy.deepcopy(model).train()(to_model_input(images)).softmax(dim=1)[:, 1]
    np.testing.assert_allclose(whole, expected.numpy(), atol=1e-6)
    pairs = predict_with_batch_statistics(model, images, batch_size=2)
    assert whole.shape == pairs.shape == (12,)
    odd = predict_with_batch_statistics(model, images[:5], batch_size=2)  # batches of 3 and 2
    with torch.no_grad():
        first = copy.deepcopy(model).train()(to_model_input(images[:3])).softmax(dim=1)[:, 1]
    np.testing.assert_allclose(odd[:3], first.numpy(), atol=1e-6)
    assert np.abs(whole - pairs).max() > 1e-3  # the same image, another batch, another answer
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_drift_is_zero_for_the_same_statistics_and_measured_in_source_sds(model):
    same = batchnorm_drift(model, model)
    assert len(same) == 20 and same[0]["layer"] == "bn1" and same[0]["depth"] == 0
    assert all(row["mean_shift"] == 0 and row["sd_ratio"] == pytest.approx(1) for row in same)
    moved = copy.deepcopy(model)
    with torch.no_grad():
        bn = moved.layer1[0].bn1
        bn.running_mean += 2 * (bn.running_var + bn.eps).sqrt()
        bn.running_var *= 4
    rows = {row["layer"]: row for row in batchnorm_drift(model, moved)}
    assert rows["layer1.0.bn1"]["mean_shift"] == pytest.approx(2.0, rel=1e-5)
    assert rows["layer1.0.bn1"]["sd_ratio"] == pytest.approx(2.0, rel=1e-3)
    assert rows["layer1.0.bn2"]["mean_shift"] == 0


def class_sorted_images(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Dark NORMAL images first, bright PNEUMONIA images after: a set stored sorted by class."""
    g = torch.Generator().manual_seed(3)
    labels = (torch.arange(n) >= n // 2).long()
    level = 60.0 + 120.0 * labels.float()
    noise = 20 * torch.randn(n, 1, 32, 32, generator=g)
    return (level[:, None, None, None] + noise).clamp(0, 255).to(torch.uint8), labels


def test_adabn_on_class_sorted_images_gives_the_statistics_of_the_whole_set(model):
    images, _ = class_sorted_images()
    whole = adapt_batchnorm(model, images, batch_size=len(images))  # one pass: the set's own
    batched = adapt_batchnorm(model, images, batch_size=16)  # 3 batches
    assert torch.allclose(batched.bn1.running_mean, whole.bn1.running_mean, atol=1e-4)
    # Each batch's variance misses the spread of its own mean: about 1/16 of the image-level part.
    ratio = batched.bn1.running_var / whole.bn1.running_var
    assert 0.85 < float(ratio.mean()) <= 1.05 and float(ratio.min()) > 0.75
    # In stored order the 6 batches hold one class each: the between-class spread goes missing.
    with torch.no_grad():
        first = model.conv1(to_model_input(images))
    halves = [first[:24], first[24:]]
    within = sum(h.var(dim=(0, 2, 3)) for h in halves) / 2
    assert not torch.allclose(within, whole.bn1.running_var, rtol=0.1)


def test_adabn_shuffles_with_its_seed(model):
    images, _ = class_sorted_images()
    a = adapt_batchnorm(model, images, batch_size=8, seed=1)
    b = adapt_batchnorm(model, images, batch_size=8, seed=1)
    c = adapt_batchnorm(model, images, batch_size=8, seed=2)
    assert torch.equal(a.bn1.running_var, b.bn1.running_var)
    assert not torch.equal(a.bn1.running_var, c.bn1.running_var)
    assert torch.allclose(a.bn1.running_mean, c.bn1.running_mean, atol=1e-4)  # mean: exact


def stem_and_block() -> torch.nn.Module:
    """conv -> BN -> ReLU -> conv -> BN: the second BN sees the first one's normalised output."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, bias=False),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, bias=False),
        torch.nn.BatchNorm2d(4),
    )
    with torch.no_grad():
        net[0].weight.abs_()  # a brighter image raises every channel of the first layer's input
    source_images = class_sorted_images()[0]
    return adapt_batchnorm(net, source_images, batch_size=len(source_images))  # the source's


def test_input_drift_is_zero_for_the_same_images_in_another_order():
    net = stem_and_block()
    images, _ = class_sorted_images()
    rows = batchnorm_input_drift(net, images, images.flip(0))
    assert [row["layer"] for row in rows] == ["1", "4"] and [r["depth"] for r in rows] == [0, 1]
    for row in rows:
        assert row["mean_shift"] == pytest.approx(0, abs=1e-5)
        assert row["sd_ratio"] == pytest.approx(1, abs=1e-5)


def test_input_drift_sees_a_brighter_input_at_every_layer_without_renormalising():
    net = stem_and_block()
    images, _ = class_sorted_images()
    brighter = (images.int() + 40).clamp(max=255).to(torch.uint8)
    rows = batchnorm_input_drift(net, images, brighter)
    assert rows[0]["mean_shift"] > 0.5  # the shift at the input moves the first layer's input
    # What the second layer receives in the unadapted model: the first BN keeps the source's
    # statistics, so the brightness reaches it through the first layer.
    with torch.no_grad():
        inputs = {k: net[:4](to_model_input(x)) for k, x in (("s", images), ("t", brighter))}
    sd = (inputs["s"].var(dim=(0, 2, 3), unbiased=False) + net[4].eps).sqrt()
    expected = (inputs["t"].mean(dim=(0, 2, 3)) - inputs["s"].mean(dim=(0, 2, 3))).abs() / sd
    assert rows[1]["mean_shift"] == pytest.approx(float(expected.mean()), rel=1e-4)
    assert rows[1]["mean_shift"] > 0.2
    # Re-estimated together, the first BN absorbs the brightness and hides it from the second.
    adapted = batchnorm_drift(net, adapt_batchnorm(net, brighter, batch_size=len(brighter)))
    assert adapted[1]["mean_shift"] < 0.5 * rows[1]["mean_shift"]
    assert all(not m.training for m in net.modules())  # modes restored


def test_one_class_share_counts_the_batches_of_a_single_class():
    sorted_labels = [0] * 6 + [1] * 4  # the smaller class has 4 images
    assert one_class_share(sorted_labels, 2) == 1.0  # 5 batches of 2, none across the boundary
    assert one_class_share(sorted_labels, 3) == 2 / 3  # batches 0-3, 4-6, 7-9: the middle mixes
    assert one_class_share(sorted_labels, 8) == 0.0  # one batch of all 10 holds both classes
    assert one_class_share([0, 1] * 5, 2) == 0.0  # alternating: every batch mixed
