"""`grade` runs every submission on data it can load: the reference solutions, pasted into every
student copy, score every point, and the graded copies hold no error outside the answers."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest
from conftest import filled, solutions

from medtl_helpers import config
from medtl_helpers.course.gradebook import grade_class
from medtl_helpers.course.grading import GradingError
from medtl_helpers.course.grading_data import grading_data
from medtl_helpers.course.outcomes import PASSED, kernel_environment
from medtl_helpers.course.student import build_student
from medtl_helpers.data.sources import load_course_data

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _load_with(env: dict[str, str], monkeypatch):
    for name in ("MEDTL_SOURCE", "MEDTL_DATA", "MEDTL_CACHE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if name.startswith("MEDTL_") and name != "MEDTL_PROFILE":
            monkeypatch.setenv(name, value)
    return load_course_data(config.get_profile("quick"), verbose=False)


def test_by_default_each_kernel_loads_the_quick_profiles_synthetic_xrays(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTL_DATA", "/nowhere/teachers-data")  # the teacher's own setting
    env = kernel_environment(tmp_path / "alice")
    assert env["MEDTL_SOURCE"] == "synthetic" and env["MEDTL_PROFILE"] == "quick"
    assert Path(env["MEDTL_DATA"]).is_dir() and Path(env["MEDTL_CACHE"]).is_dir()
    assert Path(env["MEDTL_DATA"]).parent == tmp_path / "alice"
    data = _load_with(env, monkeypatch)
    assert data.source == "synthetic" and len(data.train) > 100
    assert "was asked for (MEDTL_SOURCE=synthetic" in data.banner()


def test_a_kermany_folder_is_cached_once_read_only_and_linked_for_each_kernel(
    tmp_path, monkeypatch, kermany_root
):
    shared = grading_data(kermany_root.parent, tmp_path / "run")  # the folder holding chest_xray/
    assert "Kermany folder" in shared.describe and str(kermany_root) in shared.describe
    files = sorted((tmp_path / "run" / "cache").iterdir())
    assert files and all((f.stat().st_mode & 0o777) == 0o444 for f in files)
    before = {p: p.stat().st_mtime_ns for p in kermany_root.rglob("*")}
    env = kernel_environment(tmp_path / "bob", shared)
    assert env["MEDTL_DATA"] == str(kermany_root) and env["MEDTL_SOURCE"] == "folder"
    linked = sorted(Path(env["MEDTL_CACHE"]).iterdir())
    assert [f.name for f in linked] == [f.name for f in files]
    assert all(a.stat().st_ino == b.stat().st_ino for a, b in zip(linked, files))
    data = _load_with(env, monkeypatch)
    assert data.source == "kermany-folder" and data.test_given
    assert sorted(Path(env["MEDTL_CACHE"]).iterdir()) == linked  # read, nothing rebuilt
    assert {p: p.stat().st_mtime_ns for p in kermany_root.rglob("*")} == before


def test_data_that_cannot_be_graded_on_is_refused_with_the_fix(tmp_path):
    with pytest.raises(GradingError, match=r"--data .*nowhere: no such folder.*leave --data out"):
        grading_data(tmp_path / "nowhere", tmp_path / "run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GradingError, match=r"neither a Kermany folder .*pneumoniamnist_64\.npz"):
        grading_data(tmp_path / "empty", tmp_path / "run")


def _errors_outside_answers(graded: Path) -> list[str]:
    notebook = nbformat.read(graded, as_version=4)
    return [
        f"cell {i}: {output.get('ename')}: {output.get('evalue')}"
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and "grade" not in cell.metadata
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


@pytest.mark.skipif(os.environ.get("MEDTL_PROFILE") != "quick", reason="quick profile only")
def test_the_reference_solutions_score_every_point_with_no_flag(tmp_path, standin_weights):
    """Every notebook's solutions, pasted into its student copy, graded as one class, with
    (stand-in) ImageNet weights: make test's second run of every notebook, so that every branch
    a notebook takes with ImageNet weights runs too, as on Colab (the first, under nbval, starts
    from random initialisation). Nothing outside the answers may raise."""
    build_student(NOTEBOOKS, tmp_path / "student")
    for instructor in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        copy = tmp_path / "student" / instructor.name
        filled(copy, solutions(instructor.stem), tmp_path / "submissions" / "ref" / instructor.name)
    printed = io.StringIO()
    with redirect_stdout(printed):
        graded = grade_class(
            [tmp_path / "submissions"], tmp_path / "grades", NOTEBOOKS, jobs=2,
            cell_timeout=240, notebook_timeout=900, pretrained="imagenet",
        )  # fmt: skip
    assert len(graded) == 10, printed.getvalue()
    loaded = {}
    for submission in graded:
        assert not submission.problem, submission.problem
        failed = [(r.exercise.key, r.outcome, r.message) for r in submission.results
                  if r.outcome != PASSED]  # fmt: skip
        assert not failed and submission.results, (submission.stem, failed)
        assert not submission.flags, submission.flags
        assert not [n for n in submission.notes if "stopped early" in n], submission.notes
        copy = tmp_path / "grades" / "ref" / f"{submission.stem}.ipynb"
        assert _errors_outside_answers(copy) == [], submission.stem
        text = copy.read_text()
        loaded[submission.stem[:2]] = "STAND-IN weights file" in text  # build_model said so
        if submission.stem.startswith("07"):  # it builds its pretrained runs quietly
            assert "ImageNet-pretrained curve is MISSING" not in text
    # 00 and 01 build no pretrained network
    assert {k for k, v in loaded.items() if v} == {"02", "03", "04", "05", "06", "08", "09"}
    assert "with imagenet weights" in (tmp_path / "grades" / "report.md").read_text()
