"""tools/nbcell.py: the one way to script an edit to a course notebook."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("nbcell", ROOT / "tools" / "nbcell.py")
nbcell = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nbcell)


@pytest.fixture
def notebook(tmp_path) -> Path:
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("x = 1", id="first")
    code.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    code.execution_count = 3
    nb.cells = [nbformat.v4.new_markdown_cell("# Title", id="title"), code]
    path = tmp_path / "00_demo.ipynb"
    nbformat.write(nb, path)
    return path


def test_set_replaces_the_source_keeps_the_id_and_drops_stale_outputs(notebook, tmp_path):
    source = tmp_path / "cell.py"
    source.write_text("x = 2\n")
    assert nbcell.main(["set", str(notebook), "first", str(source)]) == 0
    cell = nbformat.read(notebook, as_version=4).cells[1]
    assert (cell.id, cell.source, cell.outputs, cell.execution_count) == (
        "first",
        "x = 2",
        [],
        None,
    )


def test_insert_delete_and_list(notebook, tmp_path, capsys):
    source = tmp_path / "cell.md"
    source.write_text("## Exercise")
    nbcell.main(["insert", str(notebook), "0", "markdown", str(source), "--tags", "exercise"])
    cells = nbformat.read(notebook, as_version=4).cells
    assert [c.source for c in cells] == ["# Title", "## Exercise", "x = 1"]
    assert cells[1].metadata["tags"] == ["exercise"]
    nbcell.main(["delete", str(notebook), "title"])
    nbcell.main(["list", str(notebook)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "exercise" in lines[0] and "x = 1" in lines[1]


def test_clear_is_gone_and_its_message_names_the_nbstripout_hook(notebook):
    """Clearing outputs is nbstripout's job now (.pre-commit-config.yaml): the file is untouched."""
    before = notebook.read_bytes()
    with pytest.raises(SystemExit, match=r"pre-commit run nbstripout --all-files"):
        nbcell.main(["clear", str(notebook)])
    assert notebook.read_bytes() == before


def test_an_unknown_cell_is_named(notebook):
    with pytest.raises(SystemExit, match="no cell 'nope': use an index below 2 or a cell id"):
        nbcell.main(["show", str(notebook), "nope"])
