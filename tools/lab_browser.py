#!/usr/bin/env python3
"""Notebook 04's explorer in JupyterLab, in a real browser: drawn, moved, and checked.

`check [--screenshot PNG]` copies notebooks/04 into a temporary folder, starts JupyterLab there
on 127.0.0.1 (a free port, a token of its own, settings and workspaces in the temporary folder)
in the profile the environment names (the tests: quick), and opens the notebook in headless
Chromium (Playwright driving Debian's `chromium`, as tools/site_browser.py does). It runs every
cell from the Run menu, types a new value into the threshold slider's readout, and reads the
sensitivity and specificity the explorer then shows for each set. It adds a cell at the end that
prints what `metrics.operating_point` returns for the threshold the slider holds, computed by the
notebook's own kernel on its own scores, and fails unless the two agree to the three decimals
shown. The screenshot shows the explorer after the move.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import site_browser  # noqa: E402 (tools/ is not a package: its sibling, found through sys.path)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "04_pneumonia_training_gpu.ipynb"
TABLE = "table.medtl-operating-point"  # evaluation.explorer.TABLE_CLASS
COLUMNS = ("set", "sensitivity", "specificity")
MARK = "EXPECTED"
# one line, so that the editor's indentation cannot change it
EXPECTED_CELL = (
    "import json; from medtl_helpers.metrics import operating_point; "
    "t = explorer.threshold.value; "
    f"print('{MARK}', json.dumps({{'threshold': t, 'sets': {{name: "
    "[operating_point(y, p, t)[k] for k in ('sensitivity', 'specificity')] "
    "for name, (y, p) in explorer.scores.sets.items()}}))"
)
VIEWPORT = {"width": 1280, "height": 1400}  # tall enough for the explorer's table and figure


def missing_browser() -> str | None:
    """What is missing to run the check, and how to install it; None when nothing is."""
    try:
        import jupyterlab  # noqa: F401

        also = ()
    except ImportError:
        also = ("JupyterLab (pip install jupyterlab)",)
    return site_browser.missing_browser("the JupyterLab browser test", also)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def lab(folder: Path, timeout: float = 120) -> Iterator[str]:
    """JupyterLab serving `folder` on 127.0.0.1; yields its base URL with `?token=`."""
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(folder / ".jupyter"),
           "JUPYTERLAB_SETTINGS_DIR": str(folder / ".lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / ".lab-workspaces"),
           "JUPYTER_RUNTIME_DIR": str(folder / ".runtime")}  # fmt: skip
    env.pop("MPLBACKEND", None)  # the kernel draws its figures, as in a student's JupyterLab
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={folder}", "--LabApp.news_url="]  # fmt: skip
    if os.geteuid() == 0:  # a container's root, as in CI
        command.append("--allow-root")
    log = open(folder / "jupyterlab.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(base + f"api/status?token={token}", server, timeout, folder / "jupyterlab.log")
        yield f"{base}lab/tree/{NOTEBOOK}?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_for(url: str, server: subprocess.Popen, timeout: float, log: Path) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {server.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        time.sleep(1)
    raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text()}")


def shown_rates(page) -> dict[str, list[str]]:
    """Set name -> [sensitivity, specificity] as the explorer's table shows them."""
    rows = page.locator(f"{TABLE} tr:has(td)")
    cells = [
        [rows.nth(i).locator(f'td[data-column="{c}"]').inner_text() for c in COLUMNS]
        for i in range(rows.count())
    ]
    return {name: rates for name, *rates in cells}


def run_all(page, timeout_ms: int) -> None:
    """Run > Run All Cells, then wait until no cell is queued or running ([*])."""
    page.locator(".jp-Notebook").first.wait_for(timeout=timeout_ms)
    # Run All before the kernel has connected runs nothing: wait for the status bar's "| Idle"
    page.get_by_text(re.compile(r"\| Idle$")).first.wait_for(timeout=timeout_ms)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
    page.locator(TABLE).first.wait_for(timeout=timeout_ms)
    page.wait_for_function(
        "() => ![...document.querySelectorAll('.jp-InputPrompt')]"
        ".some((prompt) => prompt.textContent.includes('*'))",
        timeout=timeout_ms,
    )


def move_threshold(page, value: float, timeout_ms: int) -> None:
    """Type `value` into the threshold slider's readout; wait for the table to be redrawn."""
    slider = page.locator(".widget-hslider", has_text="threshold").first
    readout = slider.locator(".widget-readout")
    readout.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(f"{value:.3f}")
    page.keyboard.press("Enter")
    page.locator(f"{TABLE} caption", has_text=f"threshold {value:.3f}").wait_for(timeout=timeout_ms)


def kernel_rates(page, timeout_ms: int) -> dict:
    """Add a cell at the end that prints operating_point at the slider's threshold; its JSON."""
    page.locator(".jp-Notebook .jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")  # a new cell below, in command mode
    page.keyboard.press("Enter")
    page.keyboard.type(EXPECTED_CELL)
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-OutputArea-output", has_text=MARK).last
    output.wait_for(timeout=timeout_ms)
    return json.loads(output.inner_text().split(MARK, 1)[1])


def explorer_screenshot(page, png: Path, timeout_ms: int) -> None:
    """The window, the explorer (its figure drawn) scrolled to its top: taken before a cell is
    added below, which would scroll the explorer out of the cells JupyterLab renders."""
    explorer = page.locator(f".widget-vbox:has({TABLE})").first
    explorer.locator(".widget-output img").first.wait_for(timeout=timeout_ms)
    explorer.evaluate("box => box.scrollIntoView({block: 'start'})")
    explorer.locator(".widget-output img").first.evaluate("image => image.decode()")
    page.wait_for_timeout(1500)  # the notebook's own scrolling and painting settle
    png.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(png), timeout=timeout_ms)


def check(screenshot: Path | None = None, new_threshold: float = 0.3,
          timeout_s: float = 600) -> list[str]:  # fmt: skip
    """Run the check; the problems found (an empty list when it passed)."""
    problem = missing_browser()
    if problem:
        raise RuntimeError(problem)
    from playwright.sync_api import sync_playwright

    ms = int(timeout_s * 1000)
    with tempfile.TemporaryDirectory(prefix="medtl-lab-") as tmp:
        folder = Path(tmp)
        shutil.copy(ROOT / "notebooks" / NOTEBOOK, folder / NOTEBOOK)
        with lab(folder) as url, sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=shutil.which("chromium"))
            try:
                page = browser.new_context(viewport=VIEWPORT).new_page()
                page.goto(url, wait_until="load")
                run_all(page, ms)
                move_threshold(page, new_threshold, ms)
                shown = shown_rates(page)
                if screenshot:
                    explorer_screenshot(page, screenshot, ms)
                expected = kernel_rates(page, ms)
            finally:
                browser.close()
    return compare(shown, expected, new_threshold)


def compare(shown: dict[str, list[str]], expected: dict, threshold: float) -> list[str]:
    """The differences between what the explorer showed and what the kernel computed."""
    problems = []
    if round(expected["threshold"], 3) != round(threshold, 3):
        problems.append(f"the slider holds {expected['threshold']}, not the {threshold} typed")
    want = {name: [f"{v:.3f}" for v in rates] for name, rates in expected["sets"].items()}
    if shown != want:
        problems.append(f"the explorer shows {shown}; operating_point gives {want}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["check"])
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args(argv)
    problems = check(args.screenshot)
    print("\n".join(problems) or "the explorer shows what operating_point computes")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
