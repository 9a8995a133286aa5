"""Which precision `fit` trains in on a CPU: bf16 autocast where the processor computes bf16
natively, fp32 where it would only emulate it; and a real bf16 run on the CPU."""

from __future__ import annotations

import pytest
import torch

from medtl_helpers import config
from medtl_helpers.config import hardware, precision_choice


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
