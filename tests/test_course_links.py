"""The repository URL lives in one place: badges, setup cells and the README all come from it."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import nbformat
import pytest

from medtl_helpers.course import links
from medtl_helpers.course.cli import main
from medtl_helpers.course.student import python_only

ROOT = Path(__file__).resolve().parents[1]
SYLLABUS = [f"0{n}" for n in range(10)]


def test_every_notebook_has_the_generated_badge_and_setup_cell():
    assert links.sync_folder(ROOT / "notebooks") == [], (
        "run `python -m medtl_helpers links --write notebooks`"
    )


def test_urls_come_from_the_repository_constants():
    repo, branch = links.REPOSITORY, links.BRANCH
    assert links.colab_url("notebooks/00_a.ipynb") == (
        f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/00_a.ipynb"
    )
    assert links.install_spec() == f"medtl_helpers @ git+https://github.com/{repo}@v0.1.0"
    assert f'%pip install --quiet "{links.install_spec()}"' in (links.setup_cell_source())


def test_setup_cell_does_nothing_locally(capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(python_only(links.setup_cell_source()), {})
    assert capsys.readouterr().out == ""


def test_setup_cell_on_colab_reports_the_gpu(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    exec(python_only(links.setup_cell_source()), {})
    assert "No GPU: pick Runtime > Change runtime type > T4 GPU" in capsys.readouterr().out
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.get_device_name", lambda index: "Tesla T4")
    exec(python_only(links.setup_cell_source()), {})
    assert capsys.readouterr().out == "GPU: Tesla T4\n"


def test_readme_has_one_badge_per_notebook_with_the_one_url():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = links.readme_notebooks(text)
    assert [Path(path).name[:2] for path in linked] == SYLLABUS
    present = {f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert present <= set(linked)
    assert links.sync_readme(text) == text, "run `python -m medtl_helpers links --write`"
    assert text.count(links.BADGE_IMAGE) == len(SYLLABUS)


def test_the_notebooks_readme_names_the_notebooks_that_exist():
    """It said 00 to 08 after 09 was added."""
    import re

    text = (ROOT / "notebooks" / "README.md").read_text(encoding="utf-8")
    first, last = re.search(r"`(\d\d)_…` to `(\d\d)_…`", text).groups()
    numbers = [path.name[:2] for path in links.numbered_notebooks(ROOT / "notebooks")]
    assert (first, last) == (numbers[0], numbers[-1])


def drifted_notebook(folder: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# 00 · Tiny"),
        nbformat.v4.new_markdown_cell(
            "[![Open In Colab](x.svg)](https://colab.research.google.com/github/someone/fork"
            "/blob/dev/notebooks/00_tiny.ipynb)"
        ),
        nbformat.v4.new_code_cell("import sys"),
    ]
    folder.mkdir()
    nbformat.write(notebook, folder / "00_tiny.ipynb")
    return folder / "00_tiny.ipynb"


def test_links_command_checks_then_rewrites(tmp_path, capsys):
    path = drifted_notebook(tmp_path / "notebooks")
    readme = tmp_path / "README.md"
    readme.write_text(
        "| 00 | [![Open In Colab](x)](https://colab.research.google.com/github/a/b/blob/c/"
        "notebooks/00_tiny.ipynb) |\n"
    )
    args = ["links", str(path.parent), "--readme", str(readme)]
    assert main([*args, "--check"]) == 1
    printed = capsys.readouterr().out
    assert "out of date: notebooks/00_tiny.ipynb: cell 1 (badge)" in printed
    assert "cell 2 (setup)" in printed and "README.md: Colab badges" in printed

    assert main([*args, "--write"]) == 0
    cells = nbformat.read(path, as_version=4).cells
    assert cells[1].source == links.badge_markdown("notebooks/00_tiny.ipynb")
    assert cells[2].source == links.setup_cell_source()
    assert links.colab_url("notebooks/00_tiny.ipynb") in readme.read_text()
    assert main([*args, "--check"]) == 0


def test_a_notebook_without_the_opening_cells_is_refused():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# 00 · Tiny")]
    with pytest.raises(ValueError, match="cell 1 must be the markdown cell with the Colab badge"):
        links.sync_notebook(notebook, "notebooks/00_tiny.ipynb")


def test_colab_installs_the_release_of_pyproject_not_a_branch():
    import tomllib

    import medtl_helpers

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert medtl_helpers.__version__ == version  # one version: the package's and the tag's
    assert links.release_tag() == f"v{version}"
    assert links.install_spec().endswith(f"@v{version}") and "@main" not in links.install_spec()
