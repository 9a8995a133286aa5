"""tools/build_site.py (`make site`): the executed notebooks, the teacher's guide and the API
reference as a static website, built from two small executed notebooks written here."""

from __future__ import annotations

import base64
import datetime
import io
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import load_script
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
build_site = load_script("tools", "build_site")

REPORT = (
    "device     cpu (Intel(R) Xeon(R) Processor, 2 cores); 1 CPU threads\n"
    "versions   python 3.11.7, torch 2.4.0, torchvision 0.19.0, medtl_helpers 0.1.0\n"
    "running on Linux\n"
    "profile    quick: 64 px, batch 32, 1 epoch(s), train images 800\n"
    "weights    none: random initialisation (MEDTL_PRETRAINED=none, or the quick profile's "
    "default)\n"
    "precision  fp32\n"
)
BANNER = (
    "*** SYNTHETIC X-RAYS: numbers below are NOT about real patients ***\n"
    "Data source: synthetic (1200 generated images); train 802 / val 153 / test 181 images\n"
)
TIMINGS = """Profile quick on cpu (Intel(R) Xeon(R) Processor, 2 cores), 1 torch thread.

| notebook | seconds | data | status |
|---|---|---|---|
| 04_pneumonia_training_gpu | 28.6 | synthetic | ok |
| 1 of 10 notebooks | 0.5 min | | |

Measured 2026-11-30.
"""
NAMES = {"04_pneumonia_training_gpu": "Training", "08_domain_shift_and_adaptation": "Shift"}
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}
NOT_IN_TIMINGS = datetime.datetime(2026, 10, 2, 12, 0).timestamp()


def png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def executed_notebook(number: str, title: str, prose: str) -> nbformat.NotebookNode:
    """A title cell, the imports cell with its environment report and data banner, a figure."""
    imports = nbformat.v4.new_code_cell("print(environment_report())", execution_count=1)
    imports.outputs = [
        nbformat.v4.new_output("stream", text=REPORT),
        nbformat.v4.new_output("stream", text=BANNER),
    ]
    figure = nbformat.v4.new_code_cell("plt.plot([0, 1])", execution_count=2)
    figure.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": png(), "text/plain": "<Fig>"})
    ]
    cells = [nbformat.v4.new_markdown_cell(f"# {number} · {title}\n\n{prose}"), imports, figure]
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": KERNEL})


@pytest.fixture
def executed(tmp_path) -> Path:
    folder = tmp_path / "executed"
    folder.mkdir()
    for name, title in NAMES.items():
        prose = "AdaBN re-estimates BatchNorm statistics." if name.startswith("08") else "Recipe."
        nbformat.write(executed_notebook(name[:2], title, prose), folder / f"{name}.ipynb")
    os.utime(folder / "08_domain_shift_and_adaptation.ipynb", (NOT_IN_TIMINGS, NOT_IN_TIMINGS))
    (folder / "timings.md").write_text(TIMINGS)
    return folder


@pytest.fixture
def staged(executed, tmp_path) -> Path:
    """The staging folder, with mkdocs.yml and docs/."""
    build_site.stage(executed, tmp_path / "stage", tmp_path / "site")
    return tmp_path / "stage"


def staged_notebook(stage: Path, name: str) -> nbformat.NotebookNode:
    return nbformat.read(stage / "docs" / "notebooks" / f"{name}.ipynb", as_version=4)


def test_each_page_says_what_its_notebook_was_executed_with(staged):
    notebook = staged_notebook(staged, "04_pneumonia_training_gpu")
    assert notebook.cells[0].source.startswith("# 04 · Training")
    assert notebook.cells[2].source == "print(environment_report())"
    executed_with = notebook.cells[1]
    assert executed_with.cell_type == "markdown"
    assert executed_with.source.splitlines()[0] == (
        "**Executed with** profile quick (64 px, batch 32, 1 epoch(s), train images 800), "
        "data source synthetic (1200 generated images), weights none (random initialisation), "
        "on device cpu (Intel(R) Xeon(R) Processor, 2 cores), "
        "on 2026-11-30 (the date in timings.md)."
    )


