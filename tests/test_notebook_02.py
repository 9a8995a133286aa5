"""Notebook 02's cells compute what they claim: block costs, seeds, timing checks, verdicts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from notebook_cells import run_cells
from torch import nn

from medtl_helpers.data.records import ImageSet

NB = "02_resnet_depth_selection"
IMPORTS, PARAMETERS = "a3b5e788", "7ef6cfaf"
BLOCKS, PARTS, TIMING_CHECK = "af9b0952", "8b42a5d3", "36840f81"
RECIPE, TRAINING, VERDICT, RATIOS = "660b01b4", "53fc319c", "47378bc2", "3b2271d8"
MINUTES = "c6cc90a2"


def prepared(**names) -> dict:
    """The notebook's imports and parameters, then `names` on top."""
    namespace: dict = {}
    run_cells(NB, [IMPORTS, PARAMETERS], namespace)
    return namespace | names


def image_set(n: int, source: str = "synthetic") -> ImageSet:
    labels = torch.arange(n) % 2
    patients = [f"p{i // 2}" for i in range(n)]
    return ImageSet(torch.zeros(n, 1, 8, 8, dtype=torch.uint8), labels, patients, source)


def test_blocks_compared_at_the_same_3x3_width():
    out = run_cells(NB, [BLOCKS], prepared())
    assert "basic (two 3x3 at 64)                  73,984 parameters" in out
    assert "bottleneck (1x1, 3x3 at 64, 1x1)       70,400 parameters" in out
    assert "ratio: 1.05x" in out
    assert "basic 9w² + 9w² = 73,728, bottleneck 4w² + 9w² + 4w² = 69,632" in out


def test_resnet50s_extra_parameters_sit_in_projections_and_classifier():
    out = run_cells(NB, [PARTS], prepared())
    assert (
        "resnet34: stem 0.01 M, blocks without shortcuts 21.10 M, projection shortcuts 0.17 M, "
        "fc (1000 classes) 0.51 M"
    ) in out
    assert (
        "resnet50: stem 0.01 M, blocks without shortcuts 20.72 M, projection shortcuts 2.78 M, "
        "fc (1000 classes) 2.05 M"
    ) in out


def table_row(arch: str, gflops: float, latency_b1: float, latency_b8: float = 1.0) -> dict:
    return {
        "arch": arch,
        "gflops": gflops,
        "latency_b1_ms": latency_b1,
        "latency_b8_ms": latency_b8,
        "train_mem_b8_fp32_MB": 100.0,
    }


@pytest.mark.parametrize(
    ("latency", "expected"),
    [
        (952.71, "3x or more from the FLOPs ratio: load, not depth; time again"),
        (51.8, "3x or more from the FLOPs ratio: load, not depth; time again"),
        (15.9, ": not flagged"),
    ],
)
def test_timing_check_flags_a_latency_ratio_far_from_the_flops_ratio(latency, expected):
    # an earlier busy-CPU run: resnet34 at 952.71 ms against resnet18's 7.97, for 2.0x the FLOPs
    table = [table_row("resnet18", 3.63, 7.97, 20.0), table_row("resnet34", 7.33, latency, 40.0)]
    names = {"table": table, "base": table[0], "BATCH": 8}
    names |= {"LATENCY_B1": "latency_b1_ms", "LATENCY_BN": "latency_b8_ms"}
    out = run_cells(NB, [TIMING_CHECK], prepared(**names))
    assert (
        f"resnet34   x resnet18: layers  1.9x, FLOPs  2.0x, latency b1 {latency / 7.97:5.1f}x, "
        "b8   2.0x" in out
    )
    assert expected in out


def test_recipe_describes_the_epochs_fit_trains_under_the_cap(monkeypatch):
    monkeypatch.setenv("MEDTL_PROFILE", "cpu")  # 2 comparison epochs
    monkeypatch.setenv("MEDTL_MAX_EPOCHS", "1")  # fit trains 1
    namespace = prepared(compare_train=image_set(100))
    steps = 100 // namespace["PROFILE"].batch_size
    out = run_cells(NB, [RECIPE], namespace)
    assert namespace["stage"].epochs == 1
    assert f" of {steps} steps" in out or f"in a stage of {steps} steps" in out


class Recorder:
    """Stands in for fit and its helpers, recording the seeds the training cell passes."""

    def __init__(self):
        self.seeds, self.fit_kwargs = [], []

    def seed_everything(self, seed):
        self.seeds.append(seed)

    def fit(self, model, train, val, **kwargs):
        self.fit_kwargs.append(kwargs)
        rows = [{"val_auroc": 0.5, "seconds": 1.0 + epoch} for epoch in range(kwargs["epochs"])]
        return SimpleNamespace(rows=rows, column=lambda key: [row[key] for row in rows])


