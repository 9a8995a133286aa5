"""tools/site_browser.py: the built site in headless Chromium. The tests that open a browser run
in `make test`'s third job (tools/run_tests.sh), which names the notebooks that job 1's nbval run
kept with their outputs (tests/nbval_keep.py) in MEDTL_SITE_EXECUTED; elsewhere they skip, and
there they fail, saying what to install, when Chromium or Playwright is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import load_script
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
site_browser = load_script("tools", "site_browser")

EXECUTED = os.environ.get("MEDTL_SITE_EXECUTED")
browser = pytest.mark.skipif(
    not EXECUTED,
    reason="opens Chromium: make test's third job runs it, with MEDTL_SITE_EXECUTED naming a "
    "folder of executed notebooks (tools/run_tests.sh)",
)
# a notebook page with one of each fault, and an image from elsewhere, which is blocked
BROKEN = """<html><body>
<img src="missing.png"><img src="https://example.org/badge.svg">
<a href="../../nowhere/">dead</a> <a href="../../">home</a>
<a href="https://colab.research.google.com/github/o/r/blob/main/notebooks/05_other.ipynb">Colab</a>
<script>console.error("drawn wrong"); undefinedFunction();</script>
</body></html>"""


@pytest.fixture
def chromium():
    problem = site_browser.missing_browser()
    if problem:
        pytest.fail(problem)


def test_a_missing_chromium_is_named_with_its_install_command(monkeypatch):
    monkeypatch.setattr(site_browser.shutil, "which", lambda name: None)
    assert "Debian's chromium (apt-get install chromium)" in site_browser.missing_browser()


def test_a_missing_playwright_is_named_with_its_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # its import then fails
    monkeypatch.setattr(site_browser.shutil, "which", lambda name: "/usr/bin/chromium")
    problem = site_browser.missing_browser()
    assert "the Python package playwright (pip install 'playwright>=1.40')" in problem
    assert "chromium (apt-get" not in problem


def test_every_html_file_but_404_is_a_page(tmp_path):
    for name in ("index.html", "404.html", "teaching/index.html", "notebooks/04_x/index.html"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("<html></html>")
    assert site_browser.page_paths(tmp_path) == ["", "notebooks/04_x/", "teaching/"]


def test_the_site_is_served_on_localhost(tmp_path):
    (tmp_path / "index.html").write_text("<p>landing</p>")
    with site_browser.serve(tmp_path) as base:
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base) as response:
            assert response.status == 200 and response.read() == b"<p>landing</p>"


@browser
def test_each_fault_of_a_page_is_reported(tmp_path, chromium):
    page = tmp_path / "notebooks" / "04_this" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(BROKEN)
    (tmp_path / "index.html").write_text("<p>landing</p>")
    blocked = []
    with site_browser.serve(tmp_path) as base, site_browser.browser_context(base, blocked) as ctx:
        problems, links = site_browser.check_page(ctx, base, "notebooks/04_this/", blocked)
        dead = site_browser.dead_links(ctx, base, links)
        search = site_browser.search_problems(ctx, base, timeout_ms=500)
    assert blocked == ["https://example.org/badge.svg"]
    where = "/notebooks/04_this/: "
    assert f"{where}image not loaded: {base}notebooks/04_this/missing.png" in problems
    assert f"{where}console error: drawn wrong" in problems
    assert any(p.startswith(f"{where}uncaught exception:") for p in problems)
    assert f"{where}no 'Open in Colab' link" in problems
    assert any("Colab link to another notebook" in p and "05_other" in p for p in problems)
    assert not any("example.org" in p for p in problems)  # blocked on purpose, not a fault
    assert links == {base, f"{base}nowhere/"}
    assert dead == ["link /nowhere/ answers 404"]
    assert search == ["a search for 'AdaBN' does not list 08_domain_shift_and_adaptation ([])"]


@browser
def test_the_quick_course_site_passes_in_chromium(tmp_path, chromium):
    site = tmp_path / "site"
    build = [sys.executable, str(ROOT / "tools" / "build_site.py"), "--executed", EXECUTED]
    build += ["--stage", str(tmp_path / "stage"), "--site", str(site)]
    assert subprocess.run(build).returncode == 0
    problems, seen = site_browser.check_site(site, tmp_path / "screenshots")
    print(f"{seen['pages']} pages, {seen['internal links']} links; blocked {seen['blocked']}")
    assert problems == []
    notebooks = sorted(Path(EXECUTED).glob("[0-9][0-9]_*.ipynb"))
    assert seen["pages"] > len(notebooks) > 0
    for name in ("site-index.png", "site-04.png"):
        with Image.open(tmp_path / "screenshots" / name) as image:
            assert image.size == (1280, 900)
    print(f"screenshots of the landing page and of 04's page: {tmp_path / 'screenshots'}")
