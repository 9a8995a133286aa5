"""`grade`, one submission: which course notebook it is, and the notebook that is run for it.

A submission is a student copy (`make student`) with the answers written in. Only what the student
wrote is taken from it: the answers and the cells tagged `prediction` or `open`; every other
cell, the check cells included, comes from the instructor's notebook, matched by cell id (nbformat
4.5 ids survive `make student`, Jupyter and Colab), so an edited check cell changes nothing. An
answer is whatever lies between the cells around the answer cell (the exercise's starting point
and its check), so cells a student added there count too; cells added anywhere else stay where the
student put them, markdown as written and code as text that is not run. Without ids, answers are
matched by their tag and position. tampering.py guards the checkers; outcomes.py runs the rebuilt
notebook.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from medtl_helpers.course.identify import DOWNLOAD, identify, read_submission  # noqa: F401
from medtl_helpers.course.student import ANSWER, CHECK, EXERCISE, SOLUTION, student_copy
from medtl_helpers.course.tampering import BASELINE, checker_calls, guarded, tampering
from medtl_helpers.errors import MedtlError

if TYPE_CHECKING:
    import nbformat


PREDICTION, OPEN = "prediction", "open"  # tags: a guess to write down; an answer to read
_NUMBERED = re.compile(r"^\*\*(?:Exercise )?(\d+)\b[^*]*\*\*")  # "**Exercise 3.**", "**3. Title.**"


class GradingError(MedtlError):
    """A grade command that cannot start: no notebooks, a bad weights file, a missing path."""


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
    to_read: list[str] = field(default_factory=list)  # "01.3 (prediction, open): task ..."

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
    unmatched: dict[str, str] = field(default_factory=dict)  # exercise key -> why no answer


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
    return CourseNotebook(path.stem, template, exercises, _to_read(path.name[:2], template))


def _to_read(number: str, template) -> list[str]:
    """The predictions and open questions of a notebook, from its markdown cells' tags."""
    found = []
    for cell in template.cells:
        kinds = [tag for tag in (PREDICTION, OPEN) if tag in _tags(cell)]
        if cell.cell_type != "markdown" or not kinds:
            continue
        first = cell.source.strip().splitlines()[0]
        exercise = _NUMBERED.match(first)
        label = f"{number}.{exercise[1]}" if exercise else f"{number} questions"
        text = _NUMBERED.sub("", first).strip(" *.") or first
        found.append(f"{label} ({', '.join(kinds)}): {text[:90]}")
    return found


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
        elif not {ANSWER, PREDICTION} & set(_tags(cell)):
            edited += 1
    return edited_checks, edited


def rebuild(submitted, has_ids: bool, course_nb: CourseNotebook) -> Rebuilt:
    """The student copy with what the student wrote in it: the answers, the cells tagged
    `prediction` or `open` (a guess, a written answer), and the cells added elsewhere (as text,
    not run)."""
    slots, note = _slots(submitted.cells, has_ids, course_nb)
    number = course_nb.stem[:2]
    notes = [f"{number}: {note}"] if note else []
    rebuilt = Rebuilt(copy.deepcopy(course_nb.template), {}, {}, notes=notes)
    by_answer = {exercise.answer: exercise for exercise in course_nb.exercises}
    by_check = {exercise.check: exercise.key for exercise in course_nb.exercises}
    mine = {cell.get("id"): cell for cell in submitted.cells} if has_ids else {}
    added = _added(submitted.cells, slots, course_nb) if has_ids and slots else {}
    cells: list = []
    for cell in course_nb.template.cells:
        if cell.id in by_answer:
            _place_answer(by_answer[cell.id], cell, submitted.cells, slots, note, rebuilt, cells)
        else:
            cells.append(copy.deepcopy(cell))
            if cell.id in by_check:
                cells[-1].source = guarded(cell.source)
                rebuilt.checks[by_check[cell.id]] = len(cells) - 1
            elif {PREDICTION, OPEN} & set(_tags(cell)) and cell.id in mine:
                cells[-1].source = mine[cell.id].source  # the student's words, as written
                kind = PREDICTION if PREDICTION in _tags(cell) else OPEN
                cells[-1].metadata["grade"] = {kind: True}
                if cell.cell_type == "code":
                    rebuilt.flags += [f"{number}: the prediction cell {what}"
                                      for what in tampering(cells[-1].source)]  # fmt: skip
        cells += added.get(cell.id, [])
    rebuilt.notebook.cells = cells
    _explain_leftovers(submitted.cells, added, course_nb, rebuilt)
    return rebuilt


