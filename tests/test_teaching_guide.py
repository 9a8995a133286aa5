"""docs/TEACHING.md against its sources: the notebooks' learning goals, `make course`'s timings.md
and the notebooks that reuse finished runs (`python -m medtl_helpers guide`)."""

import json
import re
from pathlib import Path

import pytest

from medtl_helpers.course.cli import main
from medtl_helpers.course.guide import (
    generated_block,
    goals_markdown,
    read_timings,
    run_time_block,
)
from medtl_helpers.course.links import numbered_notebooks
from medtl_helpers.course.runner import NotebookRun, timings_markdown
from medtl_helpers.errors import MedtlError

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "TEACHING.md"
NOTEBOOKS = ROOT / "notebooks"


def write_notebook(path, *markdown):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown]
    path.write_text(
        json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )


def section(number: int) -> str:
    """Section `number` of the guide, from its heading to the next one."""
    text = GUIDE.read_text(encoding="utf-8")
    return re.search(rf"\n## {number}\. .*?(?=\n## |\Z)", text, re.S).group(0)


def test_section_3_is_the_notebooks_learning_goals():
    goals = generated_block(GUIDE.read_text(encoding="utf-8"), "learning goals")
    assert goals == goals_markdown(NOTEBOOKS) + "\n", "run `python -m medtl_helpers guide --write`"
    assert "**09 · Few-shot adaptation and meta-learning**\n- Say what meta-learning" in goals


def test_goals_are_read_from_each_notebooks_learning_goals_cell(tmp_path):
    write_notebook(tmp_path / "00_a.ipynb", "# 00 · First\n\nIntro.", "## Learning goals\n- One.\n")
    write_notebook(
        tmp_path / "01_b.ipynb", "# 01 · Second", "## Setup", "## Learning goals\n- Two."
    )
    write_notebook(tmp_path / "scratch.ipynb", "# not part of the course")
    assert goals_markdown(tmp_path) == "**00 · First**\n- One.\n\n**01 · Second**\n- Two."
    write_notebook(tmp_path / "02_c.ipynb", "# 02 · Third", "## Goals\n- Three.")
    with pytest.raises(MedtlError, match=r"02_c.ipynb has no markdown cell starting with '## Lea"):
        goals_markdown(tmp_path)


BLOCK = """| notebook | quick (2 cores) | cpu (real data, 2 cores) | gpu (T4) |
|---|---|---|---|
| 00 setup_and_data | 11.1 s | 45 s | not measured |
| 01 residual_blocks | 19.0 s | 449 s* | not measured |
| whole course | 0.5 min | 1.0 min | not measured |

The quick column is one `make course` on an idle machine.

The gpu column is one `make course` on a T4.
"""


def sample_timings(tmp_path, runs, device="cpu (AMD EPYC, 4 cores), 2 torch threads"):
    path = tmp_path / "timings.md"
    path.write_text(timings_markdown(runs, device, 3, ("2026-12-01", "2026-12-03")))
    return path


def test_a_timings_table_becomes_its_profiles_column(tmp_path, capsys):
    runs = [
        NotebookRun("00_setup_and_data", 7.25, "quick", "synthetic"),
        NotebookRun("02_new", 125.0, "quick", "synthetic"),
    ]
    timings = read_timings(sample_timings(tmp_path, runs))
    stems = ["00_setup_and_data", "01_residual_blocks", "02_new"]
    assert run_time_block(BLOCK, timings, stems).splitlines() == [
        "| notebook | quick (4 cores) | cpu (real data, 2 cores) | gpu (T4) |",
        "|---|---|---|---|",
        "| 00 setup_and_data | 7.2 s | 45 s | not measured |",
        "| 01 residual_blocks | not measured | 449 s* | not measured |",
        "| 02 new | 125 s | not measured | not measured |",
        "| whole course | 2.2 min (00, 02) | 1.0 min | not measured |",
        "",
        "The quick column is one `make course` with synthetic data on cpu (AMD EPYC, 4 cores), "
        "2 torch",
        "threads, measured 2026-12-01 to 2026-12-03.",
        "",
        "The gpu column is one `make course` on a T4.",
    ]
    gpu = [NotebookRun("01_residual_blocks", 3600.0, "gpu", "kermany-folder")]
    cpu = [NotebookRun("01_residual_blocks", 60.0, "cpu", "kermany-folder")]
    block = run_time_block(
        BLOCK, read_timings(sample_timings(tmp_path, gpu, "cuda (Tesla T4, 15 GiB)")), stems[:2]
    )
    assert block.splitlines()[0].endswith("| gpu (Tesla T4) |")
    assert block.splitlines()[4] == "| whole course | 0.5 min | 1.0 min | 60 min (01) |"
    assert (  # a timings.md from before the runner recorded threads and dates still reads
        "The gpu column is one `make course` with kermany-folder data on cuda (Tesla T4, 15 GiB), "
        "measured 2026-12-01 to 2026-12-03. The quick column is one `make course` on an idle"
    ) in " ".join(block.split())
    capsys.readouterr()
    run_time_block(BLOCK, read_timings(sample_timings(tmp_path, cpu)), stems[:2])
    assert "01 residual_blocks's old figure '449 s*' carried footnote *" in capsys.readouterr().out


