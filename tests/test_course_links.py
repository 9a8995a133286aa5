"""The repository URL lives in one place: badges, setup cells and the README all come from it."""

from __future__ import annotations

import re
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
    repo, ref = links.REPOSITORY, links.REF
    assert links.colab_url("notebooks/00_a.ipynb") == (
        f"https://colab.research.google.com/github/{repo}/blob/{ref}/notebooks/00_a.ipynb"
    )
    assert links.kaggle_url("notebooks/00_a.ipynb") == (
        f"https://kaggle.com/kernels/welcome?src=https://github.com/{repo}/blob/{ref}/"
        "notebooks/00_a.ipynb"
    )
    assert links.install_spec() == f"medtl_helpers @ git+https://github.com/{repo}@{ref}"
    assert f'%pip install --quiet "{links.install_spec()}"' in (links.setup_cell_source())


def test_setup_cell_does_nothing_locally(capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    exec(python_only(links.setup_cell_source()), {})
    assert capsys.readouterr().out == ""


def test_setup_cell_on_colab_reports_the_gpu(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
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
    assert text.count(links.KAGGLE_BADGE_IMAGE) == len(SYLLABUS)


def test_the_notebooks_readme_names_the_notebooks_that_exist():
    """It said 00 to 08 after 09 was added."""
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
    assert "cell 2 (setup)" in printed and "README.md: Colab and Kaggle badges" in printed

    assert main([*args, "--write"]) == 0
    cells = nbformat.read(path, as_version=4).cells
    assert cells[1].source == links.badge_markdown("notebooks/00_tiny.ipynb")
    assert cells[2].source == links.setup_cell_source(gpu=False)  # 00 trains nothing
    assert links.colab_url("notebooks/00_tiny.ipynb") in readme.read_text()
    assert f"]({links.kaggle_url('notebooks/00_tiny.ipynb')}) |" in readme.read_text()
    assert main([*args, "--check"]) == 0


def test_a_notebook_without_the_opening_cells_is_refused():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# 00 · Tiny")]
    with pytest.raises(ValueError, match="cell 1 must be the markdown cell with the Colab badge"):
        links.sync_notebook(notebook, "notebooks/00_tiny.ipynb")


def test_one_version_and_one_ref_for_badges_and_the_install():
    """The setup cell installed @v0.1.0, a tag the repository did not have, while the badges
    opened main: a notebook must run with the package of its own ref."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the dev extra installs tomli there
        import tomli as tomllib

    import medtl_helpers

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert medtl_helpers.__version__ == version  # one version: the package's and a release's tag
    assert links.install_spec().endswith(f"@{links.REF}")
    assert f"/blob/{links.REF}/" in links.colab_url("notebooks/00_a.ipynb")
    assert f"/blob/{links.REF}/" in links.kaggle_url("notebooks/00_a.ipynb")
    if re.fullmatch(r"v\d.*", links.REF):  # a release points at its own tag, never another
        assert links.REF == links.release_tag()
    else:
        assert links.REF == "main"


def opening(path: Path) -> tuple[list[tuple[str, str, str]], tuple[str, str]]:
    """(repository, ref, notebook) of each badge link in cell 1, and (repository, ref) installed."""
    cells = nbformat.read(path, as_version=4).cells
    badges = re.findall(
        r"github(?:\.com)?/([\w.-]+/[\w.-]+)/blob/([^/]+)/(\S+?\.ipynb)", cells[1].source
    )
    install = re.search(r'git\+https://github\.com/([\w.-]+/[\w.-]+)@([^"]+)"', cells[2].source)
    return badges, install.groups()


@pytest.mark.parametrize("path", links.numbered_notebooks(ROOT / "notebooks"), ids=lambda p: p.name)
def test_each_notebooks_badges_open_it_at_the_ref_its_setup_cell_installs(path):
    badges, install = opening(path)
    for repository, ref, notebook in badges:
        assert (repository, ref) == install, f"{path.name}: badge {ref}, install {install[1]}"
        assert notebook == f"notebooks/{path.name}"  # each link names its own notebook
    source = nbformat.read(path, as_version=4).cells[1].source
    assert len(badges) == 2 and source.index("colab.research") < source.index("kaggle.com")


def test_the_readmes_kaggle_badge_opens_the_same_notebook_as_its_colab_badge():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if links.BADGE_IMAGE in line]
    assert len(rows) == len(SYLLABUS)
    for row in rows:
        colab = links.readme_notebooks(row)
        kaggle = re.findall(
            r"kernels/welcome\?src=https://github\.com/\S+?/blob/[^/]+/(\S+?)\)", row
        )
        assert kaggle == colab and len(colab) == 1
        assert f"({links.KAGGLE_BADGE_IMAGE})" in row


def test_setup_cell_on_kaggle_installs_and_names_kaggles_gpu_menu(capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    exec(python_only(links.setup_cell_source()), {})
    assert capsys.readouterr().out == (
        "No GPU: pick Settings > Accelerator > GPU T4 x2, then run again.\n"
    )
    exec(python_only(links.setup_cell_source(gpu=False)), {})
    assert capsys.readouterr().out == "No GPU, and none needed: this notebook trains nothing.\n"
    source = links.setup_cell_source()
    assert source.count("%pip install") == 1 and "if on_colab or on_kaggle:" in source


TRAINING = re.compile(r"\bfit(_or_load)?\(|\.backward\(|\blearning_curve\(")


@pytest.mark.parametrize("path", links.numbered_notebooks(ROOT / "notebooks"), ids=lambda p: p.name)
def test_a_notebook_that_trains_asks_colab_for_a_gpu_runtime(path):
    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    trains = bool(TRAINING.search(code.replace("probe.fit(", "")))  # scikit-learn's fit is not
    metadata = notebook.metadata
    assert links.needs_gpu(path.name) == trains, f"{path.name}: change CPU_NOTEBOOKS in links.py"
    if trains:
        assert metadata["accelerator"] == "GPU" and metadata["colab"]["gpuType"] == "T4"
        assert "No GPU: pick Runtime > Change runtime type > T4 GPU" in notebook.cells[2].source
    else:
        assert "accelerator" not in metadata and "gpuType" not in metadata.get("colab", {})
        assert "none needed: this notebook trains nothing" in notebook.cells[2].source


def test_runtime_metadata_is_written_and_undone_by_links(tmp_path):
    notebook = nbformat.read(drifted_notebook(tmp_path / "notebooks"), as_version=4)
    notebook.metadata["colab"] = {"provenance": []}
    path = "notebooks/04_tiny.ipynb"
    assert links.sync_notebook(notebook, path)[-1] == (
        f"{path}: metadata (asks Colab for a GPU runtime)"
    )
    assert notebook.metadata["accelerator"] == "GPU"
    assert notebook.metadata["colab"] == {"provenance": [], "gpuType": "T4"}  # Colab's own kept
    assert links.sync_notebook(notebook, path) == []
    path = "notebooks/00_tiny.ipynb"  # trains nothing: the GPU request is taken away again
    assert links.sync_notebook(notebook, path)[-1] == (
        f"{path}: metadata (asks Colab for the CPU runtime)"
    )
    assert "accelerator" not in notebook.metadata
    assert notebook.metadata["colab"] == {"provenance": []}
