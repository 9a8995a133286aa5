"""The gpu profile's code paths, run on the CPU: 224 px, its architectures and batch sizes, its
ImageNet branches (stand-in weights), on a capped amount of data (32 images per split here;
64, and 800 for 08 and 09, in `make smoke-gpu`) for one epoch, with the quick profile's loop
sizes.

Anything that only breaks with the gpu profile's settings breaks here before a Colab student
meets it. `make smoke-gpu` runs every notebook this way.
"""

from __future__ import annotations

from pathlib import Path

from medtl_helpers.course.runner import run_course

ROOT = Path(__file__).resolve().parents[1]
SMOKE = {"MEDTL_PROFILE": "gpu", "MEDTL_MAX_IMAGES": "32", "MEDTL_MAX_EPOCHS": "1"}


def test_notebooks_04_and_06_run_in_the_gpu_profile(standin_weights, tmp_path, monkeypatch, capsys):
    for name, value in {**SMOKE, "MEDTL_RUNS": str(tmp_path / "runs")}.items():
        monkeypatch.setenv(name, value)
    runs = run_course(ROOT / "notebooks", tmp_path / "out", only=["04", "06"], timeout=600)
    assert [(r.name[:2], r.profile, r.error) for r in runs] == [
        ("04", "gpu", None),
        ("06", "gpu", None),
    ]
    executed = (tmp_path / "out" / "04_pneumonia_training_gpu.ipynb").read_text()
    assert "224 px" in executed and "MEDTL_MAX_IMAGES=32" in executed
    assert "STAND-IN weights file" in executed  # the ImageNet branch ran, and said what it loaded
