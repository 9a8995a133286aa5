"""`python -m medtl_helpers grade SUBMISSIONS... --out grades/`: a class's notebooks, graded.

SUBMISSIONS are notebooks and folders of them. The student is the folder a file sits in below a
folder given on the command line (submissions/alice/01_residual_blocks.ipynb), else the start of
the file name up to the notebook number (alice_01_residual_blocks.ipynb, alice-01.ipynb), else
the whole file name (alice.ipynb). Which notebook a submission is comes from its cell ids (or its
title), never from its name alone; a number in the name, or --notebook, says which one was
expected. Each submission is rebuilt (grading.py) and run (outcomes.py); then --out gets:

    gradebook.csv   one row per student: points per checked exercise, total, out of, flags, notes
    outcomes.csv    one row per student and exercise: the outcome and the checker's message
    report.md       pass rates, the most frequent messages, flags, what was not graded, times
    <student>/NN_name.ipynb   each notebook as it was run, with its outputs, for reading
"""

from __future__ import annotations

import argparse
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from medtl_helpers.atomic import write_text
from medtl_helpers.course.grade_report import another_out, load_weights, points, write_reports
from medtl_helpers.course.grading import (
    CourseNotebook,
    GradingError,
    course_notebook,
    identify,
    read_submission,
    rebuild,
)
from medtl_helpers.course.grading_data import grading_data
from medtl_helpers.course.links import numbered_notebooks
from medtl_helpers.course.outcomes import PASSED, UNMATCHED, Submission, run_submission

_NAMED = re.compile(r"^(?P<student>.+?)[ _.-]+(?P<number>\d\d)(?:[ _.-].*)?$")
_BARE = re.compile(r"^(?P<number>\d\d)(?:[ _.-].*)?$")


def student_and_number(path: Path, root: Path | None = None) -> tuple[str, str]:
    """(student, notebook number or '') for a submitted file; `root` is the folder it was found
    in, whose subfolders are one per student."""
    if root is not None and len(path.relative_to(root).parts) > 1:
        named = _BARE.match(path.stem) or _NAMED.match(path.stem)
        return path.relative_to(root).parts[0], named["number"] if named else ""
    if named := _NAMED.match(path.stem):
        return named["student"], named["number"]
    if bare := _BARE.match(path.stem):
        return path.resolve().parent.name, bare["number"]
    return path.stem, ""


def find_submissions(paths: list[Path], notebook: str = "") -> list[Submission]:
    """Every file given, and every file below every folder given (hidden ones left out)."""
    found = []
    for given in map(Path, paths):
        if given.is_dir():
            files = sorted(p for p in given.rglob("*") if p.is_file())
            found += [
                (file, given)
                for file in files
                if not any(part.startswith(".") for part in file.relative_to(given).parts)
            ]
        elif given.is_file():
            found.append((given, None))
        else:
            raise GradingError(f"{given}: no such file or folder of submissions")
    submissions = []
    for file, root in found:
        student, number = student_and_number(file, root)
        submissions.append(Submission(student, file, notebook or number))
    return submissions


def load_course(folder: Path) -> dict[str, CourseNotebook]:
    notebooks = numbered_notebooks(folder)
    if not notebooks:
        raise GradingError(
            f"no course notebooks (00_name.ipynb …) in {folder}: give the instructor's "
            "notebooks folder with --notebooks"
        )
    return {path.stem: course_notebook(path) for path in notebooks}


def _run(submission: Submission, course_nb: CourseNotebook, notebook, has_ids, limits, data):
    try:
        rebuilt = rebuild(notebook, has_ids, course_nb)
        graded = run_submission(rebuilt, course_nb, *limits, data)
    except Exception as err:  # a notebook or a kernel that fails us: the others still count
        submission.problem = f"could not be run: {type(err).__name__}: {err}"
        return None
    submission.results, submission.seconds = graded.results, graded.seconds
    submission.flags, submission.notes = rebuilt.flags, rebuilt.notes
    submission.flags += [f"{r.exercise.key}: {r.flag}" for r in graded.results if r.flag]
    if graded.stopped:
        submission.notes.append(f"{course_nb.stem[:2]}: stopped early: {graded.stopped}")
    return rebuilt.notebook


