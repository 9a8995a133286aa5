"""`make student`: stubs, tags, cleared outputs, badges, refusals, and one executed student copy."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from medtl_helpers.course import links
from medtl_helpers.course.checks import TODO
from medtl_helpers.course.cli import main
from medtl_helpers.course.student import (
    ExerciseLayoutError,
    build_student,
    defined_names,
    python_only,
    stub_source,
    student_copy,
)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
HINT = "Intersect the two sets of patient ids: a leaked patient is in both splits."
SOLUTION = """\
def leaked(train, val):
    return set(train) & set(val)


n_leaked, total = len(leaked([1, 2], [2, 3])), 3
print(n_leaked)
"""


def code(source: str, *tags: str, **metadata) -> nbformat.NotebookNode:
    cell = new_code_cell(source, metadata={"tags": list(tags), **metadata} if tags else metadata)
    cell.outputs = [new_output("stream", name="stdout", text="old output\n")]
    cell.execution_count = 7
    return cell


def course_notebook(*exercise_cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    notebook = new_notebook()
    notebook.cells = [
        new_markdown_cell("# 00 · Tiny"),
        new_markdown_cell(links.badge_markdown("notebooks/00_tiny.ipynb")),
        code(links.setup_cell_source()),
        code("x = 1"),
        *exercise_cells,
    ]
    return notebook


def exercise_pair() -> list[nbformat.NotebookNode]:
    return [
        new_markdown_cell("**Exercise 1.** Write `leaked`."),
        code("a, b = [1, 2], [2, 3]", "exercise"),
        code(SOLUTION, "solution", hint=HINT),
        code("check_leaked(leaked)", "check"),
        new_markdown_cell("**Exercise 2.** Think."),
        code("p = 0.9", "exercise"),
        code("n_needed = 900", "solution"),
    ]


def test_defined_names_follow_module_level_bindings():
    source = """\
import numpy as np
from math import ceil
%matplotlib inline
a, (b, *c) = 1, (2, 3, 4)
d: int = 5
d += 1
e.attr = 1
f[0] = 2
def g(x):
    inner = x
class H:
    attribute = 1
for i, (j, k) in enumerate([(1, 2)]):
    temporary = i
if a:
    chosen = 1
with open(__file__) as handle:
    text = handle.read()
