"""`make course`: execute every notebook headless, in order, and print one line per notebook.

Executed copies go to `runs/notebooks/`, so the committed notebooks stay free of outputs, with
`timings.md`: the wall time per notebook as a table to paste into docs/TEACHING.md. The
summary line names the profile and the data source the notebook announced in its banner, so a
teacher can see at a glance whether a run used real X-rays or the synthetic stand-in.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from medtl_helpers import config
from medtl_helpers.atomic import write_text
from medtl_helpers.config import device_label
from medtl_helpers.course.links import numbered_notebooks

_SOURCE = re.compile(r"Data source: (\S+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class NotebookRun:
    name: str
    seconds: float
    profile: str
    source: str
    error: str | None = None

    def line(self) -> str:
        status = "ok" if self.error is None else f"FAILED: {self.error}"
        return (
            f"{self.name:<34} {self.seconds:7.1f} s  profile={self.profile:<5} "
            f"data={self.source:<15} {status}"
        )


def announced_source(notebook) -> str:
    """The data source a notebook printed ("Data source: …"), or '-' when it printed none."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            match = _SOURCE.search(output.get("text", "") or "")
            if match:
                return match.group(1)
    return "-"


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
        client.execute()
    except CellExecutionError as err:
        error = _ANSI.sub("", str(err).strip().splitlines()[-1])[:200]
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


def timings_markdown(runs: list[NotebookRun], device: str) -> str:
    """The runs as a Markdown table, in the shape of the run-time table in docs/TEACHING.md."""
    profiles = sorted({r.profile for r in runs})
    lines = [
        f"Profile {', '.join(profiles)} on {device}.",
        "",
        "| notebook | seconds | data | status |",
        "|---|---|---|---|",
    ]
    for r in runs:
        status = "ok" if r.error is None else f"FAILED: {r.error}"
        lines.append(f"| {r.name} | {r.seconds:.1f} | {r.source} | {status} |")
    total = sum(r.seconds for r in runs)
    lines.append(f"| whole course | {total / 60:.1f} min | | |")
    return "\n".join(lines) + "\n"


def run_course(
    folder: Path, out_dir: Path, only: list[str] | None = None, timeout: int = 3600
) -> list[NotebookRun]:
    """Run the numbered notebooks in order (`only`: those numbers); a failure does not stop it."""
    notebooks = numbered_notebooks(folder)
    if only:
        notebooks = [p for p in notebooks if p.name[:2] in only]
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
    write_text(table, timings_markdown(runs, device_label()))
    print(f"{len(runs)} notebooks in {total:.0f} s; executed copies and {table.name} in {out_dir}")
    failed = [r for r in runs if r.error is not None]
    if failed:
        print(f"{len(failed)} of {len(runs)} notebooks FAILED:")
        for run in failed:
            print(f"  {run.name}: {run.error}")
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