def prepare(submission: Submission, course: dict[str, CourseNotebook], seen: set) -> tuple | None:
    """Read and identify a submission: (notebook, has_ids) to run, or None with its problem set.
    `seen` holds the (student, notebook) pairs already taken: a second copy is not graded."""
    notebook, has_ids, submission.problem = read_submission(submission.path)
    if notebook is None:
        return None
    submission.stem, how = identify(notebook, has_ids, course)
    if not submission.stem:
        submission.problem = "not a notebook of this course: no cell ids or title in common"
    elif submission.expected and not submission.stem.startswith(submission.expected):
        submission.problem = (
            f"another notebook than expected: this is {submission.stem} (by its {how}), "
            f"but {submission.expected} was expected"
        )
    elif (submission.student, submission.stem) in seen:
        submission.problem = f"a second submission of {submission.stem} by {submission.student}"
    if submission.problem:
        return None
    seen.add((submission.student, submission.stem))
    return notebook, has_ids


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "student"


def grade_class(
    paths: list[Path],
    out: Path,
    notebooks: Path = Path("notebooks"),
    notebook: str = "",
    weights_file: Path | None = None,
    cell_timeout: float = 60,
    notebook_timeout: float = 600,
    jobs: int = 1,
    data: Path | None = None,
    pretrained: str | None = None,
) -> list[Submission]:
    """Grade every submission under `paths`, `jobs` at a time, and write the gradebook, outcomes,
    report and the executed notebooks into `out`; prints one line per submission. The notebooks
    run on `data` (a Kermany or PneumoniaMNIST folder), else on the quick profile's synthetic
    X-rays (grading_data.py), from the quick profile's random initialisation unless `pretrained`
    is "imagenet" (the weights must then be in torchvision's cache, as `config.weights` says;
    make test grades the reference solutions so, on stand-in weights)."""
    with tempfile.TemporaryDirectory(prefix="medtl-grade-data-") as workdir:
        return _grade_class(
            paths, out, notebooks, notebook, weights_file, (cell_timeout, notebook_timeout),
            jobs, data, pretrained, Path(workdir),
        )  # fmt: skip


def _grade_class(
    paths, out, notebooks, notebook, weights_file, limits, jobs, data, pretrained, workdir
):
    import nbformat

    cell_timeout, notebook_timeout = limits

    if cell_timeout <= 0 or notebook_timeout <= 0 or jobs < 1:
        raise GradingError(
            f"--cell-timeout {cell_timeout:g}, --notebook-timeout {notebook_timeout:g} and --jobs "
            f"{jobs} must all be positive"
        )
    course = load_course(Path(notebooks))
    if notebook and not any(stem.startswith(notebook) for stem in course):
        raise GradingError(f"--notebook {notebook}: no such notebook in {notebooks}")
    submissions = find_submissions(paths, notebook)
    in_scope = [c for stem, c in course.items() if not notebook or stem.startswith(notebook)]
    weights = {}
    if weights_file:
        weights = load_weights(weights_file, [e for c in in_scope for e in c.checked])
    if (Path(out) / "gradebook.csv").exists():
        print(f"{out} holds an earlier grading run: its gradebook, outcomes and report are "
              "replaced, and a graded copy stays until the same student's notebook is graded "
              "again. Grade into an empty folder to keep nothing of it.")  # fmt: skip
    seen: set[tuple[str, str]] = set()
    prepared = [(s, prepare(s, course, seen)) for s in submissions]
    elsewhere = another_out()  # here: the pool's threads do not see the interface in use
    shared = grading_data(data, workdir)
    if pretrained:
        shared.env["MEDTL_PRETRAINED"] = pretrained
        shared.describe += f", with {pretrained} weights"

    def grade(item: tuple[Submission, tuple | None]) -> Submission:
        submission, readable = item
        if readable is not None:
            executed = _run(submission, course[submission.stem], *readable, limits, shared)
            if executed is not None:
                copy = Path(out) / _safe(submission.student) / f"{submission.stem}.ipynb"
                write_text(copy, nbformat.writes(executed) + "\n", elsewhere)
        return submission

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # each job waits on its kernel
        for submission in pool.map(grade, prepared):
            print(summary_line(submission, weights), flush=True)
    graded = {s.stem for s in submissions if s.results}
    exercises = [e for c in course.values() for e in c.checked if c.stem in graded] or [
        e for c in in_scope for e in c.checked
    ]
    run_on = (
        f"{cell_timeout:g} s per answer, {notebook_timeout:g} s per notebook, on {shared.describe}"
    )
    to_read = [f"{item} ({c.stem}.ipynb)" for c in course.values() if c.stem in graded
               for item in c.to_read]  # fmt: skip
    write_reports(Path(out), submissions, exercises, weights, run_on, to_read)
    return submissions


