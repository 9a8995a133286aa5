"""`grade`, one submission: which course notebook it is, and the notebook that is run for it.

A submission is a student copy (`make student`) with the answers written in. Only its answers are
taken from it: every other cell, the check cells included, comes from the instructor's notebook,
matched by cell id (nbformat 4.5 ids survive `make student`, Jupyter and Colab), so an edited check
cell changes nothing. An answer is whatever lies between the cells around the answer cell (the
exercise's starting point and its check), so cells a student added there count too; cells added
anywhere else are left out and counted in a note. Without ids, answers are matched by their tag
and position. tampering.py guards the checkers; outcomes.py runs the rebuilt notebook.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from medtl_helpers.course.student import ANSWER, CHECK, EXERCISE, SOLUTION, student_copy
from medtl_helpers.course.tampering import checker_calls, guarded, tampering
from medtl_helpers.errors import MedtlError

if TYPE_CHECKING:
    import nbformat


class GradingError(MedtlError):
    """A grade command that cannot start: no notebooks, a bad weights file, a missing path."""


DOWNLOAD = "ask for the notebook again (Jupyter: File > Download; Colab: File > Download .ipynb)"


@dataclass
class Exercise:
    key: str  # "01.2": notebook 01, exercise 2
    answer: str  # id of the answer cell in the student copy
    check: str | None = None  # id of its check cell; None for an exercise graded by reading
    checker: str = ""  # the checker the check cell calls, e.g. "check_bottleneck_params"


@dataclass
class CourseNotebook:
    stem: str  # "01_residual_blocks"
    template: nbformat.NotebookNode  # the student copy the class was given
    exercises: list[Exercise]

    @property
    def checked(self) -> list[Exercise]:
        return [exercise for exercise in self.exercises if exercise.check]


@dataclass
class Rebuilt:
    notebook: nbformat.NotebookNode
    answers: dict[str, list[int]]  # exercise key -> indices of its answer cells
    checks: dict[str, int]  # exercise key -> index of its check cell
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def course_notebook(path: Path) -> CourseNotebook:
    """The student copy of the instructor notebook at `path`, and its exercises in order."""
    import nbformat

    template = student_copy(nbformat.read(path, as_version=4), f"student/{path.name}").notebook
    exercises: list[Exercise] = []
    number = 0
    for cell in template.cells:
        number += EXERCISE in _tags(cell)
        if ANSWER in _tags(cell):
            exercises.append(Exercise(f"{path.name[:2]}.{number}", cell.id))
        elif CHECK in _tags(cell) and exercises:
            exercises[-1].check = cell.id
            exercises[-1].checker = next(iter(checker_calls(cell.source)), "")
    return CourseNotebook(path.stem, template, exercises)


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


def identify(notebook, has_ids: bool, course: dict[str, CourseNotebook]) -> tuple[str, str]:
    """(stem, how): the course notebook sharing most of its cell ids, else the one whose title
    (first heading) it has; ('', '') when neither. The file name is never trusted alone."""
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


def _slots(cells, has_ids: bool, course_nb: CourseNotebook) -> tuple[dict[str, list[int]], str]:
    """Exercise key -> indices of the submission's cells that make up its answer, and a note."""
    template = course_nb.template.cells
    if not has_ids:
        tagged = [i for i, c in enumerate(cells) if {ANSWER, SOLUTION} & set(_tags(c))]
        if len(tagged) != len(course_nb.exercises):
            return {}, (
                f"the notebook has no cell ids and {len(tagged)} cells tagged '{ANSWER}' for "
                f"{len(course_nb.exercises)} exercises: no answer could be matched"
            )
        keys = [exercise.key for exercise in course_nb.exercises]
        return {key: [i] for key, i in zip(keys, tagged)}, (
            "matched by tag and position: the notebook has no cell ids"
        )
    position: dict[str, int] = {}
    for index, cell in enumerate(cells):
        position.setdefault(cell.get("id"), index)
    known = {cell.id for cell in template}
    where = {cell.id: index for index, cell in enumerate(template)}
    slots = {}
    for exercise in course_nb.exercises:
        at = where[exercise.answer]
        start = position.get(template[at - 1].id)
        end = position.get(template[at + 1].id) if at + 1 < len(template) else len(cells)
        placed = start is not None and end is not None and start < end
        others = known - {exercise.answer}  # a course cell in the way is restored, not run
        slot = (
            [i for i in range(start + 1, end) if cells[i].get("id") not in others] if placed else []
        )
        if not any(cells[i].cell_type == "code" for i in slot) and exercise.answer in position:
            slot = [position[exercise.answer]]  # the answer cell, moved away from its place
        if slot or placed:
            slots[exercise.key] = slot  # an empty slot: the student deleted the answer cell
    return slots, ""


