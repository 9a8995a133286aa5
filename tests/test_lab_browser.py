"""tools/lab_browser.py: notebook 04's explorer in JupyterLab, in headless Chromium. The test that
opens the browser runs in `make test`'s third job (tools/run_tests.sh sets MEDTL_LAB_BROWSER);
elsewhere it skips, and there it fails, saying what to install, when something is missing."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import load_script

from medtl_helpers.evaluation.explorer import Scores
from medtl_helpers.metrics import operating_point

lab_browser = load_script("tools", "lab_browser")


def test_what_is_missing_is_named_with_its_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    monkeypatch.setitem(sys.modules, "jupyterlab", None)
    monkeypatch.setattr(lab_browser.site_browser.shutil, "which", lambda name: None)
    problem = lab_browser.missing_browser()
    assert problem.startswith("the JupyterLab browser test needs the Python package playwright")
    assert "Debian's chromium (apt-get install chromium)" in problem
    assert "JupyterLab (pip install jupyterlab)" in problem


def test_the_added_cell_prints_operating_point_at_the_sliders_threshold():
    y, p = np.array([0, 0, 1, 1, 1]), np.array([0.2, 0.6, 0.4, 0.7, 0.9])
    explorer = SimpleNamespace(
        threshold=SimpleNamespace(value=0.5), scores=Scores({"test": (y, p)}, 0.3)
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(lab_browser.EXPECTED_CELL, {"explorer": explorer})
    mark, text = printed.getvalue().split(" ", 1)
    point = operating_point(y, p, 0.5)
    assert mark == lab_browser.MARK
    assert json.loads(text) == {
        "threshold": 0.5, "sets": {"test": [point["sensitivity"], point["specificity"]]}
    }  # fmt: skip


def test_shown_and_computed_rates_agree_only_to_the_shown_decimals():
    expected = {"threshold": 0.3, "sets": {"validation": [2 / 3, 0.75], "test": [1.0, 0.5]}}
    shown = {"validation": ["0.667", "0.750"], "test": ["1.000", "0.500"]}
    assert lab_browser.compare(shown, expected, 0.3) == []
    wrong = {**shown, "test": ["1.000", "0.400"]}
    assert "operating_point gives" in lab_browser.compare(wrong, expected, 0.3)[0]
    assert "the slider holds 0.3, not the 0.6 typed" in lab_browser.compare(shown, expected, 0.6)


@pytest.mark.skipif(
    not os.environ.get("MEDTL_LAB_BROWSER"),
    reason="starts JupyterLab and Chromium and runs notebook 04: make test's third job runs it "
    "(MEDTL_LAB_BROWSER=1, tools/run_tests.sh)",
)
def test_the_explorer_in_jupyterlab_shows_what_operating_point_computes(tmp_path):
    problem = lab_browser.missing_browser()
    if problem:
        pytest.fail(problem)
    png = tmp_path / "explorer-04.png"
    assert lab_browser.check(png) == []
    assert png.stat().st_size > 10_000
    print(f"screenshot of the explorer in JupyterLab: {png}")
