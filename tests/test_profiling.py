"""Profiling: FLOPs against the published multiply-add count, parameters, latency and memory."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn
from torchvision.models import get_model

from medtl_helpers.models import profiling
from medtl_helpers.models.profiling import (
    PUBLISHED_GMACS_224,
    PUBLISHED_PARAMS_M,
    depth_table,
    forward_gflops,
    interleaved_latency_ms,
    memory_method,
    ratios_disagree,
    saved_activation_bytes,
    startup_seconds,
    steady_epochs,
    training_memory_mb,
    uneven_epochs,
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


def test_latency_is_positive_and_leaves_eval_mode():
    model = tiny_net().train()
    assert interleaved_latency_ms({"tiny": model}, 16, batch=2, repeats=3)["tiny"] > 0
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


class Logged(nn.Module):
    """Appends its name to `log` on every forward pass; sleeps `slow_s` on the passes listed."""

    def __init__(self, name: str, log: list, slow_calls: tuple[int, ...] = (), slow_s: float = 0):
        super().__init__()
        self.name, self.log, self.slow_calls, self.slow_s = name, log, slow_calls, slow_s
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append(self.name)
        if self.calls in self.slow_calls:
            time.sleep(self.slow_s)
        self.calls += 1
        return x


def test_interleaved_latency_times_round_robin_after_one_warm_up_each():
    log = []
    models = {"a": Logged("a", log), "b": Logged("b", log)}
    latency = interleaved_latency_ms(models, 4, batch=1, repeats=3)
    assert log == ["a", "b"] + ["a", "b"] * 3  # warm-ups, then one pass of each per round
    assert set(latency) == {"a", "b"}
    assert all(not model.training for model in models.values())


def test_interleaved_latency_keeps_the_fastest_pass_so_one_disturbed_pass_does_not_count():
    # the median of two passes is their mean: a 200 ms hiccup would add 100 ms to it
    log = []
    models = {"steady": Logged("steady", log, slow_calls=(1,), slow_s=0.2)}
    assert interleaved_latency_ms(models, 4, repeats=2)["steady"] < 100


def test_depth_table_times_all_architectures_together(monkeypatch):
    calls = []

    def fake(models, image_size, batch, repeats):
        calls.append((list(models), batch, repeats))
        return {name: float(batch) for name in models}

    monkeypatch.setattr(profiling, "interleaved_latency_ms", fake)
    rows = depth_table(["resnet18", "resnet34"], 32, batch=2, repeats=3)
    assert calls == [(["resnet18", "resnet34"], 1, 3), (["resnet18", "resnet34"], 2, 3)]
    assert [(r["latency_b1_ms"], r["latency_b2_ms"]) for r in rows] == [(1.0, 2.0), (1.0, 2.0)]


def test_ratios_disagree_flags_three_times_apart_either_way():
    # an earlier busy CPU run: resnet50's fit took 17.4x resnet18's for 2.25x its FLOPs
    assert ratios_disagree(17.4, 2.25)
    assert ratios_disagree(119.5, 2.0)
    assert ratios_disagree(0.19, 2.0)
    assert not ratios_disagree(1.97, 2.25)
    assert not ratios_disagree(5.9, 2.0)
    assert ratios_disagree(6.0, 2.0)
    assert ratios_disagree(2.0 / 3, 2.0)


def test_uneven_epochs_flags_a_run_whose_slowest_epoch_took_twice_its_fastest():
    # the same busy run: resnet50's two epochs, the same work each, took 46.3 s and 361.5 s
    assert uneven_epochs([46.3, 361.5])
    assert uneven_epochs([10.0, 10.0, 20.0])  # load in the last epoch
    assert not uneven_epochs([12.7, 10.8])
    assert not uneven_epochs([10.0, 19.9])
    assert not uneven_epochs([50.0])  # one epoch: nothing to compare it with
    assert not uneven_epochs([])


def test_uneven_epochs_leaves_the_first_epochs_start_up_out_when_there_are_three_or_more():
    # a GPU-like run: epoch 1 pays kernel selection, then two steady epochs
    assert not uneven_epochs([9.0, 3.0, 3.4])
    assert uneven_epochs([3.0, 3.0, 7.0])  # load in a later epoch is still caught
    assert uneven_epochs([9.0, 3.0])  # two epochs: nothing steady to judge by, both count
    assert steady_epochs([9.0, 3.0, 3.4]) == [3.0, 3.4]
    assert steady_epochs([9.0, 3.0]) == [9.0, 3.0]
    assert steady_epochs([9.0]) == [9.0]


def test_startup_seconds_is_the_first_epochs_excess_over_the_median_of_the_rest():
    assert startup_seconds([9.0, 3.0, 3.4]) == pytest.approx(5.8)
    assert startup_seconds([9.0, 3.0, 5.0, 4.0]) == pytest.approx(5.0)
    assert startup_seconds([2.0, 3.0, 3.0]) == pytest.approx(-1.0)  # a slower later epoch: load
    assert startup_seconds([9.0, 3.0]) is None  # nothing steady to measure it against
    assert startup_seconds([9.0]) is None


def test_depth_table_docstring_names_its_columns():
    assert "`params_M` counts torchvision's 1000-class" in depth_table.__doc__


def test_depth_table_measures_memory_with_one_model_on_the_device_and_times_all_together(
    monkeypatch,
):
    # On CUDA the memory column is the allocator's peak, which counts every model on the device:
    # each model leaves it (.cpu()) before the next is measured, and all return for the timing.
    events = []
    move_to_cpu = nn.Module.cpu

    def logged_cpu(module):
        events.append(f"cpu {module.fc.in_features}")
        return move_to_cpu(module)

    def fake_memory(model, image_size, batch):
        events.append(f"memory {model.fc.in_features}")
        return float(len(events))

    def fake_latency(models, image_size, batch, repeats):
        events.append(f"latency b{batch}")
        return {name: 1.0 for name in models}

    monkeypatch.setattr(nn.Module, "cpu", logged_cpu)
    monkeypatch.setattr(profiling, "training_memory_mb", fake_memory)
    monkeypatch.setattr(profiling, "interleaved_latency_ms", fake_latency)
    rows = depth_table(["resnet18", "resnet50"], 32, batch=2, repeats=1)
    assert events == [
        "memory 512",
        "cpu 512",
        "memory 2048",
        "cpu 2048",
        "latency b1",
        "latency b2",
    ]
    assert list(rows[0])[-3:] == ["latency_b1_ms", "latency_b2_ms", "train_mem_b2_fp32_MB"]
