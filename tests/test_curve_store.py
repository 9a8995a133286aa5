"""The key of 07's store of finished points: the fingerprint covers every module of the package."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import medtl_helpers
from medtl_helpers.evaluation import curve_store

# modules a point depends on outside the training loop: augmentation, model building, BatchNorm
# modes, scoring, best-epoch bookkeeping, subsets
OUTSIDE_THE_LOOP = (
    "data/augment.py",
    "models/build.py",
    "models/modes.py",
    "metrics/predict.py",
    "metrics/rates.py",
    "training/runs.py",
    "data/records.py",
)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of the package's source, to edit without touching the real one."""
    root = Path(medtl_helpers.__file__).parent
    copy = tmp_path / "medtl_helpers"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_the_fingerprint_reads_the_installed_package_by_default():
    assert curve_store.PACKAGE == Path(medtl_helpers.__file__).parent
    names = curve_store.package_modules()
    assert names == sorted(names) and "evaluation/curve_store.py" in names
    assert set(OUTSIDE_THE_LOOP) <= set(names)


@pytest.mark.parametrize("name", OUTSIDE_THE_LOOP + ("training/fit.py", "course/checks/nb07.py"))
def test_a_change_to_any_module_changes_the_fingerprint(package, name):
    plain = curve_store.code_fingerprint(package)
    assert len(plain) == 12
    path = package / name
    path.write_bytes(path.read_bytes() + b"# changed\n")
    assert curve_store.code_fingerprint(package) != plain


def test_a_new_module_changes_the_fingerprint(package):
    plain = curve_store.code_fingerprint(package)
    (package / "metrics" / "extra.py").write_text("X = 1\n")
    assert curve_store.code_fingerprint(package) != plain


def test_the_fingerprint_ignores_line_endings(package):
    plain = curve_store.code_fingerprint(package)
    for path in package.rglob("*.py"):  # the same code checked out with CRLF
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert curve_store.code_fingerprint(package) == plain


def test_editor_copies_and_caches_are_not_modules_of_the_package(package):
    plain = curve_store.code_fingerprint(package)
    saved = package / "training" / ".ipynb_checkpoints" / "fit-checkpoint.py"
    saved.parent.mkdir()
    saved.write_text("X = 1\n")  # JupyterLab's copy of a module it opened
    (package / "__pycache__").mkdir(exist_ok=True)
    (package / "__pycache__" / "stray.py").write_text("Y = 2\n")
    (package / ".hidden.py").write_text("Z = 3\n")
    names = curve_store.package_modules(package)
    assert not [name for name in names if "-checkpoint" in name or "stray" in name]
    assert ".hidden.py" not in names and "training/fit.py" in names
    assert curve_store.code_fingerprint(package) == plain