def _answer_cells(cells, indices: list[int], key: str) -> list:
    from nbformat.v4 import new_code_cell, new_markdown_cell

    made = []
    for index in indices:
        cell = cells[index]
        if cell.cell_type == "code":
            made.append(new_code_cell(cell.source, metadata={"tags": [ANSWER]}))
        elif cell.cell_type == "markdown":
            made.append(new_markdown_cell(cell.source))
    for cell in made:
        cell.metadata["grade"] = {"answer": key}
    return made


def _edits(submitted, course_nb: CourseNotebook) -> tuple[list[str], int]:
    """Check cells whose source the submission changed, and how many other course cells it did."""
    sources = {cell.get("id"): cell.source for cell in submitted}
    checks = {exercise.check: exercise.key for exercise in course_nb.exercises}
    edited_checks, edited = [], 0
    for cell in course_nb.template.cells:
        if cell.cell_type != "code" or sources.get(cell.id, cell.source) == cell.source:
            continue
        if cell.id in checks:
            edited_checks.append(
                f"{checks[cell.id]}: the check cell was edited; the course's check cell was run"
            )
        elif ANSWER not in _tags(cell):
            edited += 1
    return edited_checks, edited


def rebuild(submitted, has_ids: bool, course_nb: CourseNotebook) -> Rebuilt:
    """The student copy with the submission's answers in it and nothing else of the submission."""
    slots, note = _slots(submitted.cells, has_ids, course_nb)
    notebook = copy.deepcopy(course_nb.template)
    by_answer = {exercise.answer: exercise for exercise in course_nb.exercises}
    by_check = {exercise.check: exercise.key for exercise in course_nb.exercises}
    rebuilt = Rebuilt(notebook, {}, {}, notes=[f"{course_nb.stem[:2]}: {note}"] if note else [])
    cells = []
    for cell in course_nb.template.cells:
        exercise = by_answer.get(cell.id)
        if exercise is None:
            cells.append(copy.deepcopy(cell))
            if cell.id in by_check:
                cells[-1].source = guarded(cell.source)
                rebuilt.checks[by_check[cell.id]] = len(cells) - 1
            continue
        if exercise.key not in slots and not note:
            rebuilt.notes.append(
                f"{exercise.key}: no answer found (none of its cells' ids is in the notebook); "
                "the stub was run"
            )
        answer = _answer_cells(submitted.cells, slots.get(exercise.key, []), exercise.key)
        if not any(c.cell_type == "code" for c in answer):
            answer = [copy.deepcopy(cell), *answer]  # no code written: the stub runs, as handed out
        rebuilt.answers[exercise.key] = [
            len(cells) + i for i, c in enumerate(answer) if c.cell_type == "code"
        ]
        cells += answer
        for made in answer:
            rebuilt.flags += [
                f"{exercise.key}: the answer {what}" for what in tampering(made.source)
            ]
    notebook.cells = cells
    _explain_leftovers(submitted.cells, has_ids and bool(slots), slots, course_nb, rebuilt)
    return rebuilt


def _explain_leftovers(submitted, by_id: bool, slots, course_nb: CourseNotebook, rebuilt) -> None:
    number = course_nb.stem[:2]
    edited_checks, edited = _edits(submitted, course_nb)
    rebuilt.flags += edited_checks
    if edited:
        rebuilt.notes.append(
            f"{number}: {edited} course cells were edited; the course's versions were run"
        )
    used = {index for indices in slots.values() for index in indices}
    known = {cell.id for cell in course_nb.template.cells}
    added = [
        i for i, c in enumerate(submitted)
        if i not in used and c.cell_type == "code" and c.source.strip() and c.get("id") not in known
    ]  # fmt: skip
    if added and by_id:
        rebuilt.notes.append(
            f"{number}: {len(added)} code cells added outside the answers were not run (cells "
            f"{', '.join(map(str, added[:5]))}{', ...' if len(added) > 5 else ''})"
        )
    if any(SOLUTION in _tags(cell) for cell in submitted):
        rebuilt.flags.append(f"{number}: cells tagged 'solution': the instructor's notebook?")
