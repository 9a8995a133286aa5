"""`grade`: made-up submissions built from the real student copies of 01 and 03, graded once.

The class (built in a temporary folder by `make_class`): alice hands in 01 and 03 all correct;
mallory tampers (an edited check cell, a redefined checker, a patched checker module) around wrong
answers; erin's first answer loops forever; frank writes the substring pitfall and leaves a stub;
gina's first answer kills the kernel; henry's file is cut off, ivy sends a PDF, kate a JSON file
that is no notebook, and jack names notebook 03 as 01.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest
from conftest import filled, solutions

from medtl_helpers.course.checks import check_basic_block, check_bottleneck_params
from medtl_helpers.course.cli import main
from medtl_helpers.course.grade_report import (
    DEFAULT_POINTS,
    gradebook_rows,
    load_weights,
    points,
)
from medtl_helpers.course.gradebook import (
    Submission,
    find_submissions,
    grade_class,
    prepare,
    student_and_number,
)
from medtl_helpers.course.grading import (
    CourseNotebook,
    Exercise,
    GradingError,
    Rebuilt,
    course_notebook,
    identify,
    read_submission,
    rebuild,
)
from medtl_helpers.course.outcomes import (
    KERNEL_DIED,
    TIMED_OUT,
    Execution,
    Result,
    kernel_environment,
    outcome,
    run_submission,
)
from medtl_helpers.course.student import build_student
from medtl_helpers.course.tampering import GUARD, checker_calls, genuine, guarded, tampering

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NB01, NB03 = "01_residual_blocks", "03_freezing_strategies"
# answer and check cell ids of the student copies (the instructor's solution and check cells)
BLOCK, BLOCK_CHECK, COUNT, COUNT_CHECK = "02524771", "aedc1cdf", "a539c5bc", "034f7b8f"
FREEZE, PARTIAL = "159fffd9", "085e3b78"
CELL_TIMEOUT, NOTEBOOK_TIMEOUT = 6, 240

NO_FINAL_RELU = '''\
class MyBasicBlock(ResidualBlock):
    """My block: conv-bn-relu-conv-bn, plus the shortcut."""

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + shortcut
'''
REDEFINED_CHECKER = """

def check_basic_block(block_class):
    print("Correct: your block matches the reference.")
"""
BN_LEFT_OUT = "bottleneck_params = 256 * 64 + 64 * 64 * 9 + 64 * 256  # three convs\n"
PATCHED_CHECKER = """\
import medtl_helpers.course.checks.nb01 as nb01
nb01.check_bottleneck_params = lambda answer: print("Correct: trust me.")
from medtl_helpers.course.checks.nb01 import check_bottleneck_params
"""
SUBSTRING = """\
PARTS = {"stem": ("conv1", "bn1"), "head": ("fc",)}


def freeze_groups(model, groups):
    parts = [part for group in groups for part in PARTS.get(group, (group,))]
    for name, param in model.named_parameters():
        param.requires_grad = not any(part in name for part in parts)
