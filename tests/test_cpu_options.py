"""benchmarks/cpu_options.py at a tiny size: its table, the course rows and equal outputs."""

from __future__ import annotations

import pytest
import torch
from conftest import load_benchmark


@pytest.fixture(scope="module")
def options():
    return load_benchmark("cpu_options")


def test_table_lists_every_option_against_the_course_row(options, capsys):
    rows = options.main("--size 32 --batch 2 --warmup 1 --steps 1 --rounds 2".split())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# device: cpu (") and lines[1].startswith("# torch ")
    assert lines[2] == options.HEADER
    printed = [line.split() for line in lines[3:]]
    assert [r[:2] for r in printed] == [
        ["train", "channels_last(course)"],
        ["train", "contiguous"],
        ["train", "channels_last_batch4"],
        ["train", "no_onednn"],
        ["features", "channels_last(course)"],
        ["features", "contiguous"],
        ["features", "bn_folded_channels_last"],
        ["features", "torch_jit_freeze"],
    ]
    assert all(r[2:5] == ["resnet18", "32", "4" if "batch4" in r[1] else "2"] for r in printed)
    assert all(len(r) == 8 and float(r[5]) > 0 for r in printed)
    assert [float(r[7]) for r in printed if "(course)" in r[1]] == [1.0, 1.0]
    assert rows[1]["ratio"] == pytest.approx(rows[1]["images_per_s"] / rows[0]["images_per_s"])


def test_inference_rewrites_give_the_same_features(options):
    model = options.fresh("resnet18", channels_last=False)
    backbone, _ = options.split_backbone_head(model)
    backbone.eval()
    x, _ = options.inputs(2, 48, channels_last=False)
    with torch.inference_mode():
        want = backbone(x)
        for rewrite in (options.fold_batchnorm, options.jit_frozen):
            got = rewrite(backbone)(x)
            assert got.shape == (2, 512)
            assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), rewrite.__name__


def test_onednn_switch_is_put_back(options):
    before = torch.backends.mkldnn.enabled
    with pytest.raises(RuntimeError):
        with options.onednn(not before):
            assert torch.backends.mkldnn.enabled is (not before)
            raise RuntimeError("stop")
    assert torch.backends.mkldnn.enabled is before


def test_unknown_mode_is_refused(options):
    with pytest.raises(SystemExit, match="unknown \\['speed'\\]"):
        options.main(["--modes", "speed"])
