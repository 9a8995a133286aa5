"""Profiling: FLOPs against the published multiply-add count, parameters, latency and memory."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import get_model

from medtl_helpers.models.profiling import (
    PUBLISHED_GMACS_224,
    PUBLISHED_PARAMS_M,
    depth_table,
    forward_gflops,
    latency_ms,
    memory_method,
    saved_activation_bytes,
    training_memory_mb,
)


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten())


def test_resnet18_gflops_at_224_match_published_macs_times_two():
    with torch.device("meta"):
        model = get_model("resnet18", weights=None)
    gflops = forward_gflops(model, 224)
    assert gflops == pytest.approx(2 * PUBLISHED_GMACS_224["resnet18"], rel=0.03)
    assert 3.5 < gflops < 3.75


def test_gflops_of_one_conv_by_hand_and_per_image():
    # 3x3 conv, 3 -> 4 channels on 8x8: 8*8 positions * 4 outputs * 27 MACs * 2 FLOPs per MAC
    expected = 8 * 8 * 4 * 27 * 2 / 1e9
    assert forward_gflops(tiny_net(), 8) == pytest.approx(expected)
    assert forward_gflops(tiny_net(), 8, batch=4) == pytest.approx(expected)


def test_gflops_grow_with_image_size():
    with torch.device("meta"):
        model = get_model("resnet18", weights=None)
    assert forward_gflops(model, 128) > 3 * forward_gflops(model, 64)


def test_latency_is_a_positive_median_and_leaves_eval_mode():
    model = tiny_net().train()
    assert latency_ms(model, 16, batch=2, repeats=3) > 0
    assert not model.training


def test_saved_activations_count_each_storage_once_and_skip_weights():
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    # conv saves its input (3x8x8) and weight; the in-place ReLU saves its output (4x8x8), the
    # same storage as the conv output. Weights are excluded.
    model = nn.Sequential(conv, nn.ReLU(inplace=True))
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    assert saved_activation_bytes(model, x) == (3 * 64 + 4 * 64) * 4


def test_training_memory_grows_with_batch_and_counts_weights_twice():
    model = get_model("resnet18", weights=None, num_classes=2)
    weights_mb = sum(p.numel() for p in model.parameters()) * 4 / 2**20
    small = training_memory_mb(model, 32, batch=2)
    large = training_memory_mb(model, 32, batch=8)
    assert small > 2 * weights_mb
    assert large > small
    assert all(p.grad is None for p in model.parameters())


def test_memory_method_names_what_is_measured():
    assert "saved-tensors hook" in memory_method("cpu")
    assert "max_memory_allocated" in memory_method("cuda")
    assert "fp32" in memory_method("cpu") and "fp32" in memory_method("cuda")


def test_depth_table_parameters_match_published_counts():
    rows = depth_table(["resnet18", "resnet50"], 32, batch=2, repeats=1)
    assert [r["arch"] for r in rows] == ["resnet18", "resnet50"]
    assert rows[0]["params_M"] == pytest.approx(11.689512)
    assert rows[1]["params_M"] == pytest.approx(25.557032)
    for row in rows:
        assert abs(row["diff_M"]) < 0.06
        assert row["published_M"] == PUBLISHED_PARAMS_M[row["arch"]]
    # the 2-class head replaces a 1000-class one: (1000 - 2) * (512 + 1) fewer for resnet18
    assert rows[0]["params_M"] * 1e6 - rows[0]["params_course"] == 998 * 513
    assert rows[1]["gflops"] > rows[0]["gflops"]
    assert {"latency_b1_ms", "latency_b2_ms", "train_mem_b2_fp32_MB"} <= set(rows[0])