def test_a_timings_table_with_a_failed_notebook_is_refused(tmp_path):
    runs = [NotebookRun("04_training", 9.0, "quick", "synthetic", "RuntimeError: out of memory")]
    with pytest.raises(MedtlError, match=r"04_training: RuntimeError: out of memory\. Fix them"):
        read_timings(sample_timings(tmp_path, runs))
    with pytest.raises(MedtlError, match=r"missing.md does not exist: run `python -m medtl_h"):
        read_timings(tmp_path / "missing.md")


def test_the_guide_command_checks_and_writes_the_generated_blocks(tmp_path, capsys):
    folder = tmp_path / "nb"
    folder.mkdir()
    write_notebook(folder / "00_setup_and_data.ipynb", "# 00 · Setup", "## Learning goals\n- New.")
    write_notebook(folder / "01_residual_blocks.ipynb", "# 01 · Blocks", "## Learning goals\n- B.")
    guide = tmp_path / "TEACHING.md"
    guide.write_text(
        f"# Guide\n\n<!-- generated: run times -->\n{BLOCK}<!-- end generated -->\n\nKept.\n\n"
        "<!-- generated: learning goals -->\n**00 · Setup**\n- Old.\n<!-- end generated -->\n"
    )
    runs = [NotebookRun(s, 30.0, "quick", "synthetic") for s in ("00_setup_and_data", "01_b")]
    timings = sample_timings(tmp_path, runs)
    args = ["guide", "--guide", str(guide), "--notebooks", str(folder), "--timings", str(timings)]
    before = guide.read_text()
    assert main(args) == 1 and guide.read_text() == before
    out = capsys.readouterr().out
    assert "-- Old.\n" in out and "+- New.\n" in out and "+| 00 setup_and_data | 30.0 s |" in out
    assert f"{guide} is stale: run `python -m medtl_helpers guide --write --guide {guide}" in out
    assert main([*args, "--write"]) == 0
    text = guide.read_text()
    assert "\n\n**00 · Setup**\n- New.\n\n**01 · Blocks**\n- B.\n\n<!-- end generated -->\n" in text
    assert "| whole course | 0.5 min (00) | 1.0 min | not measured |\n" in text
    assert "measured 2026-12-01 to 2026-12-03.\n" in text and "\n\nKept.\n" in text
    assert main(args) == 0 and capsys.readouterr().out.endswith(f"{guide} is current\n")
    assert main(["guide", "--guide", str(tmp_path / "none.md")]) == 2
    assert "none.md does not exist: run this in the course folder" in capsys.readouterr().err


def reuse_clause(number: int) -> str:
    """The clause of section `number` that names the notebooks training through fit_or_load."""
    text = " ".join(section(number).split())
    clauses = [c for c in re.split(r"[.;] ", text) if "train through `fit_or_load`" in c]
    assert len(clauses) == 1, f"section {number}: {clauses}"
    return text[text.index(clauses[0]) :].partition(". ")[0]


def named_notebooks(clause: str) -> set[str]:
    """The notebook numbers a clause names: "04, 05 and 09", or a range "04–07"."""
    numbers = set()
    for first, last in re.findall(r"\b(\d\d)(?:–(\d\d))?\b", clause.partition(";")[0]):
        numbers |= {f"{n:02d}" for n in range(int(first), int(last or first) + 1)}
    return numbers


def calling(name: str) -> set[str]:
    """The numbers of the notebooks whose code cells call `name`."""
    found = set()
    for path in numbered_notebooks(NOTEBOOKS):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        if re.search(rf"\b{name}\(", code):
            found.add(path.name[:2])
    return found


@pytest.mark.parametrize("number", [2, 6])
def test_the_guide_names_the_notebooks_that_reuse_finished_runs(number):
    clause = reuse_clause(number)
    assert named_notebooks(clause) == calling("fit_or_load"), clause
    for own_store in calling("learning_curve"):  # learning_curve keeps its points itself
        assert f"{own_store} keeps its own store, `runs/<profile>/data_efficiency/`" in clause
