"""Notebook 00's cells say what its data source really is and what it really timed."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from notebook_cells import cell_source, run_cells
from scipy.stats import binom

from medtl_helpers import load_course_data
from medtl_helpers.data.folder import scan_split
from medtl_helpers.data.medmnist import pneumoniamnist_path
from medtl_helpers.plots import plot_roc

NB = "00_setup_and_data"
IMPORTS, PARAMETERS = "4266b4fa", "819d1ec5"
SPLIT_CHECK, GAPS_CELL = "99154a8f", "36f7bf94"
DECODE, TIMED_FILES, RATIO_PROSE = "57a4806e", "d89e1b37", "9602c16b"


def prepared(**names) -> dict:
    """The notebook's imports and parameters, then `names` on top."""
    namespace: dict = {}
    run_cells(NB, [IMPORTS, PARAMETERS], namespace)
    return namespace | names


def fake_pneumoniamnist(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in {"train": 8, "val": 4, "test": 4}.items():
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    path = pneumoniamnist_path(64, folder)
    np.savez(path, **arrays)
    return path


def test_split_check_quotes_medmnist_for_pneumoniamnist(isolated_data_dir):
    fake_pneumoniamnist(isolated_data_dir)
    data = load_course_data(source="pneumoniamnist", verbose=False)
    out = run_cells(NB, [SPLIT_CHECK], prepared(data=data))
    assert "carved" not in out and "by patient: it shares no patient" not in out
    assert "it divided the source's training set 9:1 into train and val" in out
    assert "no split of this source can be checked by patient" in out


def test_split_check_counts_the_ids_a_given_test_folder_reuses(kaggle_root, monkeypatch):
    monkeypatch.setenv("MEDTL_DATA", str(kaggle_root))
    data = load_course_data(verbose=False)
    out = run_cells(NB, [SPLIT_CHECK], prepared(data=data))
    assert "the given test/ folder: 1 of its 6 patient ids also name a patient in train" in out


def test_split_check_on_synthetic_data_checks_the_carved_test_split():
    data = load_course_data(source="synthetic", verbose=False)
    out = run_cells(NB, [SPLIT_CHECK], prepared(data=data))
    assert "a patient-level holdout of the same pool as train and val" in out


def test_roc_prose_names_the_axes_that_plot_roc_draws():
    prose = cell_source(NB, "109b339a")
    found = re.search(
        r"\*\*ROC curve\*\*: (\S+) \(y axis\) against the (\S+) rate \(x axis\)", prose
    )
    assert found, "the ROC paragraph says which quantity is on which axis"
    ax = plot_roc(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    assert found[1] in ax.get_ylabel()
    assert found[2].replace("-", " ") in ax.get_xlabel()


def test_sixteen_images_comparison_is_computed_and_matches_the_binomial():
    namespace = prepared(p=0.9, data=SimpleNamespace(val=range(153)))
    out = run_cells(NB, [GAPS_CELL], namespace)
    rows = re.findall(r"n = +(\d+): a model ([\d.]+) less accurate .* in (\d+)% of draws", out)
    assert len(rows) == 2 * len(namespace["GAPS"])
    for n, gap, share in rows:
        n, gap = int(n), float(gap)
        better, worse = (
            binom.pmf(np.arange(n + 1), n, 0.9),
            binom.pmf(np.arange(n + 1), n, 0.9 - gap),
        )
        exact = sum(worse[j] * better[: j + 1].sum() for j in range(n + 1))
        assert abs(int(share) / 100 - exact) <= 0.01, (n, gap)
    notebook = "\n".join(cell_source(NB, c) for c in ("c919150a", "6a8bf652"))
    assert "wider than the gap between any two models" not in notebook
    assert "larger\nthan most improvements" not in notebook


@pytest.mark.parametrize("source", ["kermany-folder", "synthetic"])
def test_timing_names_the_files_it_decoded(source, kermany_root):
    tmp = tempfile.TemporaryDirectory()
    names = {"tmp": tmp, "tensor_ms": 0.01, "N_DECODE": 8, "IMAGE_SIZE": 64}
    names["data"] = SimpleNamespace(source=source, origin=str(kermany_root))
    names["scan"] = scan_split(kermany_root, "train")
    out = run_cells(NB, [DECODE, TIMED_FILES], prepared(**names))
    if source == "kermany-folder":
        assert f"timed: 8 JPEG files of {kermany_root}, 32-32 x 32-32 px, median" in out
    else:
        assert "timed: 8 synthetic PNG files written just now, 64-64 x 64-64 px, median" in out
    assert not Path(tmp.name).exists()  # the notebook cleans up after timing
    assert "thumbnails timed here" not in cell_source(NB, RATIO_PROSE)
