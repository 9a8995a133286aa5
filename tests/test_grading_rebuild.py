"""What a student wrote reaches the graded copy: answers, predictions, cells added elsewhere; and
a submission whose answers can't be found says why in each exercise's row."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from medtl_helpers.course.grade_report import report_markdown
from medtl_helpers.course.grading import OPEN, PREDICTION, course_notebook, rebuild
from medtl_helpers.course.outcomes import NOT_ATTEMPTED, Result, explain_unmatched

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NB09 = NOTEBOOKS / "09_few_shot_and_meta_learning.ipynb"
GUESS = 'PREDICTION = {"prototypes (euclidean)"}  # my guess\nprint(sorted(methods))'


@pytest.fixture(scope="module")
def course09():
    return course_notebook(NB09)


def _index(notebook, tag: str) -> int:
    return next(
        i for i, c in enumerate(notebook.cells)
        if c.cell_type == "code" and tag in c.metadata.get("tags", [])
    )  # fmt: skip


def test_a_prediction_reaches_the_graded_copy_unflagged(course09):
    submitted = copy.deepcopy(course09.template)
    at = _index(submitted, PREDICTION)
    assert submitted.cells[at].cell_type == "code" and "PREDICTION" in submitted.cells[at].source
    submitted.cells[at].source = GUESS
    rebuilt = rebuild(submitted, True, course09)
    cell = next(c for c in rebuilt.notebook.cells if c.get("id") == submitted.cells[at].id)
    assert cell.source == GUESS and cell.metadata["grade"] == {"prediction": True}
    assert not rebuilt.flags and not any("edited" in note for note in rebuilt.notes)


def test_an_answer_written_into_a_question_cell_is_kept(course09):
    submitted = copy.deepcopy(course09.template)
    at = next(i for i, c in enumerate(submitted.cells) if c.source.startswith("**Questions"))
    assert OPEN in submitted.cells[at].metadata["tags"]
    submitted.cells[at].source += "\n\nMy answers: 1. a new scanner at the same hospital ..."
    rebuilt = rebuild(submitted, True, course09)
    kept = next(c for c in rebuilt.notebook.cells if c.get("id") == submitted.cells[at].id)
    assert kept.source.endswith("My answers: 1. a new scanner at the same hospital ...")
    assert kept.metadata["grade"] == {"open": True} and not rebuilt.flags


def test_cells_added_outside_the_answers_are_kept_as_written_and_code_is_not_run(course09):
    submitted = copy.deepcopy(course09.template)
    questions = next(i for i, c in enumerate(submitted.cells) if c.source.startswith("**Questions"))
    reply = new_markdown_cell("1. A new scanner at the same hospital ...")
    scratch = new_code_cell("print('trying something')")
    submitted.cells[questions + 1 : questions + 1] = [reply, scratch]
    rebuilt = rebuild(submitted, True, course09)
    cells = rebuilt.notebook.cells
    at = next(i for i, c in enumerate(cells) if c.source.startswith("**Questions"))
    assert cells[at + 1].cell_type == "markdown" and cells[at + 1].source == reply.source
    assert cells[at + 2].cell_type == "raw" and cells[at + 2].source.endswith(scratch.source)
    assert "not run by grade" in cells[at + 2].source
    assert any("1 code cells added outside the answers were not run" in n for n in rebuilt.notes)


def test_every_prediction_and_open_question_is_listed_from_the_tags():
    found = {path.name[:2]: course_notebook(path).to_read for path in sorted(NOTEBOOKS.glob("0*"))}
    assert found["09"][0].startswith("09.3 (prediction): Predict first: at K = 1")
    assert found["09"][1].startswith("09 questions (open): Questions to think about")
    assert found["01"][0].startswith("01.3 (prediction, open): Before running anything, predict")
    assert found["00"][0].startswith("00.2 (open): Compute the pneumonia share")
    assert found["00"][1].startswith("00.3 (open): How many validation images")
    for path in sorted(NOTEBOOKS.glob("0*.ipynb")):  # the tags are where the words are
        notebook = nbformat.read(path, as_version=4)
        tail = notebook.cells[next(i for i, c in enumerate(notebook.cells)
                                   if c.source.startswith("## Exercises")):]  # fmt: skip
        for cell in tail:
            tags = cell.metadata.get("tags", [])
            if cell.cell_type != "markdown" or cell.source.startswith("## Summary"):
                continue
            if re.search(r"\bPredict\b|\bpredict (how|its|which|what|whether)\b", cell.source):
                assert PREDICTION in tags, (path.name, cell.source[:60])
            if re.match(r"\*\*(Questions to think about|To think about)", cell.source):
                assert OPEN in tags, (path.name, cell.source[:60])
    report = report_markdown([], [], {}, "limits", [f"{found['09'][0]} (09_x.ipynb)"])
    assert "## Exercises to read" in report and "- 09.3 (prediction): Predict first" in report


def test_a_notebook_without_ids_or_tags_says_why_in_each_row(course09):
    submitted = copy.deepcopy(course09.template)
    for cell in submitted.cells:
        cell.metadata.pop("tags", None)
    rebuilt = rebuild(submitted, False, course09)
    assert set(rebuilt.unmatched) == {e.key for e in course09.exercises}
    results = [Result(e, NOT_ATTEMPTED, "NotImplementedError: ...") for e in course09.checked]
    for result in explain_unmatched(results, rebuilt):
        assert result.message.startswith("no answer matched: the notebook has no cell ids and 0")


def test_grade_fails_when_nothing_was_graded_and_warns_about_an_earlier_run(tmp_path, capsys):
    from medtl_helpers.course.cli import main

    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "ivy_01.pdf").write_bytes(b"%PDF-1.4\n")
    out = tmp_path / "grades"
    argv = ["grade", str(tmp_path / "subs"), "--out", str(out), "--notebooks", str(NOTEBOOKS)]
    assert main(argv) == 1  # 0 of 1 graded: a failure a script or make can see
    assert "0 of 1 submissions graded" in capsys.readouterr().out
    assert main(argv) == 1
    assert f"{out} holds an earlier grading run" in capsys.readouterr().out
