"""benchmarks/throughput.py on a tiny folder: its table format and both pipelines (not timings)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import load_benchmark

HEADER = "pipeline arch freeze size device precision images_per_s ratio"


@pytest.fixture(scope="module")
def throughput():
    return load_benchmark("throughput")


def table(out: str) -> list[list[str]]:
    lines = out.splitlines()
    start = lines.index(HEADER)
    assert all(line.startswith("#") for line in lines[:start])  # the meta lines come first
    return [line.split() for line in lines[start + 1 :] if line.strip()]


def test_table_has_the_header_and_one_row_per_pipeline(throughput, kermany_root, capsys, cpu_with):
    cpu_with("avx2", "avx512f", "avx512_bf16")  # the course trains in bf16 on such a CPU
    argv = "--device cpu --batches 1 --warmup 1 --batch-size 2 --archs resnet18 --sizes 32 "
    argv += f"--freezes none,partial,all --epochs 2 --workers 1 --data {kermany_root}"
    rows = throughput.main(argv.split())
    out = capsys.readouterr().out
    assert "# cache build (course, once): 4 images decoded to uint8 at 32 px" in out
    assert "# torch " in out and "# date: " in out and f"# data: {kermany_root} (--data)" in out
    printed = table(out)
    assert [r[:5] for r in printed] == [
        [pipeline, "resnet18", freeze, "32", "cpu"]
        for freeze in ("none", "partial", "all")
        for pipeline in ("naive", "course")
    ]
    assert all(len(r) == 8 and float(r[6]) > 0 for r in printed)
    assert all(r[7] == "1.00" and r[5] == "fp32" for r in printed if r[0] == "naive")
    assert all(r[5] == "bf16" for r in printed if r[0] == "course")
    assert "# precision: course amp=auto -> bf16 autocast: native AVX-512 BF16" in out
    assert "# cpu flags: avx2 avx512f avx512_bf16" in out
    for naive, course in zip(rows[::2], rows[1::2]):
        assert course["ratio"] == pytest.approx(course["images_per_s"] / naive["images_per_s"])
    assert set(rows[0]) == set(HEADER.split())


def test_without_data_a_synthetic_folder_is_written_said_and_removed(throughput, capsys):
    argv = "--device cpu --batches 1 --warmup 1 --batch-size 2 --archs resnet18 --sizes 32 "
    argv += "--freezes all --pipelines course --synthetic-size 40 --workers 0"
    rows = throughput.main(argv.split())
    out = capsys.readouterr().out
    data_line = next(line for line in out.splitlines() if line.startswith("# data: "))
    assert "SYNTHETIC 40 px PNGs" in data_line
    assert not Path(data_line.split()[2].rstrip(":")).exists()
    assert table(out)[0][:5] == ["course", "resnet18", "all", "32", "cpu"]
    assert math.isnan(rows[0]["ratio"]) and table(out)[0][7] == "nan"


def test_repeats_alternate_the_pipelines_and_report_medians(
    throughput, kermany_root, capsys, monkeypatch
):
    calls = []
    speeds = {"naive": iter([10.0, 30.0, 20.0]), "course": iter([45.0, 15.0, 40.0])}

    def fake(pipeline):
        def rate(*args):
            calls.append(pipeline)
            return next(speeds[pipeline])

        return rate

    monkeypatch.setattr(throughput, "naive_rate", fake("naive"))
    monkeypatch.setattr(throughput, "course_rate", fake("course"))
    argv = "--device cpu --batches 1 --warmup 1 --batch-size 2 --archs resnet18 --sizes 32 "
    argv += f"--freezes none --repeats 3 --data {kermany_root}"
    rows = throughput.main(argv.split())
    assert calls == ["naive", "course"] * 3  # interleaved, not three of one then the other
    assert [(r["pipeline"], r["images_per_s"]) for r in rows] == [("naive", 20.0), ("course", 40.0)]
    assert rows[1]["ratio"] == pytest.approx(2.0)
    assert "median of 3 interleaved repeat(s)" in capsys.readouterr().out


def test_bad_arguments_are_refused(throughput):
    with pytest.raises(SystemExit, match="at least 1"):
        throughput.main(["--warmup", "0"])
    with pytest.raises(SystemExit, match="--repeats must be at least 1"):
        throughput.main(["--repeats", "0"])