"""
LOOP = "while True:  # waiting for inspiration\n    pass\n"
KILL = "import os\nimport signal\n\nos.kill(os.getpid(), signal.SIGKILL)\n"


def make_class(folder: Path) -> Path:
    """The made-up class of the module docstring, as submitted files under `folder`/submissions."""
    copies = folder / "student"
    build_student(NOTEBOOKS, copies)
    c01, c03 = copies / f"{NB01}.ipynb", copies / f"{NB03}.ipynb"
    s01, s03 = solutions(NB01), solutions(NB03)
    out = folder / "submissions"
    filled(c01, {BLOCK: s01[BLOCK], COUNT: s01[COUNT]}, out / f"alice_{NB01}.ipynb")
    filled(c03, {FREEZE: s03[FREEZE], PARTIAL: s03[PARTIAL]}, out / f"alice_{NB03}.ipynb")
    filled(
        c01,
        {BLOCK: NO_FINAL_RELU + REDEFINED_CHECKER, COUNT: BN_LEFT_OUT + PATCHED_CHECKER},
        out / f"mallory_{NB01}.ipynb",
        **{BLOCK_CHECK: 'print("Correct: your block matches the reference.")'},
    )
    filled(c01, {BLOCK: LOOP, COUNT: s01[COUNT]}, out / "erin" / f"{NB01}.ipynb")
    filled(c03, {FREEZE: SUBSTRING}, out / f"frank_{NB03}.ipynb")
    filled(c03, {FREEZE: KILL, PARTIAL: s03[PARTIAL]}, out / "gina-03.ipynb")
    filled(c03, {FREEZE: s03[FREEZE]}, out / f"jack_{NB01}.ipynb")
    text = c01.read_text()
    (out / f"henry_{NB01}.ipynb").write_text(text[: len(text) // 2])
    (out / "ivy_01.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    (out / "kate_01.ipynb").write_text(json.dumps({"answers": [1, 2]}))
    return out


# --- the class, graded once for the tests below -------------------------------------------------


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """(submissions, out folder, printed lines) for the made-up class, two at a time."""
    folder = tmp_path_factory.mktemp("class")
    submissions_folder = make_class(folder)
    out, printed = folder / "grades", io.StringIO()
    with redirect_stdout(printed):
        subs = grade_class(
            [submissions_folder], out, NOTEBOOKS, cell_timeout=CELL_TIMEOUT,
            notebook_timeout=NOTEBOOK_TIMEOUT, jobs=2,
        )  # fmt: skip
    return {f"{s.student}/{s.path.name}": s for s in subs}, out, printed.getvalue()


def outcomes_of(submission: Submission) -> dict[str, str]:
    return {r.exercise.key: r.outcome for r in submission.results}


def message(submission: Submission, key: str) -> str:
    return next(r.message for r in submission.results if r.exercise.key == key)


def test_each_submission_gets_its_outcomes(graded):
    subs, _, printed = graded
    assert {name: outcomes_of(s) for name, s in subs.items() if not s.problem} == {
        f"alice/alice_{NB01}.ipynb": {"01.1": "passed", "01.2": "passed"},
        f"alice/alice_{NB03}.ipynb": {"03.1": "passed", "03.2": "passed"},
        f"mallory/mallory_{NB01}.ipynb": {"01.1": "wrong", "01.2": "wrong"},
        f"erin/{NB01}.ipynb": {"01.1": "timeout", "01.2": "passed"},
        f"frank/frank_{NB03}.ipynb": {"03.1": "wrong", "03.2": "not attempted"},
        "gina/gina-03.ipynb": {"03.1": "error", "03.2": "error"},
    }
    erin, frank, gina = subs[f"erin/{NB01}.ipynb"], subs[f"frank/frank_{NB03}.ipynb"], subs[
        "gina/gina-03.ipynb"
    ]  # fmt: skip
    assert message(erin, "01.1") == f"the answer was stopped at its time limit of {CELL_TIMEOUT} s"
    assert 'substring test such as `"conv1" in name`' in message(frank, "03.1")
    assert message(frank, "03.2").startswith("NotImplementedError: your resnet34_partial is not")
    assert message(gina, "03.1") == "the kernel died while running the answer"
    assert re.fullmatch(r"not run: the kernel died in cell \d+ \(the answer to 03\.1\)",
                        message(gina, "03.2"))  # fmt: skip
    assert any("stopped early: the kernel died" in note for note in gina.notes)
    assert "alice          alice_01_residual_blocks.ipynb       3/3 points" in printed
    for sub in subs.values():
        assert sub.seconds < NOTEBOOK_TIMEOUT
    assert erin.seconds > CELL_TIMEOUT  # the loop ran until it was stopped


def test_files_that_are_no_gradable_notebook_get_a_row_saying_why(graded):
    subs, _, _ = graded
    problems = {name: s.problem for name, s in subs.items() if s.problem}
    assert set(problems) == {
        f"henry/henry_{NB01}.ipynb", "ivy/ivy_01.pdf", "kate/kate_01.ipynb",
        f"jack/jack_{NB01}.ipynb",
    }  # fmt: skip
    assert problems[f"henry/henry_{NB01}.ipynb"].startswith("corrupt notebook: invalid JSON at")
    assert problems["ivy/ivy_01.pdf"].startswith("not a notebook: ivy_01.pdf is a binary file")
    assert problems["kate/kate_01.ipynb"] == (
        "not a notebook: kate_01.ipynb is JSON without notebook cells"
    )
    assert problems[f"jack/jack_{NB01}.ipynb"] == (
        f"another notebook than expected: this is {NB03} (by its cell ids), but 01 was expected"
    )


def checker_message(check, answer) -> str:
    """What the course's checker says about `answer`, run here rather than in a kernel."""
    try:
        with redirect_stdout(io.StringIO()) as printed:
            check(answer)
    except AssertionError as err:
        return str(err)
    return printed.getvalue().strip()


