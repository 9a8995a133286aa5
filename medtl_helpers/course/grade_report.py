"""What `grade` writes: the gradebook, every outcome, and a report of what the class got wrong.

gradebook.csv has one row per student and one column per checked exercise (the points earned;
empty when the student handed in no gradable copy of that notebook), then the total, the points
possible, the flags (attempts on the checkers, edited check cells) and notes (what was not
graded and why, cells left out, a run stopped early). outcomes.csv has one row per student and
exercise with the outcome and the checker's message. report.md is for the teacher: pass rates,
the most frequent messages per exercise (what to explain again), flags, problems and times.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

from medtl_helpers.atomic import write_text
from medtl_helpers.course.grading import Exercise, GradingError
from medtl_helpers.course.outcomes import OUTCOMES, PASSED, Submission
from medtl_helpers.errors import in_terms

TOP_MESSAGES = 3
# Points per checker (docs/TEACHING.md §4 shows this table): 2 for writing a function or class
# that must handle several cases, 1 for a single value or a one-formula function.
DEFAULT_POINTS = {
    "check_leaked_patients": 1, "check_pneumonia_shares": 1,
    "check_basic_block": 2, "check_bottleneck_params": 1,
    "check_conv_params": 1, "check_deepest_within": 2,
    "check_freeze_groups": 2, "check_partial_count": 1,
    "check_class_weights": 1, "check_val_threshold": 2,
    "check_group_lrs": 1, "check_stage_plan": 2,
    "check_soft_vote": 1, "check_hard_vote": 2, "check_target_layer": 1,
    "check_passes_needed": 1, "check_seed_summary": 2,
    "check_batchnorm_reset": 2, "check_most_drifted": 1, "check_coral_distance": 1,
    "check_prototype_classifier": 2, "check_episode_leak": 1, "check_tied_best": 2,
}  # fmt: skip


def load_weights(path: Path, exercises: list[Exercise]) -> dict[str, float]:
    """Points from a CSV file with the columns `exercise,points`; an exercise is a key such as
    01.2 or a checker's name such as check_bottleneck_params."""
    known = {e.key for e in exercises} | {e.checker for e in exercises} | set(DEFAULT_POINTS)
    try:
        rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError) as err:
        raise GradingError(f"{path}: cannot read the weights file ({err})") from err
    weights = {}
    for line, row in enumerate(rows, start=2):
        name, value = (row.get("exercise") or "").strip(), (row.get("points") or "").strip()
        try:
            points = float(value)
        except ValueError:
            raise GradingError(
                f"{path}, line {line}: points {value!r} is not a number; the file needs the "
                "header `exercise,points` and lines such as `01.2,1`"
            ) from None
        if name not in known:
            raise GradingError(
                f"{path}, line {line}: {name!r} is no exercise of the notebooks graded; use a key "
                f"such as {exercises[0].key if exercises else '01.1'} or a checker's name"
            )
        weights[name] = points
    return weights


def points(exercise: Exercise, weights: dict[str, float]) -> float:
    """The exercise's weight: by key, then by checker, then the default table, else 1."""
    for name in (exercise.key, exercise.checker):
        if name in weights:
            return weights[name]
    return DEFAULT_POINTS.get(exercise.checker, 1)


def column(exercise: Exercise) -> str:
    """The gradebook header of an exercise: its key and what it checks, e.g. 01.1 basic_block."""
    return f"{exercise.key} {exercise.checker.removeprefix('check_')}".strip()


def gradebook_rows(
    submissions: list[Submission], exercises: list[Exercise], weights: dict[str, float]
) -> list[dict[str, object]]:
    """One row per student (sorted), the columns as gradebook.csv has them."""
    possible = sum(points(e, weights) for e in exercises)
    rows = {}
    for sub in submissions:
        row = rows.setdefault(sub.student, {"student": sub.student, "flags": [], "notes": []})
        for result in sub.results:
            earned = points(result.exercise, weights) if result.outcome == PASSED else 0
            row[column(result.exercise)] = f"{earned:g}"
        row["flags"] += sub.flags
        row["notes"] += [f"{sub.path.name}: {sub.problem}"] if sub.problem else []
        row["notes"] += sub.notes
    table = []
    for student in sorted(rows):
        row = rows[student]
        cells = {column(e): row.get(column(e), "") for e in exercises}
        total = sum(float(value) for value in cells.values() if value != "")
        table.append(
            {"student": student, **cells, "points": f"{total:g}", "out_of": f"{possible:g}",
             "flags": "; ".join(row["flags"]), "notes": "; ".join(row["notes"])}
        )  # fmt: skip
    return table


def outcome_rows(submissions: list[Submission], weights: dict[str, float]) -> list[dict]:
    return [
        {"student": sub.student, "file": sub.path.name, "notebook": sub.stem,
         "exercise": r.exercise.key, "checker": r.exercise.checker, "outcome": r.outcome,
         "points": f"{points(r.exercise, weights) if r.outcome == PASSED else 0:g}",
         "message": r.message}
        for sub in submissions for r in sub.results
    ]  # fmt: skip