def test_a_notebook_timings_md_does_not_list_is_dated_by_its_file(staged):
    source = staged_notebook(staged, "08_domain_shift_and_adaptation").cells[1].source
    assert "on 2026-10-02 (the executed file's modification time)." in source


def test_what_a_notebook_did_not_print_is_unknown():
    notebook = executed_notebook("04", "Training", "")
    notebook.cells[1].outputs = []
    text = build_site.executed_with("04_pneumonia_training_gpu", notebook, "", NOT_IN_TIMINGS)
    assert text.startswith(
        "**Executed with** profile unknown, data source unknown, weights unknown, "
        "on device unknown, on 2026-10-02"
    )


def test_a_failed_run_says_so_under_the_title():
    timings = TIMINGS.replace("| ok |", "| FAILED: KeyError: 'auroc' |")
    notebook = executed_notebook("04", "Training", "")
    text = build_site.executed_with("04_pneumonia_training_gpu", notebook, timings, 0.0)
    assert "**This run failed**: KeyError: 'auroc'" in text


def test_the_colab_and_download_links_name_their_own_notebook(staged):
    for name in NAMES:
        source = staged_notebook(staged, name).cells[1].source
        colab = re.findall(r"\[Open in Colab\]\(([^)]+)\)", source)
        assert colab == [
            f"https://colab.research.google.com/github/medtl-course/medtl/blob/main/notebooks/{name}.ipynb"
        ]
        # the page's URL is notebooks/NAME/, and mkdocs-jupyter copies the .ipynb there
        assert re.findall(r"\[download \.ipynb\]\(([^)]+)\)", source) == [f"{name}.ipynb"]


def test_the_landing_page_links_every_staged_notebook(staged):
    index = (staged / "docs" / "index.md").read_text()
    linked = re.findall(
        r"^\| (\d\d) \| \[([^]]+)\]\(notebooks/(\S+)\.ipynb\) \| (.+) \|$", index, re.M
    )
    assert [(n, t, name) for n, t, name, _ in linked] == [
        ("04", "Training", "04_pneumonia_training_gpu"),
        ("08", "Shift", "08_domain_shift_and_adaptation"),
    ]
    described = {n: what for n, _, _, what in linked}
    assert described["08"].startswith("simulated hospitals")  # README's syllabus row
    assert "make course" in index and "make test" in index
    assert "Not executed for this site: 00_setup_and_data" in index
    nav = yaml.safe_load((staged / "mkdocs.yml").read_text())["nav"]
    assert [list(entry.values())[0] for entry in nav[1]["Notebooks"]] == [
        f"notebooks/{name}.ipynb" for name in NAMES
    ]
    assert [list(entry)[0] for entry in nav] == [
        "Home", "Notebooks", "Teaching", "Benchmarks", "Data", "API reference"
    ]  # fmt: skip


def test_without_executed_copies_it_says_how_to_make_them_and_exits_2(tmp_path, capsys):
    empty = tmp_path / "runs-notebooks"
    empty.mkdir()
    args = ["--executed", str(empty), "--stage", str(tmp_path / "s"), "--site", str(tmp_path / "w")]
    assert build_site.main(args) == 2
    err = capsys.readouterr().err
    assert f"No executed notebooks in {empty}" in err
    assert "`make course`" in err and "`make site PROFILE=quick`" in err
    assert not (tmp_path / "s").exists() and not (tmp_path / "w").exists()