def test_tampered_submission_scores_what_its_answers_deserve(graded):
    """Mallory's answers are wrong; an edited check cell that prints the success sentence, a
    redefined check_basic_block and a patched checker module change none of that."""
    subs, out, _ = graded
    mallory = subs[f"mallory/mallory_{NB01}.ipynb"]
    namespace: dict = {}
    exec(
        "import torch.nn.functional as F\nfrom torch import nn\n"
        + solutions_cell(NB01, "class ResidualBlock")
        + NO_FINAL_RELU,
        namespace,
    )
    assert message(mallory, "01.1") == checker_message(check_basic_block, namespace["MyBasicBlock"])
    assert "the final ReLU (after the addition) is missing" in message(mallory, "01.1")
    bn_left_out = 256 * 64 + 64 * 64 * 9 + 64 * 256
    assert message(mallory, "01.2") == checker_message(check_bottleneck_params, bn_left_out)
    assert mallory.flags == [
        "01.1: the answer defines check_basic_block, a checker's name",
        "01.2: the answer imports the module medtl_helpers.course.checks.nb01 as nb01",
        "01.2: the answer changes nb01.check_bottleneck_params",
        "01.1: the check cell was edited; the course's check cell was run",
        "01.2: the answer rebound medtl_helpers.course.checks.nb01.check_bottleneck_params",
    ]
    row = next(r for r in read_csv(out / "gradebook.csv") if r["student"] == "mallory")
    assert [row["01.1 basic_block"], row["01.2 bottleneck_params"], row["points"]] == ["0"] * 3
    executed = nbformat.read(out / "mallory" / f"{NB01}.ipynb", as_version=4)
    check = next(c for c in executed.cells if c.get("id") == BLOCK_CHECK)
    assert check.source.startswith(GUARD) and "print(" not in check.source
    assert check.outputs[-1].ename == "AssertionError"


def solutions_cell(stem: str, start: str) -> str:
    notebook = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    return next(c.source for c in notebook.cells if c.source.startswith(start)) + "\n"


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_gradebook_has_a_row_per_student_and_points_per_exercise(graded):
    _, out, _ = graded
    rows = {row["student"]: row for row in read_csv(out / "gradebook.csv")}
    header = list(read_csv(out / "gradebook.csv")[0])
    assert header == [
        "student", "01.1 basic_block", "01.2 bottleneck_params", "03.1 freeze_groups",
        "03.2 partial_count", "points", "out_of", "flags", "notes",
    ]  # fmt: skip
    scores = {name: [row[h] for h in header[1:7]] for name, row in rows.items()}
    assert scores == {
        "alice": ["2", "1", "2", "1", "6", "6"],
        "erin": ["0", "1", "", "", "1", "6"],
        "frank": ["", "", "0", "0", "0", "6"],
        "gina": ["", "", "0", "0", "0", "6"],
        "henry": ["", "", "", "", "0", "6"],
        "ivy": ["", "", "", "", "0", "6"],
        "jack": ["", "", "", "", "0", "6"],
        "kate": ["", "", "", "", "0", "6"],
        "mallory": ["0", "0", "", "", "0", "6"],
    }
    assert rows["ivy"]["notes"].startswith("ivy_01.pdf: not a notebook")
    assert rows["alice"]["flags"] == rows["alice"]["notes"] == ""
    outcomes = read_csv(out / "outcomes.csv")
    assert len(outcomes) == 12 and {r["outcome"] for r in outcomes} == {
        "passed", "wrong", "not attempted", "error", "timeout"
    }  # fmt: skip


