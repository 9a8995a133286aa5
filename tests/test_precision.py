"""Which precision `fit` trains in on a CPU: bf16 autocast where the processor computes bf16
natively, fp32 where it would only emulate it; and a real bf16 run on the CPU."""

from __future__ import annotations

import pytest
import torch

from medtl_helpers import config
from medtl_helpers.config import hardware, precision_choice
from medtl_helpers.data.records import ImageSet
from medtl_helpers.training import precision_speeds, speed


@pytest.mark.parametrize(
    ("flags", "dtype", "reason"),
    [
        (("avx2", "fma"), None, "fp32: this CPU emulates bf16 (no AVX-512 BF16 or AMX)"),
        (("avx2", "avx512f", "avx512bw"), None, "fp32: this CPU emulates bf16 (AVX-512 without"),
        (("avx2", "avx512f", "avx512_bf16"), torch.bfloat16, "bf16 autocast: native AVX-512 BF16"),
        (("avx512f", "avx512_bf16", "amx_bf16", "amx_tile"), torch.bfloat16, "native AMX BF16"),
    ],
)
def test_auto_chooses_bf16_only_where_the_cpu_has_it(cpu_with, monkeypatch, flags, dtype, reason):
    cpu_with(*flags)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    chosen, why = precision_choice("cpu")
    assert chosen == dtype and reason in why


def test_onednn_without_bf16_kernels_keeps_fp32(cpu_with, monkeypatch):
    cpu_with("avx512f", "avx512_bf16")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert precision_choice("cpu")[0] is None


def test_an_explicit_choice_wins_and_says_so(cpu_with):
    cpu_with("avx2")
    assert config.precision_name("cpu") == "fp32" and config.precision_name("cpu", "bf16") == "bf16"
    assert precision_choice("cpu", "bf16") == (
        torch.bfloat16,
        "bf16 autocast: asked for (amp='bf16')",
    )
    assert precision_choice("cpu", "off")[0] is None
    with pytest.raises(ValueError, match="amp='fast' is not understood"):
        precision_choice("cpu", "fast")


def test_flags_come_from_cpuinfo_or_from_torch(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    real = hardware.Path
    monkeypatch.setattr(hardware, "Path", lambda p: info if p == "/proc/cpuinfo" else real(p))
    assert hardware.cpu_flags() == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    monkeypatch.setattr(hardware, "Path", lambda p: tmp_path / "missing")  # macOS, Windows
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert "avx512_bf16" in hardware.cpu_flags() and "amx_bf16" not in hardware.cpu_flags()


def test_the_environment_report_says_which_precision_and_why(cpu_with, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu_with("avx2")
    lines = dict(
        (line[:11].strip(), line[11:]) for line in config.environment_report().splitlines()
    )
    assert lines["precision"].startswith("fp32: this CPU emulates bf16")


def test_a_short_bf16_fit_on_the_cpu_learns_and_saves_fp32_weights(tmp_path):
    from medtl_helpers.data.split import split_by_patient
    from medtl_helpers.data.synthetic import make_synthetic
    from medtl_helpers.models import build_model
    from medtl_helpers.training import fit, load_checkpoint

    train, val = split_by_patient(make_synthetic(160, size=32, seed=3), 0.25, seed=0)
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained="none", verbose=False)
    options = dict(batch_size=16, image_size=32, progress=False, augment=False, out_dir=tmp_path)
    history = fit(model, train, val, epochs=3, amp="bf16", lr=3e-3, patience=3, **options)
    losses = history.column("train_loss")
    assert losses[-1] < losses[0]
    loaded, meta = load_checkpoint(tmp_path / "best.pt")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert meta["threshold"] == history.threshold


def _tiny_images(n: int = 8) -> ImageSet:
    images = torch.randint(0, 256, (n, 1, 24, 24), dtype=torch.uint8)
    return ImageSet(
        images, torch.tensor([i % 2 for i in range(n)]), [f"p{i}" for i in range(n)], "t"
    )


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 2),
    )  # fmt: skip


def test_precision_speeds_interleaves_rounds_and_keeps_the_best(monkeypatch):
    # A fake clock: fp32 steps take 2 s except in the second round (1 s); bf16 always 0.5 s.
    calls = []

    def fake_steps(trainer, optimizer, scheduler, x, y, steps):
        calls.append((trainer.precision.split(":")[0], steps))
        if steps == 1:
            return 0.0  # the warm-up
        fp32_rounds = sum(1 for p, s in calls if p == "fp32" and s > 1)
        return (1.0 if fp32_rounds == 2 else 2.0) if calls[-1][0] == "fp32" else 0.5

    monkeypatch.setattr(speed, "_timed_steps", fake_steps)
    model = _tiny_model()
    before = [p.clone() for p in model.parameters()]
    rows = precision_speeds(
        model, _tiny_images(), device=torch.device("cpu"), batch_size=4, image_size=16,
        amps=("off", "bf16"), steps=2, rounds=3,
    )  # fmt: skip
    assert [c[0] for c in calls] == ["fp32", "bf16 autocast"] + ["fp32", "bf16 autocast"] * 3
    assert [r["amp"] for r in rows] == ["off", "bf16"]
    assert rows[0]["precision"] == "fp32: mixed precision turned off (amp='off')"
    assert rows[1]["precision"] == "bf16 autocast: asked for (amp='bf16')"
    assert rows[0]["images/s"] == pytest.approx(2 * 4 / 1.0)  # best round of fp32
    assert rows[1]["images/s"] == pytest.approx(2 * 4 / 0.5)
    assert [r["speed vs first"] for r in rows] == pytest.approx([1.0, 2.0])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # copies trained


def test_precision_speeds_runs_real_steps_in_bf16_on_the_cpu():
    rows = precision_speeds(
        _tiny_model(), _tiny_images(), device=torch.device("cpu"), batch_size=4, image_size=16,
        amps=("off", "bf16"), steps=1, rounds=1,
    )  # fmt: skip
    assert [r["precision"].split(":")[0] for r in rows] == ["fp32", "bf16 autocast"]
    assert all(r["images/s"] > 0 for r in rows) and rows[0]["speed vs first"] == 1.0