def summary_line(submission: Submission, weights: dict[str, float]) -> str:
    name = f"{submission.student:<14} {submission.path.name:<36}"
    if submission.problem:
        return f"{name} not graded: {submission.problem}"
    got = sum(points(r.exercise, weights) for r in submission.results if r.outcome == PASSED)
    total = sum(points(r.exercise, weights) for r in submission.results)
    outcomes = ", ".join(f"{r.exercise.key} {r.outcome}" for r in submission.results)
    flags = f"  FLAGGED ({len(submission.flags)})" if submission.flags else ""
    why = next((r.message for r in submission.results if r.message.startswith(UNMATCHED)), "")
    why = f"  ({why})" if why else ""
    return f"{name} {got:g}/{total:g} points in {submission.seconds:5.1f} s: {outcomes}{flags}{why}"


def _run_grade(args: argparse.Namespace) -> int:
    submissions = grade_class(
        args.submissions, args.out, args.notebooks, args.notebook, args.weights,
        args.cell_timeout, args.notebook_timeout, args.jobs, args.data,
    )  # fmt: skip
    graded = sum(1 for s in submissions if not s.problem)
    print(f"{graded} of {len(submissions)} submissions graded; gradebook.csv and report.md in "
          f"{args.out}")  # fmt: skip
    return 0 if graded or not submissions else 1  # nothing graded: a failure, whatever the cause


def add_grade_command(sub: argparse._SubParsersAction) -> None:
    grade = sub.add_parser(
        "grade", help="run submitted student notebooks and write a gradebook (docs/TEACHING.md §4)"
    )
    grade.add_argument("submissions", type=Path, nargs="+", help="notebooks or folders of them")
    grade.add_argument("--out", type=Path, default=Path("grades"))
    grade.add_argument(
        "--notebooks", type=Path, default=Path("notebooks"), help="the instructor's notebooks"
    )
    grade.add_argument(
        "--notebook", default="", metavar="NN", help="the notebook expected, e.g. 01"
    )
    grade.add_argument("--weights", type=Path, help="CSV with columns exercise,points")
    grade.add_argument(
        "--data", type=Path, metavar="PATH",
        help="a Kermany folder (or one holding pneumoniamnist_64.npz) to grade on, only read; "
        "default: the quick profile's synthetic X-rays",
    )  # fmt: skip
    grade.add_argument("--cell-timeout", type=float, default=60, help="seconds per answer or check")
    grade.add_argument("--notebook-timeout", type=float, default=600, help="seconds per notebook")
    grade.add_argument(
        "--jobs", type=int, default=1, help="submissions run at once (at most one per 2 cores)"
    )
    grade.set_defaults(run=_run_grade)