def test_report_gives_pass_rates_and_the_most_frequent_messages(graded):
    _, out, _ = graded
    report = (out / "report.md").read_text()
    assert "6 of 10 submissions from 9 students graded" in report
    assert "| 01.1 | check_basic_block | 2 | 1 | 1 | 0 | 0 | 1 | 33% of 3 |" in report
    assert "| 01.2 | check_bottleneck_params | 1 | 2 | 1 | 0 | 0 | 0 | 67% of 3 |" in report
    assert "| 03.1 | check_freeze_groups | 2 | 1 | 1 | 0 | 1 | 0 | 33% of 3 |" in report
    assert "| 03.2 | check_partial_count | 1 | 1 | 0 | 1 | 1 | 0 | 33% of 3 |" in report
    assert "- 1 × wrong: your answer 69,632 is not the count: you left out the BatchNorm" in report
    assert "- mallory (mallory_01_residual_blocks.ipynb): 01.1: the answer defines" in report
    assert "- ivy (ivy_01.pdf): not a notebook" in report
    to_read = report.split("## Exercises to read\n\n")[1].split("## Not graded")[0]
    assert "no checker reads them" in to_read
    assert "- 01.3 (prediction, open): Before running anything, predict how the plain " in to_read
    assert "- 03.2 (prediction): Predict how many parameters ResNet-34" in to_read
    assert to_read.count("\n- ") == 2 and f"({NB01}.ipynb)" in to_read
    assert re.search(r"\| alice \| alice_01_residual_blocks.ipynb \| 01_residual_blocks \| "
                     r"\d+\.\d \| 2 of 2 \|", report)  # fmt: skip


def test_executed_copies_are_written_per_student(graded):
    _, out, _ = graded
    written = sorted(str(p.relative_to(out)) for p in out.glob("*/*.ipynb"))
    assert written == [
        f"alice/{NB01}.ipynb", f"alice/{NB03}.ipynb", f"erin/{NB01}.ipynb",
        f"frank/{NB03}.ipynb", f"gina/{NB03}.ipynb", f"mallory/{NB01}.ipynb",
    ]  # fmt: skip
    alice = nbformat.read(out / "alice" / f"{NB01}.ipynb", as_version=4)
    check = next(c for c in alice.cells if c.get("id") == COUNT_CHECK)
    assert check.outputs[0].text.startswith("Correct: Bottleneck(256, 64) has 70,400 parameters")


# --- without a kernel ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "flags"),
    [
        ("def check_basic_block(b):\n    pass", ["defines check_basic_block, a checker's name"]),
        ("check_partial_count = print", ["defines check_partial_count, a checker's name"]),
        (
            "from medtl_helpers.course.checks import check_partial_count as ok",
            ["imports check_partial_count from medtl_helpers.course.checks as ok"],
        ),
        (
            "from medtl_helpers.checks import check_freeze_groups as check_partial_count",
            ["imports check_freeze_groups from medtl_helpers.checks as check_partial_count"],
        ),
        ("import medtl_helpers.course.checks as c", [
            "imports the module medtl_helpers.course.checks as c"
        ]),
        ("from medtl_helpers.course import checks", [
            "imports the module medtl_helpers.course.checks"
        ]),
        ("import medtl_helpers\nmedtl_helpers.course.checks.check_x = f", [
            "changes medtl_helpers.course.checks.check_x"
        ]),
        ("import sys\nsys.modules['medtl_helpers.course.checks'] = None", [
            "changes sys.modules['medtl_helpers.course.checks']"
        ]),
        ("globals()['check_basic_block'] = len", ["changes globals()['check_basic_block']"]),
        ("from mymodule import helper as check_soft_vote", [
            "imports mymodule.helper under a checker's name, check_soft_vote"
        ]),
        ("def f():\n    global check_hard_vote\n    check_hard_vote = len", [
            "defines check_hard_vote, a checker's name"
        ]),
        ("from medtl_helpers.course.checks import TODO, check_basic_block\n"
         "check_basic_block(MyBasicBlock)\n%timeit x = 1", []),
        ("def broken(:", []),
    ],
)  # fmt: skip
def test_tampering_names_what_an_answer_does_to_the_checkers(source, flags):
    assert tampering(source) == flags


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_honest_answers_are_not_flagged_and_every_checker_can_be_restored(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "solution" in tags:
            assert tampering(cell.source) == [], cell.source
        if "check" in tags:
            names = checker_calls(cell.source)
            assert names and all(genuine(name).__name__ == name for name in names)
            assert guarded(cell.source).splitlines()[: len(names) + 1] == [
                GUARD, *(f'{name} = genuine("{name}")' for name in names)
            ]  # fmt: skip


def test_genuine_undoes_a_patched_checker_module(monkeypatch):
    from medtl_helpers.course.checks import nb01

    monkeypatch.setattr(nb01, "check_bottleneck_params", lambda answer: None)
    real = genuine("check_bottleneck_params")
    assert real.__module__ == "medtl_helpers.course.checks.nb01" and real is not None
    with pytest.raises(AssertionError, match="you left out the BatchNorm parameters"):
        real(256 * 64 + 64 * 64 * 9 + 64 * 256)
    with pytest.raises(LookupError, match="no checker named check_nothing"):
        genuine("check_nothing")


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("alice_01_residual_blocks.ipynb", ("alice", "01")),
        ("mary_jane-03.ipynb", ("mary_jane", "03")),
        ("Bob Smith 07 data_efficiency.ipynb", ("Bob Smith", "07")),
        ("carol.ipynb", ("carol", "")),
        ("dave/01_residual_blocks.ipynb", ("dave", "01")),
        ("dave/homework.ipynb", ("dave", "")),
        ("erin/week2/erin_03.ipynb", ("erin", "03")),
    ],
)
def test_student_and_notebook_number_from_the_path(tmp_path, relative, expected):
    assert student_and_number(tmp_path / relative, tmp_path) == expected