def run_training_cell(**extra):
    """The training cell with fit recorded and nothing built or scored; returns both."""
    recorder = Recorder()
    names = {
        "config": recorder,
        "fit": recorder.fit,
        "build_model": lambda arch: nn.Linear(1, 1),
        "read_checkpoint": lambda path: None,
        "load_weights": lambda model, state, path: None,
        "predict_proba": lambda model, images, image_size: torch.zeros(len(images)),
        "compare_train": image_set(20),
        "data": SimpleNamespace(val=image_set(10)),
        **extra,
    }
    namespace = prepared(**names)
    run_cells(NB, [TRAINING], namespace)
    return recorder, namespace


def test_training_draws_with_train_seed_and_the_data_keep_seed():
    recorder, namespace = run_training_cell(TRAIN_SEED=7)
    assert namespace["SEED"] == 0
    assert recorder.seeds == [7, 7]
    assert [kw["seed"] for kw in recorder.fit_kwargs] == [7, 7]
    assert [kw["lr"] for kw in recorder.fit_kwargs] == [namespace["LR"]] * 2


def test_training_cannot_stop_one_arm_early_and_records_its_epochs(monkeypatch):
    monkeypatch.setenv("MEDTL_PROFILE", "gpu")  # 3 comparison epochs, fewer than fit's patience
    recorder, namespace = run_training_cell()
    assert [kw["patience"] for kw in recorder.fit_kwargs] == [3, 3, 3]
    assert [res["epochs"] for res in namespace["results"].values()] == [3, 3, 3]
    assert namespace["results"]["resnet50"]["epoch_s"] == [1.0, 2.0, 3.0]


def test_verdict_is_printed_with_its_scope():
    val = image_set(80)
    labels = val.labels.float()
    p_last = {"resnet18": torch.full((80,), 0.5), "resnet50": 0.2 + 0.6 * labels}
    names = {
        "data": SimpleNamespace(val=val),
        "p_last": p_last,
        "stage": SimpleNamespace(epochs=8, lr=1e-3),
        "results": {"resnet18": {"epochs": 8}, "resnet50": {"epochs": 5}},
    }
    out = run_cells(NB, [VERDICT], prepared(**names))
    assert (
        "  verdict: resnet50 is better, for one training run of each (resnet18 8 epoch(s), "
        "resnet50 5 epoch(s)) at lr 0.001, scored on these validation patients"
    ) in out


def ratios_names(epoch_s: dict[str, list[float]]) -> dict:
    table = [table_row("resnet18", 0.30, 30.0), table_row("resnet50", 0.675, 60.0)]
    results = {
        arch: {"fit_s": sum(seconds), "fit_s_per_1k_images": sum(seconds), "epoch_s": seconds}
        for arch, seconds in epoch_s.items()
    }
    return {
        "table": table,
        "results": results,
        "paired": {"resnet50": (0.01, -0.02, 0.04)},
        "LEVEL": 0.95,
        "val": image_set(10),
        "LATENCY_B1": "latency_b1_ms",
        "MEMORY": "train_mem_b8_fp32_MB",
    }


def test_busy_run_is_flagged_by_its_epochs_and_by_flops():
    # the earlier busy cpu run: 17.4x the time for 2.25x the FLOPs; resnet50's epochs 46.3, 361.5 s
    names = ratios_names({"resnet18": [12.7, 10.8], "resnet50": [46.3, 361.5]})
    names["data"] = SimpleNamespace(train=image_set(100))
    out = run_cells(NB, [RATIOS, MINUTES], prepared(**names))
    assert "takes 17.4x resnet18's seconds in fit" in out
    assert "timed one after the other: 7.7x the FLOPs ratio, 3x or more from it: load, not" in out
    assert "resnet18   epochs 10.8 s to 12.7 s (1.2x, the same work each): not flagged" in out
    assert (
        "resnet50   epochs 46.3 s to 361.5 s (7.8x, the same work each): flagged, "
        "not the network's cost" in out
    )
    assert "resnet50's rate was flagged above: so are its minutes" in out
    assert "resnet18's rate was flagged" not in out


def test_quiet_run_is_not_flagged_and_one_epoch_has_nothing_to_compare():
    names = ratios_names({"resnet18": [12.0], "resnet50": [29.0]})
    out = run_cells(NB, [RATIOS], prepared(**names))
    assert "timed one after the other: 1.1x the FLOPs ratio, not flagged" in out
    assert "resnet50   one epoch: nothing to compare its time with" in out
    assert "flagged," not in out