def test_links_to_pages_point_at_pages_and_others_at_github():
    text = (
        "[r](../benchmarks/RESULTS.md#ddp) [d](../data/README.md) [w](https://x.org/a.md) "
        "[h](#here)\n```\n[kept](../data/README.md)\n```\n"
    )
    pages = {"benchmarks/RESULTS.md": "benchmarks.md"}
    out = build_site.rewrite_links(text, "docs/TEACHING.md", "teaching.md", pages)
    assert out.splitlines() == [
        "[r](benchmarks.md#ddp) "
        "[d](https://github.com/medtl-course/medtl/blob/main/data/README.md) "
        "[w](https://x.org/a.md) [h](#here)",
        "```",
        "[kept](../data/README.md)",
        "```",
    ]


def test_a_section_is_cut_at_its_next_heading_and_not_at_a_comment_in_code():
    text = "# T\n\n## Data\n\ntext\n\n```bash\n## not a heading\n```\n\n## Next\n\nother\n"
    assert build_site.markdown_section(text, "Data") == (
        "# Data\n\ntext\n\n```bash\n## not a heading\n```\n"
    )
    with pytest.raises(ValueError, match="no section `## Missing`"):
        build_site.markdown_section(text, "Missing")


def image_sources(page: Path) -> list[str]:
    return re.findall(r'<img[^>]*\ssrc="([^"]+)"', page.read_text())


def test_mkdocs_builds_the_site_with_figures_and_search(executed, tmp_path, capsys):
    pytest.importorskip(
        "mkdocs", reason="the site extra is not installed: pip install -e '.[site]'"
    )
    site = tmp_path / "site"
    args = ["--executed", str(executed), "--stage", str(tmp_path / "stage"), "--site", str(site)]
    assert build_site.main(args) == 0
    assert re.search(r"built .* from 2 executed notebooks in [0-9.]+ s", capsys.readouterr().out)
    assert (site / "index.html").is_file()
    for name in NAMES:
        page = site / "notebooks" / name / "index.html"
        assert "Executed with" in page.read_text()
        assert (site / "notebooks" / name / f"{name}.ipynb").is_file()  # the download link's file
        figures = [s for s in image_sources(page) if "colab" not in s and "kaggle" not in s]
        assert figures, f"{name}: no figure on its page"
        for src in figures:
            if src.startswith("data:image/png;base64,"):
                assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
            else:
                assert (page.parent / src).is_file(), f"{name}: {src} is missing"
    index = json.loads((site / "search" / "search_index.json").read_text())
    found = {doc["location"].split("#")[0] for doc in index["docs"] if "AdaBN" in doc["text"]}
    assert "notebooks/08_domain_shift_and_adaptation/" in found
    assert "notebooks/04_pneumonia_training_gpu/" not in found


def test_the_readme_links_the_address_the_site_is_published_at(staged):
    from medtl_helpers.course.links import REPOSITORY

    owner, name = REPOSITORY.split("/")
    url = yaml.safe_load((staged / "mkdocs.yml").read_text())["site_url"]
    assert url == f"https://{owner}.github.io/{name}/"
    section = (ROOT / "README.md").read_text().split("\n## The course as a website\n")[1]
    assert f"]({url})" in section.split("\n## ")[0]


def test_only_a_notebook_that_draws_and_has_no_figure_is_named(tmp_path, capsys):
    (tmp_path / "docs" / "notebooks").mkdir(parents=True)
    lost = executed_notebook("01", "Drawn", "Recipe.")
    lost.cells[2].outputs = []  # the figure cell ran with MPLBACKEND=Agg: no image
    plain = executed_notebook("03", "Plain", "Recipe.")
    plain.cells = plain.cells[:2]  # nothing that draws
    for name, notebook in (("01_drawn", lost), ("03_plain", plain)):
        nbformat.write(notebook, tmp_path / f"{name}.ipynb")
        build_site.stage_notebook(tmp_path / f"{name}.ipynb", tmp_path / "docs", "")
    printed = capsys.readouterr().out
    assert "01_drawn.ipynb: no figure in its outputs" in printed
    assert "03_plain" not in printed