def test_a_file_given_alone_is_named_by_its_file_or_its_folder(tmp_path):
    assert student_and_number(tmp_path / "frank" / "03_freezing.ipynb") == ("frank", "03")
    assert student_and_number(tmp_path / "frank_03.ipynb") == ("frank", "03")


@pytest.fixture(scope="module")
def course01():
    return course_notebook(NOTEBOOKS / f"{NB01}.ipynb")


def test_course_notebook_lists_the_exercises_of_the_student_copy(course01):
    assert [(e.key, e.answer, e.check, e.checker) for e in course01.exercises] == [
        ("01.1", BLOCK, BLOCK_CHECK, "check_basic_block"),
        ("01.2", COUNT, COUNT_CHECK, "check_bottleneck_params"),
        ("01.3", "60e682f2", None, ""),
    ]
    assert [e.key for e in course01.checked] == ["01.1", "01.2"]


def test_read_submission_explains_each_kind_of_bad_file(tmp_path, course01):
    good = tmp_path / "good.ipynb"
    nbformat.write(course01.template, good)
    notebook, has_ids, problem = read_submission(good)
    assert notebook is not None and has_ids and problem == ""
    cases = {
        "cut.ipynb": (good.read_text()[:100], "corrupt notebook: invalid JSON at line "),
        "notes.txt": ("see attached", "not a notebook: notes.txt is not JSON; ask for the"),
        "list.ipynb": ("[1, 2]", "not a notebook: list.ipynb is JSON without notebook cells"),
        "empty.ipynb": ("", "not a notebook: empty.ipynb is empty; ask for the notebook again"),
        "bad.ipynb": ('{"cells": 3, "nbformat": 4}', "corrupt notebook: "),
    }
    for name, (text, start) in cases.items():
        (tmp_path / name).write_text(text)
        assert read_submission(tmp_path / name)[2].startswith(start), name
    (tmp_path / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    assert read_submission(tmp_path / "scan.png")[2].startswith("not a notebook: scan.png is a bin")


def test_identify_by_cell_ids_then_by_title(course01):
    course = {NB01: course01, NB03: course_notebook(NOTEBOOKS / f"{NB03}.ipynb")}
    assert identify(course[NB03].template, True, course) == (NB03, "cell ids")
    assert identify(course01.template, False, course) == (NB01, "title")
    stranger = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# My project")])
    assert identify(stranger, True, course) == ("", "")


def answered(template, edits: dict[str, str]) -> nbformat.NotebookNode:
    notebook = nbformat.reads(nbformat.writes(template), as_version=4)
    for cell in notebook.cells:
        cell.source = edits.get(cell.id, cell.source)
    return notebook


def test_rebuild_takes_only_the_answers_from_the_submission(course01):
    from nbformat.v4 import new_code_cell, new_markdown_cell

    submitted = answered(course01.template, {
        COUNT: "bottleneck_params = 1", COUNT_CHECK: "print('Correct')", "5704216b": "import os",
    })  # fmt: skip
    at = next(i for i, c in enumerate(submitted.cells) if c.id == BLOCK)
    del submitted.cells[at]  # the stub deleted, two new cells written in its place
    submitted.cells[at:at] = [new_code_cell("import math"), new_markdown_cell("my notes"),
                              new_code_cell("class MyBasicBlock: pass")]  # fmt: skip
    submitted.cells.insert(2, new_code_cell("check_basic_block = print"))  # outside any answer
    rebuilt = rebuild(submitted, True, course01)
    cells = rebuilt.notebook.cells
    assert [cells[i].source for i in rebuilt.answers["01.1"]] == [
        "import math", "class MyBasicBlock: pass"
    ]  # fmt: skip
    assert cells[rebuilt.answers["01.1"][0] + 1].source == "my notes"
    assert [cells[i].source for i in rebuilt.answers["01.2"]] == ["bottleneck_params = 1"]
    assert cells[rebuilt.checks["01.2"]].source.endswith(
        "check_bottleneck_params(bottleneck_params)"
    )
    assert "5704216b" in [c.get("id") for c in cells] and "import os" not in [
        c.source for c in cells
    ]
    assert "check_basic_block = print" not in [c.source for c in cells]
    assert rebuilt.flags == ["01.2: the check cell was edited; the course's check cell was run"]
    assert rebuilt.notes == [
        "01: 1 course cells were edited; the course's versions were run",
        "01: 1 code cells added outside the answers were not run; they are in the graded copy as "
        "text (cells 2)",
    ]
    kept = next(c for c in cells if c.cell_type == "raw")  # where the student put it, not run
    assert kept.source.endswith("\ncheck_basic_block = print") and cells.index(kept) == 2


def test_rebuild_finds_a_moved_answer_and_says_when_one_is_missing(course01):
    submitted = answered(course01.template, {BLOCK: "class MyBasicBlock: pass"})
    cells = submitted.cells
    at = next(i for i, c in enumerate(cells) if c.id == BLOCK)
    cells.append(cells.pop(at))  # moved to the end of the notebook
    cells[:] = [c for c in cells if c.id not in (COUNT, COUNT_CHECK)]  # answer and check deleted
    rebuilt = rebuild(submitted, True, course01)
    sources = [c.source for c in rebuilt.notebook.cells]
    assert [sources[i] for i in rebuilt.answers["01.1"]] == ["class MyBasicBlock: pass"]
    assert "raise NotImplementedError(" in sources[rebuilt.answers["01.2"][0]]
    assert rebuilt.notes == [
        "01.2: no answer found: none of its cells' ids is in the notebook, so the stub was run"
    ]


def test_rebuild_without_cell_ids_matches_answers_by_tag_and_position(course01):
    submitted = answered(course01.template, {COUNT: "bottleneck_params = 70400"})
    for cell in submitted.cells:
        del cell["id"]
    rebuilt = rebuild(submitted, False, course01)
    assert rebuilt.notebook.cells[rebuilt.answers["01.2"][0]].source == "bottleneck_params = 70400"
    assert rebuilt.notes == ["01: matched by tag and position: the notebook has no cell ids"]
    untagged = copy.deepcopy(submitted)
    for cell in untagged.cells:
        cell.metadata.pop("tags", None)
    rebuilt = rebuild(untagged, False, course01)
    assert rebuilt.notes[0].endswith("3 exercises: no answer could be matched")
    assert "raise NotImplementedError" in rebuilt.notebook.cells[rebuilt.answers["01.2"][0]].source


def test_weights_file_and_default_points(tmp_path, course01):
    weights_file = tmp_path / "weights.csv"
    weights_file.write_text("exercise,points\n01.1,5\ncheck_bottleneck_params,0.5\n")
    weights = load_weights(weights_file, course01.checked)
    assert weights == {"01.1": 5.0, "check_bottleneck_params": 0.5}
    assert [points(e, weights) for e in course01.checked] == [5.0, 0.5]
    assert [points(e, {}) for e in course01.checked] == [2, 1]
    weights_file.write_text("exercise,points\n01.9,1\n")
    with pytest.raises(GradingError, match=r"weights.csv, line 2: '01.9' is no exercise"):
        load_weights(weights_file, course01.checked)
    weights_file.write_text("exercise,points\n01.1,two\n")
    with pytest.raises(GradingError, match="points 'two' is not a number"):
        load_weights(weights_file, course01.checked)


def test_default_points_table_is_the_one_in_teaching_md():
    text = (ROOT / "docs" / "TEACHING.md").read_text()
    section = text[text.index("## 4. Grading") : text.index("## 5.")]
    table = dict(re.findall(r"^\| \d\d\.\d \| `(check_\w+)` \| (\d+) \|", section, re.M))
    assert {name: int(p) for name, p in table.items()} == DEFAULT_POINTS


def test_gradebook_rows_sum_points_per_student(course01):
    first, second = course01.checked
    subs = [
        Submission("bo", Path("bo_01.ipynb"), "01", NB01,
                   [Result(first, "passed"), Result(second, "wrong", "no")], ["01.1: flag"]),
        Submission("al", Path("al.pdf"), problem="not a notebook"),
    ]  # fmt: skip
    assert gradebook_rows(subs, course01.checked, {"01.1": 3}) == [
        {"student": "al", "01.1 basic_block": "", "01.2 bottleneck_params": "", "points": "0",
         "out_of": "4", "flags": "", "notes": "al.pdf: not a notebook"},
        {"student": "bo", "01.1 basic_block": "3", "01.2 bottleneck_params": "0", "points": "3",
         "out_of": "4", "flags": "01.1: flag", "notes": ""},
    ]  # fmt: skip


def test_cli_refuses_what_it_cannot_grade(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "missing"), "--out", str(tmp_path / "g")]) == 2
    assert "missing: no such file or folder of submissions" in capsys.readouterr().err
    args = ["grade", str(tmp_path), "--out", str(tmp_path / "g"), "--notebooks", str(NOTEBOOKS)]
    assert main([*args, "--notebook", "42"]) == 2
    assert "--notebook 42: no such notebook" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path)]) == 2
    assert "no course notebooks (00_name.ipynb …) in" in capsys.readouterr().err
    assert main([*args, "--jobs", "0"]) == 2
    assert "--jobs 0 must all be positive" in capsys.readouterr().err


