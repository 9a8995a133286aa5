"""benchmarks/ddp_throughput.py: one process's measurement and the table (not timings)."""

from __future__ import annotations

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("ddp_throughput")


def test_one_process_measures_its_training_steps(bench, monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    args = bench.parse_args("--batches 2 --warmup 1 --batch-size 2 --image-size 32".split())
    result = bench.measure(args)
    assert (result["processes"], result["device"], result["global_batch"]) == (1, "cpu", 2)
    assert result["images_per_s"] > 0 and set(result) == set(bench.HEADER) - {"speedup"}
    assert result["allreduce_ms"] == 0.0  # one process reduces nothing


def test_the_table_gives_the_speedup_against_one_process(bench, monkeypatch, capsys, cpu_with):
    cpu_with("avx2", "fma")
    rates = {1: 40.0, 2: 30.0}

    def fake_launch(processes, args, argv):
        row = dict(processes=processes, threads=2 // processes, device="cpu", precision="fp32")
        row |= dict(global_batch=16 * processes, allreduce_ms=60.0 * (processes - 1))
        return row | dict(images_per_s=rates[processes])

    monkeypatch.setattr(bench, "launch", fake_launch)
    rows = bench.main(["--processes", "1,2", "--image-size", "32"])
    out = capsys.readouterr().out
    assert "# torch " in out and "cpu flags: avx2" in out and "backend gloo" in out
    lines = out.splitlines()
    start = lines.index(" ".join(bench.HEADER))
    assert lines[start + 1 :] == [
        "1 2 cpu fp32 16 0.00 40.00 1.00",
        "2 1 cpu fp32 32 60.00 30.00 0.75",
    ]
    assert [row["speedup"] for row in rows] == [1.0, 0.75]
