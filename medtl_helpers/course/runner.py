"""`make course`: execute every notebook headless, in order, and print one line per notebook.

Executed copies go to `runs/notebooks/`, so the committed notebooks stay free of outputs, with
`timings.md`: the wall time per notebook as a table to paste into docs/TEACHING.md. A run of a
few notebooks (`--only 04`) replaces their rows and keeps the others, when they were measured
with the same profile on the same device with as many torch threads; its last line gives the
dates the rows were measured on. The summary line names the profile and the data
source the notebook announced in its banner, so a teacher can see at a glance whether a run used
real X-rays or the synthetic stand-in. A failed notebook is reported with its error's name and
whole message, which says how to fix it. The kernels run with MEDTL_PROGRESS=text, so that the
executed copies show how far each progress bar got (`medtl_helpers/progress.py`).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from medtl_helpers import config
from medtl_helpers.atomic import write_text
from medtl_helpers.config import device_label
from medtl_helpers.course.links import numbered_notebooks
from medtl_helpers.errors import in_terms

_SOURCE = re.compile(r"Data source: (\S+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A row of timings.md, as timings_markdown writes it; a `|` inside the status is escaped (\|).
_ROW = re.compile(r"^\| (\d\d_\S+) \| ([0-9.]+) \| (\S+) \| (ok|FAILED: .*) \|$")
_MEASURED = re.compile(r"^Measured (\d{4}-\d\d-\d\d)(?: to (\d{4}-\d\d-\d\d))?\.$")


@dataclass
class NotebookRun:
    name: str
    seconds: float
    profile: str
    source: str
    error: str | None = None

    @property
    def status(self) -> str:
        return "ok" if self.error is None else f"FAILED: {self.error}"

    def line(self) -> str:
        """One line per notebook; a message of several lines goes on, indented, below it."""
        return _indented(
            f"{self.name:<34} {self.seconds:7.1f} s  profile={self.profile:<5} "
            f"data={self.source:<15} {self.status}"
        )


def _indented(text: str, indent: str = "    ") -> str:
    return text.replace("\n", "\n" + indent)


def _table_cell(text: str) -> str:
    """`text` as one cell of a Markdown table: its lines joined by spaces, `|` escaped."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip()).replace("|", r"\|")


def cell_error(err) -> str:
    """'Name: message' of the exception a cell raised (a CellExecutionError): whole, no colours."""
    return _ANSI.sub("", f"{err.ename}: {err.evalue}" if err.evalue else err.ename).strip()


def announced_source(notebook) -> str:
    """The data source a notebook printed ("Data source: …"), or '-' when it printed none."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            match = _SOURCE.search(output.get("text", "") or "")
            if match:
                return match.group(1)
    return "-"


def kernel_environment() -> dict[str, str]:
    """The kernel's environment: ours, with text progress bars and without MPLBACKEND.

    A kernel whose MPLBACKEND is Agg (as the tests export) draws every figure into nothing: the
    executed copy would hold no figure, and the website that shows it none either. Without it,
    the kernel uses its own inline backend, which writes each figure into the cell's outputs.
    """
    env = {**os.environ, "MEDTL_PROGRESS": "text"}
    env.pop("MPLBACKEND", None)
    return env


def run_notebook(path: Path, out_dir: Path, timeout: int = 3600) -> NotebookRun:
    """Execute one notebook (at most `timeout` seconds per cell) and save the executed copy.

    A failing cell, a cell past the timeout and a kernel that dies (killed for memory, or a
    crash in native code) each end this notebook with its error recorded; the caller goes on.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    from traitlets.config import Config

    notebook = nbformat.read(path, as_version=4)
    # IPC (a local socket file) rather than TCP: the kernel is reachable from this machine only,
    # so it has nothing to warn about ("Kernel is running over TCP without encryption").
    kernel = Config()
    kernel.KernelManager.transport, kernel.KernelManager.ip = "ipc", _ipc_prefix()
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        config=kernel,
        resources={"metadata": {"path": path.parent}},
    )
    start, error = time.perf_counter(), None
    try:
        # a widget's bar is saved at 0%: in the executed copy each bar is its final line instead
        client.execute(env=kernel_environment())
    except CellExecutionError as err:
        error = cell_error(err)
    except CellTimeoutError:
        error = f"a cell ran longer than the {timeout} s timeout (--timeout)"
    except DeadKernelError:
        error = "the kernel died (out of memory, or a crash in native code)"
    seconds = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, out_dir / path.name)
    return NotebookRun(
        path.stem, seconds, config.get_profile().name, announced_source(notebook), error
    )


def _ipc_prefix() -> str:
    """Where the kernel's socket files go: a short path (sockets allow about 100 characters)."""
    folder = Path(tempfile.gettempdir()) / f"medtl-kernel-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "kernel")