def fake_run(errors: dict[int, tuple[str, str]], stopped_at=None, why="") -> Execution:
    return Execution(errors=errors, stopped_at=stopped_at, why=why)


def test_outcome_reads_the_check_cell_then_the_answer():
    from nbformat.v4 import new_code_cell, new_output

    exercises = [Exercise(f"00.{k}", f"a{k}", f"c{k}", "check_x") for k in range(1, 8)]
    cells = [new_code_cell("x") for _ in range(14)]
    cells[1].outputs = [new_output("stream", name="stdout", text="Correct: fine\nmore\n")]
    rebuilt = Rebuilt(
        nbformat.v4.new_notebook(cells=cells),
        {e.key: [2 * k] for k, e in enumerate(exercises)},
        {e.key: 2 * k + 1 for k, e in enumerate(exercises)},
    )
    ok, name_error = ("", ""), ("NameError", "name 'x' is not defined")
    run = fake_run({
        0: ok, 1: ok,
        2: ok, 3: ("AssertionError", "your answer 3 is off by +1.\n"),
        4: ("NotImplementedError", "hint"), 5: ("NotImplementedError", "x is not written yet"),
        6: (TIMED_OUT, "stopped at its time limit of 5 s"), 7: name_error,
        8: ("ValueError", "first\nbad value"), 9: name_error,
        10: ok, 11: ("TypeError", "unsupported"),
        12: ok, 13: (TIMED_OUT, "stopped at its time limit of 5 s"),
    })  # fmt: skip
    assert [(r.outcome, r.message) for r in (outcome(e, rebuilt, run) for e in exercises)] == [
        ("passed", "Correct: fine"),
        ("wrong", "your answer 3 is off by +1."),
        ("not attempted", "NotImplementedError: x is not written yet"),
        ("timeout", "the answer was stopped at its time limit of 5 s"),
        ("error", "the answer raised ValueError: bad value"),
        ("error", "TypeError: unsupported"),
        ("timeout", "the check was stopped at its time limit of 5 s"),
    ]