def _csv(rows: list[dict], header: list[str]) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _rates(submissions, exercises, weights) -> list[str]:
    lines = [
        "| exercise | checker | points | " + " | ".join(OUTCOMES) + " | pass rate |",
        "|---|---|---|" + "---|" * len(OUTCOMES) + "---|",
    ]
    for exercise in exercises:
        counts = Counter(
            r.outcome for s in submissions for r in s.results if r.exercise.key == exercise.key
        )
        n = sum(counts.values())
        rate = f"{100 * counts[PASSED] / n:.0f}% of {n}" if n else "-"
        cells = " | ".join(str(counts[o]) for o in OUTCOMES)
        lines.append(
            f"| {exercise.key} | {exercise.checker} | {points(exercise, weights):g} | {cells} | "
            f"{rate} |"
        )
    return lines


def _messages(submissions, exercises) -> list[str]:
    lines = []
    for exercise in exercises:
        counts = Counter(
            (r.outcome, " ".join(r.message.split()))
            for s in submissions for r in s.results
            if r.exercise.key == exercise.key and r.outcome != PASSED
        )  # fmt: skip
        if counts:
            lines += ["", f"**{column(exercise)}**", ""]
            lines += [
                f"- {n} × {o}: {m or '(no message)'}"
                for (o, m), n in counts.most_common(TOP_MESSAGES)
            ]
    return lines[1:] or ["Nothing: every graded exercise passed."]


def _submission_row(sub: Submission) -> str:
    if sub.problem:
        return f"| {sub.student} | {sub.path.name} | {sub.stem or '-'} | - | - | {sub.problem} |"
    passed = sum(r.outcome == PASSED for r in sub.results)
    return (
        f"| {sub.student} | {sub.path.name} | {sub.stem} | {sub.seconds:.1f} | "
        f"{passed} of {len(sub.results)} | {'; '.join(sub.notes)} |"
    )


def _section(title: str, intro: str, items: list[str]) -> list[str]:
    return ["", f"## {title}", "", *([intro, ""] if intro else []), *(items or ["None."])]


def report_markdown(submissions, exercises, weights, limits: str, to_read=()) -> str:
    """report.md: pass rates, frequent messages, flags, exercises to read, problems, times."""
    from medtl_helpers.config import device_label

    graded = [s for s in submissions if not s.problem]
    students = len({s.student for s in submissions})
    lines = [
        "# Grades",
        "",
        f"{len(graded)} of {len(submissions)} submissions from {students} students graded in "
        f"{sum(s.seconds for s in graded):.0f} s of notebook time: quick profile, {limits}, on "
        f"{device_label()}.",
        *_section("Pass rates", "", _rates(submissions, exercises, weights)),
        *_section(
            "What the class got wrong",
            f"The {TOP_MESSAGES} most frequent messages per exercise, with how many students got "
            "each.",
            _messages(submissions, exercises),
        ),
        *_section(
            "Flags",
            "The course's check cells and checkers decided these outcomes; read the executed copy.",
            [f"- {s.student} ({s.path.name}): {flag}" for s in submissions for flag in s.flags],
        ),
        *_section(
            "Exercises to read",
            "The predictions and open questions the notebooks ask for (cells tagged `prediction` "
            "or `open`): no checker reads them. Read each in grades/<student>/; the answers are "
            "the cells around the question, the cells a student added as well.",
            [f"- {item}" for item in to_read],
        ),
        *_section(
            "Not graded",
            "",
            [f"- {s.student} ({s.path.name}): {s.problem}" for s in submissions if s.problem],
        ),
        *_section(
            "Submissions",
            "",
            ["| student | file | notebook | seconds | passed | notes |",
             "|---|---|---|---|---|---|", *map(_submission_row, submissions)],
        ),
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def another_out() -> str:
    """How to grade into another folder, in the words of the interface in use."""
    return in_terms("give grade_class another out folder", "choose another --out folder")


def write_reports(out: Path, submissions, exercises, weights, limits: str, to_read=()) -> None:
    """gradebook.csv, outcomes.csv and report.md in `out`; `to_read` lists the predictions and
    open questions of the notebooks graded, for the teacher to read. A failed write raises
    WriteError naming the file; the previous version of that file is kept."""
    rows = gradebook_rows(submissions, exercises, weights)
    header = ["student", *map(column, exercises), "points", "out_of", "flags", "notes"]
    write_text(out / "gradebook.csv", _csv(rows, header), another_out())
    outcome_header = ["student", "file", "notebook", "exercise", "checker", "outcome", "points",
                      "message"]  # fmt: skip
    outcomes = _csv(outcome_rows(submissions, weights), outcome_header)
    write_text(out / "outcomes.csv", outcomes, another_out())
    report = report_markdown(submissions, exercises, weights, limits, to_read)
    write_text(out / "report.md", report, another_out())
