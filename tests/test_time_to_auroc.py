"""benchmarks/time_to_auroc.py on a tiny folder: both recipes run and the table reads right."""

from __future__ import annotations

import shutil

from conftest import load_benchmark

from medtl_helpers.data.synthetic import write_synthetic_folder


def test_both_recipes_report_an_auroc_per_epoch_and_the_time_to_each_target(tmp_path, capsys):
    folder = write_synthetic_folder(tmp_path / "xrays", 80, 0, size=48)
    shutil.rmtree(folder / "test")  # no test/: load_folder holds patients out instead
    benchmark = load_benchmark("time_to_auroc")
    argv = (
        f"--data {folder} --image-size 32 --epochs 2 --batch-size 16 --workers 0 --targets 0.0,1.01"
    )
    results = benchmark.main(argv.split())
    out = capsys.readouterr().out
    lines = out.splitlines()
    start = lines.index("pipeline precision epoch seconds val_auroc")
    rows = [line.split() for line in lines[start + 1 :] if not line.startswith("#")]
    assert [(r[0], r[2]) for r in rows] == [
        ("course", "1"),
        ("course", "2"),
        ("seed", "1"),
        ("seed", "2"),
    ]
    for pipeline in ("course", "seed"):
        seconds = [s for s, _ in results[pipeline]]
        assert seconds == sorted(seconds) and all(0 <= a <= 1 for _, a in results[pipeline])
    assert [r[1] for r in rows if r[0] == "seed"] == ["fp32", "fp32"]
    first = f"{results['course'][0][0]:.0f} s"
    assert f"# course: AUROC 0.0: {first}, AUROC 1.01: not in 2 epochs" in out
    assert "# cpu flags: " in out
