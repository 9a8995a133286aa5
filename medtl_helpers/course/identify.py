"""`grade`: which course notebook a submitted file is, read without trusting its name.

A submission is read as JSON first, so each kind of bad file (binary, empty, cut off, JSON that is
no notebook) gets its own sentence and the fix; then it is matched to a course notebook by the
cell ids it shares with it, else by its title (first heading).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nbformat

DOWNLOAD = "ask for the notebook again (Jupyter: File > Download; Colab: File > Download .ipynb)"


def read_submission(path: Path) -> tuple[nbformat.NotebookNode | None, bool, str]:
    """(notebook, whether every cell has an id, problem); the problem is '' for a notebook."""
    import nbformat

    try:
        text = path.read_bytes().decode("utf-8")
        raw = json.loads(text)
    except UnicodeDecodeError:
        return None, False, f"not a notebook: {path.name} is a binary file; {DOWNLOAD}"
    except json.JSONDecodeError as err:
        if not text.strip():
            return None, False, f"not a notebook: {path.name} is empty; {DOWNLOAD}"
        if path.suffix != ".ipynb":
            return None, False, f"not a notebook: {path.name} is not JSON; {DOWNLOAD}"
        where = f"line {err.lineno}, column {err.colno}"
        return None, False, f"corrupt notebook: invalid JSON at {where} ({err.msg}); {DOWNLOAD}"
    if not isinstance(raw, dict) or not ("cells" in raw or "worksheets" in raw):
        return None, False, f"not a notebook: {path.name} is JSON without notebook cells"
    cells = raw.get("cells")
    has_ids = isinstance(cells, list) and all(isinstance(c, dict) and "id" in c for c in cells)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a notebook without ids gets new ones, and a warning
            notebook = nbformat.reads(text, as_version=4)
        if not all({"cell_type", "source"} <= set(cell) for cell in notebook.cells):
            raise ValueError("a cell without cell_type or source")
    except Exception as err:  # nbformat raises several kinds for a damaged notebook
        return None, False, f"corrupt notebook: {type(err).__name__}: {err}; {DOWNLOAD}"
    return notebook, has_ids and bool(cells), ""


def _title(notebook) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            return cell.source.strip().splitlines()[0]
    return ""


def identify(notebook, has_ids: bool, course: dict) -> tuple[str, str]:
    """(stem, how): of `course` (stem -> grading.CourseNotebook), the notebook sharing most of its
    cell ids, else the one whose title (first heading) it has; ('', '') when neither. The file
    name is never trusted alone."""
    ids = {cell.get("id") for cell in notebook.cells} if has_ids else set()
    shares = {
        stem: len(ids & {cell.id for cell in nb.template.cells}) / len(nb.template.cells)
        for stem, nb in course.items()
    }
    best = max(shares, key=shares.get, default="")
    if best and shares[best] >= 0.5:
        return best, "cell ids"
    title = _title(notebook)
    stem = next((s for s, nb in course.items() if title and title == _title(nb.template)), "")
    return stem, "title" if stem else ""
