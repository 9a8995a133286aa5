"""`grade`: run a rebuilt submission in a fresh kernel and give each checked exercise one outcome.

The notebook runs in a new temporary folder with the quick profile, offline, on the grading run's
data (grading_data.py: by default the quick profile's synthetic X-rays), with its own runs and
cache folders, so one student's files never reach another's. Execution goes on past errors,
as a student would by running the next cell. An answer or check cell gets `cell_timeout` seconds
(then the kernel is interrupted); the whole notebook gets `notebook_timeout`. A kernel that dies
or ignores the interrupt ends the run, and the exercises that did not run get an outcome saying
so. The outcome of an exercise is read from its check cell: passed (no exception), wrong
(AssertionError: the checker's message; or TamperingError: a flag naming what the answer changed,
watch.py), not attempted (NotImplementedError: the stub), timeout, or error (any other exception,
with its last line, from the answer when the answer failed).
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from medtl_helpers.course.grading import CourseNotebook, Exercise, Rebuilt
from medtl_helpers.course.grading_data import GradingData, grading_data
from medtl_helpers.course.watch import TamperingError

PASSED, WRONG, NOT_ATTEMPTED, ERROR, TIMEOUT = (
    "passed", "wrong", "not attempted", "error", "timeout"
)  # fmt: skip
OUTCOMES = (PASSED, WRONG, NOT_ATTEMPTED, ERROR, TIMEOUT)
UNMATCHED = "no answer matched"  # how a row starts whose stub ran because no answer was found
TIMED_OUT = "GradeTimeout"  # the exception name a cell stopped at its time limit reports
KERNEL_DIED = "KernelDied"
KERNEL_ENV = {
    "MEDTL_PROFILE": "quick",
    "MEDTL_OFFLINE": "1",
    "MPLBACKEND": "Agg",
    "MEDTL_PROGRESS": "text",  # progress bars as text lines (medtl_helpers/progress.py)
}


@dataclass
class Result:
    exercise: Exercise
    outcome: str
    message: str = ""
    flag: str = ""  # what the answer changed to pass its check (watch.py), for the gradebook


@dataclass
class Execution:
    errors: dict[int, tuple[str, str]] = field(default_factory=dict)  # cell run -> (ename, evalue)
    stopped_at: int | None = None  # the last cell that ran, when the rest did not
    why: str = ""  # why the rest did not run, in words
    started: float = 0.0  # time.monotonic() when the kernel was asked for
    seconds: float = 0.0


def kernel_environment(folder: Path, data: GradingData | None = None) -> dict[str, str]:
    """The grader's environment: the quick profile, the grading run's data (by default the
    quick profile's synthetic X-rays), and the submission's own folders inside `folder`."""
    settings = ("MEDTL_SOURCE", "MEDTL_PRETRAINED", "MEDTL_DATA", "MEDTL_CACHE", "MEDTL_RUNS")
    env = {k: v for k, v in os.environ.items() if k not in settings}
    env.update(KERNEL_ENV, MEDTL_RUNS=str(folder / "runs"))
    env.update((data or grading_data(None, folder)).environment(folder))
    return env


def _interrupted(cell) -> bool:
    """Whether a timed-out cell came back (its KeyboardInterrupt arrived) after the interrupt."""
    return any(output.get("output_type") == "error" for output in cell.get("outputs", []))


def _time_limit(client, seconds: int) -> None:
    client.timeout = seconds
    client.error_on_timeout = {
        "ename": TIMED_OUT, "evalue": f"stopped at its time limit of {seconds} s", "traceback": []
    }  # fmt: skip


def _run_cells(client, rebuilt: Rebuilt, run: Execution, cell_timeout: float, total: float):
    """Execute the code cells in order until the end, a dead or deaf kernel, or `total` seconds
    after the run began."""
    from nbclient.exceptions import DeadKernelError

    graded = {i for cells in rebuilt.answers.values() for i in cells} | set(rebuilt.checks.values())
    for index, cell in enumerate(rebuilt.notebook.cells):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        left = total - (time.monotonic() - run.started)
        if left <= 0:
            run.why = f"the notebook time limit of {total:g} s was reached"
            return
        _time_limit(client, max(1, math.ceil(min(left, cell_timeout) if index in graded else left)))
        run.stopped_at = index
        try:
            client.execute_cell(cell, index)
        except DeadKernelError:
            run.errors[index] = (KERNEL_DIED, "the kernel died")
            run.why = f"the kernel died in cell {index}"
            return
        if run.errors.get(index, ("",))[0] == TIMED_OUT and not _interrupted(cell):
            run.why = f"cell {index} went on after its time limit and the interrupt"
            return
    run.stopped_at = None  # every cell ran


def execute(
    rebuilt: Rebuilt,
    folder: Path,
    cell_timeout: float,
    notebook_timeout: float,
    data: GradingData | None = None,
) -> Execution:
    """Run `rebuilt.notebook` in place (outputs are written into it) in a kernel started in
    `folder`; answer and check cells get `cell_timeout` seconds each, the notebook in all
    `notebook_timeout`; `data` is what its data cells load (`grading_data`)."""
    from nbclient import NotebookClient

    run = Execution()

    def record(cell, cell_index, execute_reply):
        content = (execute_reply or {}).get("content", {})
        failed = content.get("status") == "error"
        run.errors[cell_index] = (content["ename"], content["evalue"]) if failed else ("", "")

    client = NotebookClient(
        rebuilt.notebook, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
        shutdown_kernel="immediate", on_cell_executed=record,
        resources={"metadata": {"path": str(folder)}},
    )  # fmt: skip
    run.started = time.monotonic()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}  # the kernel's own logs
    with client.setup_kernel(env=kernel_environment(folder, data), cwd=str(folder), **quiet):
        _run_cells(client, rebuilt, run, cell_timeout, notebook_timeout)
    run.seconds = time.monotonic() - run.started
    if threading.current_thread() is not threading.main_thread():
        from jupyter_core.utils import ensure_event_loop

        ensure_event_loop().close()  # the loop nbclient made for this worker thread
    return run


def _last_line(ename: str, evalue: str) -> str:
    lines = [line for line in str(evalue).strip().splitlines() if line.strip()]
    return f"{ename}: {lines[-1]}" if lines else ename


def _first_output_line(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            return output.get("text", "").strip().split("\n")[0]
    return ""


def _not_run(exercise: Exercise, rebuilt: Rebuilt, run: Execution) -> Result:
    """An exercise whose check never ran because the kernel died, hung or ran out of time."""
    answer_cells = rebuilt.answers.get(exercise.key, [])
    ename = run.errors.get(run.stopped_at, ("",))[0]
    if run.stopped_at in answer_cells and ename == KERNEL_DIED:
        return Result(exercise, ERROR, "the kernel died while running the answer")
    outcome = ERROR if ename == KERNEL_DIED else TIMEOUT
    if run.stopped_at in answer_cells:
        return Result(exercise, outcome, f"the answer was stopped: {run.why}")
    owner = next((k for k, cells in rebuilt.answers.items() if run.stopped_at in cells), None)
    where = f" (the answer to {owner})" if owner else ""
    return Result(exercise, outcome, f"not run: {run.why}{where}")


def outcome(exercise: Exercise, rebuilt: Rebuilt, run: Execution) -> Result:
    """The outcome of one checked exercise, read from how its check and answer cells ended."""
    check = rebuilt.checks[exercise.key]
    if check not in run.errors:
        return _not_run(exercise, rebuilt, run)
    ename, evalue = run.errors[check]
    if not ename:
        return Result(exercise, PASSED, _first_output_line(rebuilt.notebook.cells[check]))
    if ename == TamperingError.__name__:  # no points; the check's own verdict, if it gave one
        flag, _, verdict = evalue.strip().partition("\n")
        return Result(exercise, WRONG, verdict.strip() or flag, flag)
    known = {"AssertionError": WRONG, "NotImplementedError": NOT_ATTEMPTED, TIMED_OUT: TIMEOUT}
    if ename in known:
        message = {"AssertionError": evalue.strip(), TIMED_OUT: f"the check was {evalue}"}
        return Result(exercise, known[ename], message.get(ename, _last_line(ename, evalue)))
    for cell in rebuilt.answers.get(exercise.key, []):  # a check that fails because the answer did
        answer_ename, answer_evalue = run.errors.get(cell, ("", ""))
        if answer_ename == TIMED_OUT:
            return Result(exercise, TIMEOUT, f"the answer was {answer_evalue}")
        if answer_ename == "NotImplementedError":
            return Result(exercise, NOT_ATTEMPTED, _last_line(answer_ename, answer_evalue))
        if answer_ename:
            return Result(exercise, ERROR, "the answer raised " + _last_line(*run.errors[cell]))
    return Result(exercise, ERROR, _last_line(ename, evalue))


@dataclass
class Submission:
    student: str
    path: Path
    expected: str = ""  # the notebook number asked for ("01"), from --notebook or the file name
    stem: str = ""  # the course notebook it is, once identified
    results: list[Result] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problem: str = ""  # why it was not graded
    seconds: float = 0.0


@dataclass
class Graded:
    """One submission, run: an outcome per checked exercise, the time, why it stopped early."""

    results: list[Result]
    seconds: float
    stopped: str = ""


def run_submission(
    rebuilt: Rebuilt,
    course_nb: CourseNotebook,
    cell_timeout: float,
    notebook_timeout: float,
    data: GradingData | None = None,
) -> Graded:
    """Execute `rebuilt` (its cells get their outputs) in a temporary folder that is removed
    afterwards, and grade it."""
    with tempfile.TemporaryDirectory(prefix="medtl-grade-") as folder:
        run = execute(rebuilt, Path(folder), cell_timeout, notebook_timeout, data)
    results = [outcome(exercise, rebuilt, run) for exercise in course_nb.checked]
    return Graded(explain_unmatched(results, rebuilt), run.seconds, run.why)


def explain_unmatched(results: list[Result], rebuilt: Rebuilt) -> list[Result]:
    """`results`, where a stub ran because no answer could be found, with the reason as the
    message of that exercise's row (outcomes.csv, the printed line), not only in the notes."""
    for result in results:
        if result.outcome == NOT_ATTEMPTED and result.exercise.key in rebuilt.unmatched:
            result.message = f"{UNMATCHED}: {rebuilt.unmatched[result.exercise.key]}"
    return results