def test_outcomes_of_the_exercises_a_stopped_run_never_reached():
    exercises = [Exercise(f"00.{k}", f"a{k}", f"c{k}", "check_x") for k in (1, 2)]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x") for _ in range(4)])
    rebuilt = Rebuilt(notebook, {"00.1": [0], "00.2": [2]}, {"00.1": 1, "00.2": 3})
    died = fake_run({0: (KERNEL_DIED, "the kernel died")}, 0, "the kernel died in cell 0")
    assert [(r.outcome, r.message) for r in (outcome(e, rebuilt, died) for e in exercises)] == [
        ("error", "the kernel died while running the answer"),
        ("error", "not run: the kernel died in cell 0 (the answer to 00.1)"),
    ]
    late = fake_run({0: ("", ""), 1: ("", ""), 2: (TIMED_OUT, "3 s")}, 2, "the time limit was hit")
    assert [(r.outcome, r.message) for r in (outcome(e, rebuilt, late) for e in exercises)] == [
        ("passed", ""),
        ("timeout", "the answer was stopped: the time limit was hit"),
    ]
    early = fake_run({}, None, "the notebook time limit of 3 s was reached")
    assert outcome(exercises[0], rebuilt, early).message == (
        "not run: the notebook time limit of 3 s was reached"
    )