def _place_answer(exercise, stub, submitted, slots, note, rebuilt, cells) -> None:
    """Append the cells of `exercise`'s answer (the stub when none was written) to `cells`."""
    if exercise.key not in slots:
        rebuilt.unmatched[exercise.key] = note or (
            "no answer found: none of its cells' ids is in the notebook, so the stub was run"
        )
        if not note:
            rebuilt.notes.append(f"{exercise.key}: {rebuilt.unmatched[exercise.key]}")
    answer = _answer_cells(submitted, slots.get(exercise.key, []), exercise.key)
    if not any(c.cell_type == "code" for c in answer):
        answer = [copy.deepcopy(stub), *answer]  # no code written: the stub runs, as handed out
    if exercise.check:  # the watched modules, noted before the answer runs (watch.py)
        from nbformat.v4 import new_code_cell

        cells.append(new_code_cell(BASELINE, metadata={"grade": {"baseline": exercise.key}}))
    rebuilt.answers[exercise.key] = [
        len(cells) + i for i, c in enumerate(answer) if c.cell_type == "code"
    ]
    cells += answer
    for made in answer:
        rebuilt.flags += [f"{exercise.key}: the answer {what}" for what in tampering(made.source)]


def _added(submitted, slots, course_nb: CourseNotebook) -> dict[str, list]:
    """Cells the student added outside the answers, by the course cell they follow: markdown
    as written, code as text (it is not run), so every written word reaches the graded copy."""
    from nbformat.v4 import new_markdown_cell, new_raw_cell

    used = {index for indices in slots.values() for index in indices}
    known = {cell.id for cell in course_nb.template.cells}
    anchor, placed = course_nb.template.cells[0].id, {}
    for index, cell in enumerate(submitted):
        if cell.get("id") in known:
            anchor = cell.get("id")
            continue
        if index in used or not cell.source.strip():
            continue
        if cell.cell_type == "markdown":
            made = new_markdown_cell(cell.source)
        else:
            made = new_raw_cell(f"# not run by grade: a {cell.cell_type} cell added outside the "
                                f"answers\n{cell.source}")  # fmt: skip
        made.metadata["grade"] = {"added": index}
        placed.setdefault(anchor, []).append(made)
    return placed


def _explain_leftovers(submitted, placed: dict, course_nb: CourseNotebook, rebuilt) -> None:
    """Flags and notes for what of the submission was not run: edited course cells, and the
    code cells `_added` placed in the graded copy as text."""
    number = course_nb.stem[:2]
    edited_checks, edited = _edits(submitted, course_nb)
    rebuilt.flags += edited_checks
    if edited:
        rebuilt.notes.append(
            f"{number}: {edited} course cells were edited; the course's versions were run"
        )
    added = [cell.metadata["grade"]["added"] for cells in placed.values() for cell in cells]
    added = sorted(index for index in added if submitted[index].cell_type == "code")
    if added:
        rebuilt.notes.append(
            f"{number}: {len(added)} code cells added outside the answers were not run; they are "
            f"in the graded copy as text (cells {', '.join(map(str, added[:5]))}"
            f"{', ...' if len(added) > 5 else ''})"
        )
    if any(SOLUTION in _tags(cell) for cell in submitted):
        rebuilt.flags.append(f"{number}: cells tagged 'solution': the instructor's notebook?")
