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
        (952.71, "3x or more from the FLOPs ratio: suspect load; time again"),
        (51.8, "3x or more from the FLOPs ratio: suspect load; time again"),
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
    """Stands in for fit and its helpers, recording the seeds the training cell passes.

    Each fit call's epochs take the next list of `epoch_s` seconds, or 1, 2, 3... s without it.
    """

    def __init__(self, epoch_s: list[list[float]] | None = None):
        self.seeds, self.fit_kwargs, self.epoch_s = [], [], list(epoch_s or [])

    def seed_everything(self, seed):
        self.seeds.append(seed)

    def fit(self, model, train, val, **kwargs):
        self.fit_kwargs.append(kwargs)
        seconds = self.epoch_s.pop(0) if self.epoch_s else range(1, kwargs["epochs"] + 1)
        rows = [{"val_auroc": 0.5, "seconds": float(s)} for s in seconds]
        return SimpleNamespace(rows=rows, column=lambda key: [row[key] for row in rows])


def run_training_cell(epoch_s: list[list[float]] | None = None, **extra):
    """The training cell with fit recorded and nothing built or scored; returns both."""
    recorder = Recorder(epoch_s)
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
    # 5 epochs, more than fit's default patience of 3: with it an arm could stop after epoch 4
    monkeypatch.setenv("MEDTL_PROFILE", "gpu")
    recorder, namespace = run_training_cell(COMPARE_EPOCHS=5)
    assert [kw["patience"] for kw in recorder.fit_kwargs] == [5, 5, 5]
    assert [kw["epochs"] for kw in recorder.fit_kwargs] == [5, 5, 5]
    assert [res["epochs"] for res in namespace["results"].values()] == [5, 5, 5]
    assert namespace["results"]["resnet50"]["epoch_s"] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_rate_leaves_the_first_epoch_out_when_there_are_three_or_more(monkeypatch):
    monkeypatch.setenv("MEDTL_PROFILE", "gpu")
    epoch_s = [[9.0, 3.0, 3.4], [4.0, 4.0, 4.0], [8.0, 6.0, 7.0]]
    _, namespace = run_training_cell(epoch_s)  # 20 training images
    rates = [res["fit_s_per_1k_images"] for res in namespace["results"].values()]
    assert rates == pytest.approx([1000 * 3.2 / 20, 1000 * 4.0 / 20, 1000 * 6.5 / 20])
    assert namespace["results"]["resnet18"]["fit_s"] == pytest.approx(15.4)


def test_rate_with_two_epochs_includes_both(monkeypatch):
    monkeypatch.setenv("MEDTL_PROFILE", "cpu")
    _, namespace = run_training_cell([[9.0, 3.0], [4.0, 6.0]])
    rates = [res["fit_s_per_1k_images"] for res in namespace["results"].values()]
    assert rates == pytest.approx([1000 * 6.0 / 20, 1000 * 5.0 / 20])


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
    """What the ratio cells read, `results` made by the training cell from these epoch times."""
    _, trained = run_training_cell(
        list(epoch_s.values()), COMPARE_ARCHS=tuple(epoch_s), COMPARE_EPOCHS=3
    )
    table = [table_row(arch, 0.30 * 2.25**i, 30.0 * 2**i) for i, arch in enumerate(epoch_s)]
    return {
        "table": table,
        "results": trained["results"],
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
    assert "takes 17.4x resnet18's seconds per epoch in fit" in out
    assert (
        "timed one after the other: 7.71x the FLOPs ratio, 3x or more from it: suspect load" in out
    )
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
    assert "timed one after the other: 1.07x the FLOPs ratio, not flagged" in out
    assert "resnet50   one epoch: nothing to compare its time with" in out
    assert "flagged," not in out
    assert "first epoch's start-up included" in out


def test_a_time_ratio_below_the_flops_ratio_prints_below_it():
    # resnet50 at 13 s against resnet18's 12 s: 1.08x the time for 2.25x the FLOPs
    names = ratios_names({"resnet18": [12.0], "resnet50": [13.0]})
    out = run_cells(NB, [RATIOS], prepared(**names))
    assert "takes 1.1x resnet18's seconds per epoch in fit" in out
    assert "timed one after the other: 0.48x the FLOPs ratio, not flagged" in out
    assert "2.1x the FLOPs ratio" not in out


def test_gpu_like_start_up_is_reported_not_flagged(monkeypatch):
    # epoch 1 pays start-up (allocation, kernel selection); epochs 2-3 are steady
    names = ratios_names({"resnet18": [9.0, 3.0, 3.4], "resnet50": [14.0, 7.0, 7.4]})
    names["data"] = SimpleNamespace(train=image_set(100))
    out = run_cells(NB, [RATIOS, MINUTES], prepared(**names))
    assert "takes 2.2x resnet18's seconds per epoch in fit" in out  # 7.2 / 3.2
    assert "resnet18   epochs 2-3 3.0 s to 3.4 s (1.1x, the same work each): not flagged" in out
    assert "epoch 1 took 5.8 s longer than the median of the rest: start-up" in out
    assert "epoch 1 took 6.8 s longer than the median of the rest: start-up" in out
    assert "flagged," not in out and "rate was flagged" not in out
    assert "160.0 s in fit per 1,000 training images per epoch" in out  # 3.2 s for 20 images
    assert "epoch 1's start-up left out" in out
    assert "plus the start-up of resnet18, resnet50 once per run (printed above):" in out


def test_the_minutes_name_only_the_depths_that_had_a_start_up():
    # resnet50's epoch 1 was not slower: the old header said "each depth's start-up"
    names = ratios_names({"resnet18": [9.0, 3.0, 3.4], "resnet50": [7.0, 7.2, 7.4]})
    names["data"] = SimpleNamespace(train=image_set(100))
    out = run_cells(NB, [RATIOS, MINUTES], prepared(**names))
    assert "plus the start-up of resnet18 once per run (printed above):" in out
    assert "epoch 1 was not slower than the median of the rest: no start-up to see here" in out


def test_a_slow_later_epoch_is_not_called_start_up():
    # a later epoch slowed by load (under the 2x flag), epoch 1 not slower than the median of the
    # rest: the old line printed "epoch 1 took -1.1 s more ...: start-up, or load during it"
    names = ratios_names({"resnet18": [6.0, 7.0, 7.2], "resnet50": [14.0, 14.2, 14.1]})
    out = run_cells(NB, [RATIOS], prepared(**names))
    assert (
        out.count("epoch 1 was not slower than the median of the rest: no start-up to see here")
        == 2
    )
    assert "start-up, or load during it" not in out