def tiny_course(folder: Path, first_cell: str) -> CourseNotebook:
    """A two-exercise course notebook whose answers are counts for check_bottleneck_params."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [new_markdown_cell("# 00 · Tiny"), new_code_cell(first_cell)]
    for _ in range(2):
        cells += [
            new_code_cell("width = 64", metadata={"tags": ["exercise"]}),
            new_code_cell("answer = 70_400", metadata={"tags": ["solution"]}),
            new_code_cell(
                "check_bottleneck_params(bottleneck_params)", metadata={"tags": ["check"]}
            ),
        ]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells), folder / "00_tiny.ipynb")
    return course_notebook(folder / "00_tiny.ipynb")


def test_a_kernel_that_ignores_the_interrupt_or_a_slow_course_cell_ends_the_run(tmp_path):
    stubborn = tiny_course(tmp_path / "a", "import signal, time")
    submitted = answered(stubborn.template, {stubborn.exercises[0].answer: (
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)"
    )})  # fmt: skip
    graded = run_submission(rebuild(submitted, True, stubborn), stubborn, 1, 60)
    # cell 3 is the grader's note of the modules (tampering.BASELINE), cell 4 the answer
    assert graded.stopped == "cell 4 went on after its time limit and the interrupt"
    assert [(r.outcome, r.message) for r in graded.results] == [
        ("timeout", f"the answer was stopped: {graded.stopped}"),
        ("timeout", f"not run: {graded.stopped} (the answer to 00.1)"),
    ]  # fmt: skip
    slow = tiny_course(tmp_path / "b", "import time\ntime.sleep(60)")
    graded = run_submission(rebuild(slow.template, True, slow), slow, 60, 3)
    assert graded.stopped == "the notebook time limit of 3 s was reached"
    assert {r.outcome for r in graded.results} == {"timeout"} and graded.seconds < 10


def test_find_submissions_then_prepare_refuses_strangers_and_second_copies(tmp_path, course01):
    from nbformat.v4 import new_markdown_cell, new_notebook

    root = tmp_path / "submissions"
    for relative in ("alice/01_residual_blocks.ipynb", "alice/01 again.ipynb", "bob_01.ipynb"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(course01.template, root / relative)
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Cats")]), root / "carol.ipynb")
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "bob_01-checkpoint.ipynb").write_text("{}")
    (root / ".DS_Store").write_bytes(b"\0")
    subs = find_submissions([root])
    assert [(s.student, s.path.name, s.expected) for s in subs] == [
        ("alice", "01 again.ipynb", "01"), ("alice", "01_residual_blocks.ipynb", "01"),
        ("bob", "bob_01.ipynb", "01"), ("carol", "carol.ipynb", ""),
    ]  # fmt: skip
    assert [s.expected for s in find_submissions([root], notebook="03")] == ["03"] * 4
    seen: set = set()
    prepared = [prepare(s, {NB01: course01}, seen) for s in subs]
    assert [p is not None for p in prepared] == [True, False, True, False]
    assert prepared[0][1] is True  # the cell ids are there
    assert [s.problem for s in subs] == [
        "", f"a second submission of {NB01} by alice", "",
        "not a notebook of this course: no cell ids or title in common",
    ]  # fmt: skip
    assert seen == {("alice", NB01), ("bob", NB01)}


def test_kernel_environment_is_quick_offline_and_inside_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDTL_PROFILE", "gpu")
    monkeypatch.setenv("MEDTL_SOURCE", "kermany")
    env = kernel_environment(tmp_path)
    assert {k: env[k] for k in ("MEDTL_PROFILE", "MEDTL_OFFLINE", "MPLBACKEND")} == {
        "MEDTL_PROFILE": "quick", "MEDTL_OFFLINE": "1", "MPLBACKEND": "Agg"
    }  # fmt: skip
    assert env["MEDTL_DATA"] == str(tmp_path / "data") and env["MEDTL_RUNS"] == str(
        tmp_path / "runs"
    )
    assert env["MEDTL_SOURCE"] == "synthetic" and env["PATH"] == os.environ["PATH"]
