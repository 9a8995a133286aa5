"""tests/nbval_keep.py, a pytest plugin: with MEDTL_NBVAL_KEEP, nbval's run of a notebook is
kept with its outputs (the site's browser test is built from them), and its kernel draws figures
despite MPLBACKEND=Agg."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CELLS = [
    "print('hello from the kernel')",
    "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()",
    "6 * 7",
]


def _nbval(folder: Path, **env: str) -> subprocess.CompletedProcess:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in CELLS])
    nbformat.write(notebook, folder / "tiny.ipynb")
    command = [sys.executable, "-m", "pytest", "-p", "nbval_keep", "-q"]
    command += ["-p", "no:cacheprovider"]
    command += ["--nbval-lax", "--nbval-current-env", str(folder / "tiny.ipynb")]
    environment = {k: v for k, v in os.environ.items() if k != "MEDTL_NBVAL_KEEP"}
    environment.update(MPLBACKEND="Agg", PYTHONPATH=str(ROOT / "tests"), **env)
    return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)


def test_each_notebook_is_kept_with_the_outputs_of_its_cells(tmp_path):
    kept = tmp_path / "kept"
    done = _nbval(tmp_path, MEDTL_NBVAL_KEEP=str(kept))
    assert done.returncode == 0, done.stdout + done.stderr
    notebook = nbformat.read(kept / "tiny.ipynb", as_version=4)
    nbformat.validate(notebook)
    printed, figure, value = (cell.outputs for cell in notebook.cells)
    assert [o.text for o in printed if o.output_type == "stream"] == ["hello from the kernel\n"]
    assert any("image/png" in o.get("data", {}) for o in figure), figure  # drawn despite Agg
    assert value[0].data["text/plain"] == "42"
    assert [cell.execution_count for cell in notebook.cells] == [1, 2, 3]


def test_without_the_variable_nothing_is_kept(tmp_path):
    done = _nbval(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.ipynb"]
    assert all(not cell.outputs for cell in nbformat.read(tmp_path / "tiny.ipynb", 4).cells)