def timings_markdown(
    runs: list[NotebookRun], device: str, course_size: int, dates: tuple[str, str] | None = None
) -> str:
    """The runs as a Markdown table, in the shape of the run-time table in docs/TEACHING.md.

    The last row totals the rows above it and says how many of the `course_size` notebooks
    they are: "whole course (10 notebooks)", or "4 of 10 notebooks". `dates`, the first and
    the last day the rows were measured on, go on a line below the table.
    """
    lines = [
        timings_header(runs, device),
        "",
        "| notebook | seconds | data | status |",
        "|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r.name} | {r.seconds:.1f} | {r.source} | {_table_cell(r.status)} |")
    minutes = sum(r.seconds for r in runs) / 60
    lines.append(f"| {covered(len(runs), course_size)} | {minutes:.1f} min | | |")
    if dates is not None:
        first, last = dates
        lines += ["", f"Measured {first}." if first == last else f"Measured {first} to {last}."]
    return "\n".join(lines) + "\n"


def measured_dates(text: str) -> tuple[str, str] | None:
    """The first and last day a timings.md says its rows were measured on, or None."""
    for match in filter(None, map(_MEASURED.match, text.splitlines())):
        return match.group(1), match.group(2) or match.group(1)
    return None


def timings_header(runs: list[NotebookRun], device: str) -> str:
    """The table's first line ("Profile quick on cpu (…)."): rows merge only under the same one."""
    return f"Profile {', '.join(sorted({r.profile for r in runs}))} on {device}."


def covered(rows: int, course_size: int) -> str:
    if rows == course_size:
        return f"whole course ({rows} notebook{'s' if rows != 1 else ''})"
    return f"{rows} of {course_size} notebooks"


def earlier_runs(table: Path, header: str) -> dict[str, NotebookRun] | None:
    """The rows of an earlier timings.md by notebook ({} when there is none), or None when it
    was measured with another profile or on another device (another first line)."""
    if not table.exists():
        return {}
    lines = table.read_text().splitlines()
    if not lines or lines[0] != header:
        return None
    profile = header.split()[1]
    runs = {}
    for match in filter(None, map(_ROW.match, lines)):
        name, seconds, source, status = match.groups()
        error = None if status == "ok" else status.removeprefix("FAILED: ").replace(r"\|", "|")
        runs[name] = NotebookRun(name, float(seconds), profile, source, error)
    return runs


def write_timings(table: Path, runs: list[NotebookRun], course: list[str]) -> str:
    """Write `runs` into timings.md with the earlier rows they do not replace; say what it holds.

    Rows stay in notebook order, and only rows of notebooks in `course` are kept.
    """
    # the thread count changes the times as much as the processor does, so it is in the header
    threads = torch.get_num_threads()
    device = f"{device_label()}, {threads} torch thread{'s' if threads != 1 else ''}"
    header = timings_header(runs, device)
    earlier = earlier_runs(table, header)
    if earlier is None:
        old = table.read_text().partition("\n")[0]
        print(f"{table} held times measured another way ({old!r}): replaced by a new table.")
        earlier = {}
    rows = {**earlier, **{r.name: r for r in runs}}
    kept = [rows[name] for name in course if name in rows]
    today = datetime.date.today().isoformat()
    kept_earlier = (set(earlier) - {r.name for r in runs}) & set(course)
    before = measured_dates(table.read_text()) if kept_earlier else None
    dates = (min(before[0], today), today) if before else (today, today)
    elsewhere = in_terms("give run_course another out_dir", "choose another --out folder")
    write_text(table, timings_markdown(kept, device, len(course), dates), elsewhere)
    return covered(len(kept), len(course))


def run_course(
    folder: Path, out_dir: Path, only: list[str] | None = None, timeout: int = 3600
) -> list[NotebookRun]:
    """Run the numbered notebooks in order (`only`: those numbers); a failure does not stop it."""
    course = numbered_notebooks(folder)
    notebooks = [p for p in course if p.name[:2] in only] if only else course
    if not notebooks:
        print(f"no numbered notebooks in {folder}" + (f" matching {only}" if only else ""))
        return []
    os.environ.setdefault("MEDTL_PROFILE", config.get_profile().name)
    runs = []
    for path in notebooks:
        runs.append(run_notebook(path, out_dir, timeout))
        print(runs[-1].line(), flush=True)
    total = sum(r.seconds for r in runs)
    table = out_dir / "timings.md"
    holds = write_timings(table, runs, [p.stem for p in course])
    print(
        f"{len(runs)} notebooks in {total:.0f} s; executed copies in {out_dir}, "
        f"{table.name} now holds {holds}"
    )
    failed = [r for r in runs if r.error is not None]
    if failed:
        print(f"{len(failed)} of {len(runs)} notebooks FAILED:")
        for run in failed:
            print(_indented(f"  {run.name}: {run.error}", "      "))
    return runs


def add_course_command(sub: argparse._SubParsersAction) -> None:
    course = sub.add_parser("course", help="execute every notebook headless, in order")
    course.add_argument("folder", type=Path, nargs="?", default=Path("notebooks"))
    course.add_argument("--out", type=Path, default=Path("runs/notebooks"))
    course.add_argument(
        "--only", nargs="+", metavar="NN", help="run only these notebook numbers, e.g. --only 04 07"
    )
    course.add_argument(
        "--timeout", type=int, default=3600, help="seconds a single cell may run (default 3600)"
    )
    course.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    runs = run_course(args.folder, args.out, args.only, args.timeout)
    return int(any(r.error for r in runs))
