"""Run single cells of a course notebook in a namespace a test prepares; read what they print."""

from __future__ import annotations

import contextlib
import io

import nbformat
from conftest import NOTEBOOKS


def cell_source(stem: str, cell_id: str) -> str:
    """The source of the cell with id `cell_id` in notebooks/`stem`.ipynb."""
    notebook = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    return next(cell.source for cell in notebook.cells if cell.get("id") == cell_id)


def run_cells(stem: str, cell_ids: list[str], namespace: dict) -> str:
    """Execute the cells in order in `namespace` (updated in place); return what they printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for cell_id in cell_ids:
            exec(compile(cell_source(stem, cell_id), f"{stem}:{cell_id}", "exec"), namespace)
    return out.getvalue()