!ls
"""
    assert defined_names(source) == [
        "a", "b", "c", "d", "g", "H", "i", "j", "k", "chosen", "handle", "text"
    ]  # fmt: skip


def test_stub_binds_the_names_to_todo_and_raises_the_hint():
    stub = stub_source(["leaked", "n_leaked"], HINT + " " + "More words. " * 12, 4)
    assert stub.startswith("# Exercise 4: write your answer in this cell")
    assert all(len(line) <= 100 for line in stub.splitlines())
    namespace: dict = {}
    with pytest.raises(NotImplementedError, match="Intersect the two sets.*More words. More"):
        exec(stub, namespace)
    assert namespace["leaked"] is TODO and namespace["n_leaked"] is TODO


def test_stub_keeps_quotes_in_the_hint():
    namespace: dict = {}
    with pytest.raises(NotImplementedError) as err:
        exec(
            stub_source([], 'Use `with torch.device("meta"):` and the student\'s x\\y.', 2),
            namespace,
        )
    assert str(err.value) == 'Use `with torch.device("meta"):` and the student\'s x\\y.'


def test_student_copy_stubs_solutions_and_tags_cells():
    original = course_notebook(*exercise_pair())
    result = student_copy(original, "student/00_tiny.ipynb")
    cells = result.notebook.cells
    assert (result.exercises, result.stubs, result.checks) == (2, 2, 1)

    stub = cells[6]
    assert stub.metadata["tags"] == ["exercise-answer", "raises-exception"]
    assert "hint" not in stub.metadata
    assert "def leaked" not in stub.source and "leaked = TODO" in stub.source
    assert "n_leaked = TODO\ntotal = TODO" in stub.source and HINT in stub.source
    assert cells[7].metadata["tags"] == ["check", "raises-exception"]
    assert cells[5].metadata["tags"] == ["exercise"] and cells[5].source == "a, b = [1, 2], [2, 3]"
    second = cells[10].source
    assert "n_needed = TODO" in second and "Exercise 2" in second  # the generic hint
    assert not any("solution" in cell.metadata.get("tags", []) for cell in cells)

    for cell in cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert cells[1].source == links.badge_markdown(
        "student/00_tiny.ipynb", links.STUDENT_REPOSITORY, links.STUDENT_BRANCH
    )
    assert "/blob/student/student/00_tiny.ipynb" in cells[1].source
    assert cells[2].source == links.setup_cell_source()
    assert original.cells[6].source == SOLUTION  # the instructor notebook is left alone
    assert original.cells[3].outputs


def test_an_exercise_without_a_solution_is_refused():
    pair = exercise_pair()
    del pair[2]  # exercise 1 loses its solution; exercise 2 comes next
    with pytest.raises(ExerciseLayoutError, match=r"00_tiny.ipynb: cell 5 is tagged 'exercise'"):
        student_copy(course_notebook(*pair), "student/00_tiny.ipynb")
    with pytest.raises(ExerciseLayoutError, match="cell 4 is tagged 'exercise' but no cell"):
        student_copy(course_notebook(code("y = 2", "exercise")), "student/00_tiny.ipynb")


def test_a_markdown_solution_is_refused():
    notebook = course_notebook(code("y = 2", "exercise"))
    notebook.cells.append(new_markdown_cell("answer", metadata={"tags": ["solution"]}))
    with pytest.raises(ExerciseLayoutError, match="cell 5 is tagged 'solution' but is a markdown"):
        student_copy(notebook, "student/00_tiny.ipynb")


def write(folder: Path, name: str, notebook: nbformat.NotebookNode) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / name)
    return folder / name


def test_cli_writes_copies_and_a_copy_cannot_be_fed_again(tmp_path, capsys):
    source, out = tmp_path / "notebooks", tmp_path / "student"
    write(source, "00_tiny.ipynb", course_notebook(*exercise_pair()))
    write(source, "scratch.ipynb", course_notebook())
    assert main(["student", str(source), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "00_tiny.ipynb: 2 exercises, 2 solutions replaced by stubs, 1 checks" in printed
    assert "1 student notebooks" in printed and "blob/student/student/" in printed
    assert sorted(p.name for p in out.iterdir()) == ["00_tiny.ipynb"]
    assert "leaked = TODO" in nbformat.read(out / "00_tiny.ipynb", as_version=4).cells[6].source

    assert main(["student", str(out), "-o", str(tmp_path / "again")]) == 2
    assert "cell 5 is tagged 'exercise' but no cell tagged 'solution'" in capsys.readouterr().err


def test_cli_refuses_a_broken_notebook_and_writes_nothing(tmp_path, capsys):
    source, out = tmp_path / "notebooks", tmp_path / "student"
    write(source, "00_good.ipynb", course_notebook(*exercise_pair()))
    write(source, "01_bad.ipynb", course_notebook(code("y = 2", "exercise")))
    assert main(["student", str(source), "-o", str(out)]) == 2
    assert "error: student/01_bad.ipynb: cell 4 is tagged 'exercise'" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ExerciseLayoutError, match="would overwrite the solutions"):
        build_student(source, source)


def _loaded(source: str) -> set[str]:
    tree = ast.parse(python_only(source))
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_checks_use_solution_names_and_later_cells_do_not(path):
    """What a stub binds is enough for the check, and nothing after it needs the solution."""
    cells = nbformat.read(path, as_version=4).cells
    student_copy(nbformat.read(path, as_version=4), f"student/{path.name}")  # layout is valid
    defined = [defined_names(c.source) if c.cell_type == "code" else [] for c in cells]
    solution_names: list[str] = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        if "solution" in _tags(cell):
            solution_names = defined[index]
        if "check" in _tags(cell):
            calls = [n for n in ast.walk(ast.parse(cell.source)) if isinstance(n, ast.Call)]
            answers = [c.args[0].id for c in calls if c.args and isinstance(c.args[0], ast.Name)]
            assert answers and answers[0] in solution_names, (
                f"{path.name} cell {index}: the checker's answer {answers[:1]} is not a name "
                f"the solution before it defines ({solution_names})"
            )
            continue
        if "solution" in _tags(cell):
            continue
        for name in sorted(_loaded(cell.source) - set(defined[index])):
            source = max((i for i in range(index) if name in defined[i]), default=None)
            assert source is None or "solution" not in _tags(cells[source]), (
                f"{path.name} cell {index} uses {name!r} from the solution in cell {source}: "
                "in the student copy it is TODO"
            )


def test_student_copy_of_notebook_00_runs_and_only_the_exercises_raise(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    out = tmp_path / "student"
    build_student(NOTEBOOKS, out)
    monkeypatch.setenv("MEDTL_RUNS", str(tmp_path / "runs"))
    for key, value in {"MEDTL_PROFILE": "quick", "MEDTL_OFFLINE": "1", "MPLBACKEND": "Agg"}.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(out / "00_setup_and_data.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=300, allow_errors=True, resources={"metadata": {"path": str(out)}}
    )
    client.execute()
    errors = {
        index: [o for o in cell.get("outputs", []) if o.output_type == "error"]
        for index, cell in enumerate(notebook.cells)
    }
    raised = {index for index, outputs in errors.items() if outputs}
    stubs = {i for i, c in enumerate(notebook.cells) if "exercise-answer" in _tags(c)}
    checks = {i for i, c in enumerate(notebook.cells) if "check" in _tags(c)}
    assert stubs and checks and raised == stubs | checks
    assert {o.ename for outputs in errors.values() for o in outputs} == {"NotImplementedError"}
    assert all("is not written yet" in errors[i][0].evalue for i in checks)


# 06.3's answer is the stage name `layer4`. Asserted on the student copy of 06: no cell before
# exercise 3's check (code, comment or prose) names `layer4`, and no markdown cell after the check
# does. Not the answer, so allowed: a block of the stage (`layer4.1`, the ResNet-18's last block,
# which the Grad-CAM sections hook), and the randomisation cascade, which names the layers it
# resets from the top down (`"layer4", "layer3"`, "then layer4, then layer3").
ANSWER_06_3 = re.compile(r"\blayer4\b(?!\.\d)(?!\W{1,4}(?:then\s)?layer3\b)")


def test_student_copy_of_06_does_not_answer_exercise_3_before_or_right_after_it():
    path = NOTEBOOKS / "06_ensembling_and_cam.ipynb"
    cells = student_copy(nbformat.read(path, as_version=4), f"student/{path.name}").notebook.cells
    check = next(i for i, c in enumerate(cells) if c.source.startswith("check_target_layer("))
    assert "check" in _tags(cells[check])
    assert "TARGET_LAYER = TODO" in cells[check - 1].source  # the stub of exercise 3's answer
    answered_before = [i for i, c in enumerate(cells[:check]) if ANSWER_06_3.search(c.source)]
    assert answered_before == [], f"cells {answered_before} name layer4 before exercise 3 asks"
    told_after = [
        i
        for i, c in enumerate(cells[check + 1 :], check + 1)
        if c.cell_type == "markdown" and ANSWER_06_3.search(c.source)
    ]
    assert told_after == [], f"markdown cells {told_after} tell exercise 3's answer"
    assert ANSWER_06_3.findall('CAM_LAYER = "layer4"; ("fc", "layer4", "layer3")') == ["layer4"]
