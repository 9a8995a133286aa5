"""`medtl guide`: rewrite the parts of docs/TEACHING.md that the notebooks and `make course` know.

Two blocks of the teacher's guide sit between marker comments and are generated here, never
edited by hand:

- `learning goals` (section 3): each notebook's "## Learning goals" cell, under the notebook's
  title, so the notebooks stay the one source of the goals;
- `run times` (section 2): the column of the run-time table for the profile a timings.md was
  measured with (`python -m medtl_helpers course notebooks` writes runs/notebooks/timings.md),
  and the sentence saying how it was measured. The other columns keep their values.

Without --write the command says whether the guide is current, and prints a diff when it is
not (exit 1), so a test or a CI job catches a guide that has drifted from its sources.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

from medtl_helpers.atomic import write_text
from medtl_helpers.course.links import numbered_notebooks
from medtl_helpers.course.runner import NotebookRun, earlier_runs, measured_dates
from medtl_helpers.errors import MedtlError

GUIDE = Path("docs/TEACHING.md")
GOALS_HEADING = "## Learning goals"
END = "<!-- end generated -->"
_HEADER = re.compile(r"^Profile (\S+) on (.+?)(?:, (\d+) torch threads?)?\.$")
FOOTNOTE_MARKS = "*†‡"
WIDTH = 100  # the guide's prose is wrapped at 100 characters


def _cells(path: Path) -> list[dict]:
    """The cells of a notebook file, each with its source as one string."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if isinstance(cell["source"], list):
            cell["source"] = "".join(cell["source"])
    return cells


def learning_goals(path: Path) -> tuple[str, str]:
    """A notebook's title (its first line, "00 · Setup and data") and its learning goals."""
    cells = _cells(path)
    title = cells[0]["source"].partition("\n")[0].removeprefix("# ").strip()
    for cell in cells:
        if cell["cell_type"] == "markdown" and cell["source"].startswith(GOALS_HEADING):
            return title, cell["source"].removeprefix(GOALS_HEADING).strip()
    raise MedtlError(
        f"{path} has no markdown cell starting with {GOALS_HEADING!r}: add one after the setup "
        "cells, with one '- ' line per goal, as the other notebooks have"
    )


def goals_markdown(folder: Path) -> str:
    """Section 3's body: every numbered notebook's title in bold, then its goals."""
    blocks = []
    for path in numbered_notebooks(folder):
        title, goals = learning_goals(path)
        blocks.append(f"**{title}**\n{goals}")
    return "\n\n".join(blocks)


def _block_span(text: str, name: str, guide: Path) -> tuple[int, int]:
    start = f"<!-- generated: {name} -->\n"
    if text.count(start) != 1:
        raise MedtlError(
            f"{guide} needs the marker line {start.strip()!r} exactly once (found "
            f"{text.count(start)}), with {END!r} on a line after it, around the generated {name}"
        )
    begin = text.index(start) + len(start)
    end = text.find("\n" + END, begin - 1)
    if end < 0:
        raise MedtlError(f"{guide}: no {END!r} line after {start.strip()!r}: add one")
    return begin, end + 1


def generated_block(text: str, name: str, guide: Path = GUIDE) -> str:
    """What sits between `<!-- generated: name -->` and the next `<!-- end generated -->`."""
    begin, end = _block_span(text, name, guide)
    return text[begin:end].strip("\n") + "\n"


def replace_block(text: str, name: str, body: str, guide: Path = GUIDE) -> str:
    """`text` with `body` between the markers of block `name`, a blank line either side."""
    begin, end = _block_span(text, name, guide)
    return text[:begin] + "\n" + body.strip("\n") + "\n\n" + text[end:]


@dataclass
class Timings:
    """What a timings.md says: the profile, the machine, the runs and when they were measured."""

    profile: str
    device: str
    threads: int | None
    runs: dict[str, NotebookRun]
    dates: tuple[str, str] | None


def read_timings(path: Path) -> Timings:
    """Read a timings.md; a missing file, another format or a failed notebook is an error."""
    if not path.exists():
        raise MedtlError(
            f"{path} does not exist: run `python -m medtl_helpers course notebooks --out "
            f"{path.parent}` (`make course`) first, or name its timings.md with --timings"
        )
    text = path.read_text(encoding="utf-8")
    header = text.partition("\n")[0]
    match = _HEADER.match(header)
    runs = earlier_runs(path, header) if match else None
    if not match or not runs:
        raise MedtlError(
            f"{path} is not a timings table of one profile ('Profile quick on cpu (…).' and one "
            f"row per notebook): first line {header!r}; write it again with `make course`"
        )
    failed = [f"{r.name}: {r.error}" for r in runs.values() if r.error]
    if failed:
        raise MedtlError(
            f"{path} records failed notebooks, whose times are not run times: "
            + "; ".join(failed)
            + ". Fix them, then run them again with `python -m medtl_helpers course notebooks "
            "--only NN` before writing the times into the guide"
        )
    profile, device, threads = match.groups()
    return Timings(profile, device, int(threads) if threads else None, runs, measured_dates(text))


def seconds_cell(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 100 else f"{seconds:.0f} s"


def minutes_cell(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 10 else f"{minutes:.0f} min"


def column_title(timings: Timings) -> str:
    """ "quick (2 cores)" on a CPU, "gpu (Tesla T4)" on a GPU: the table's column heading."""
    inside = timings.device.partition("(")[2].rstrip(")").split(", ")
    hardware = inside[0] if timings.device.startswith("cuda") else inside[-1]
    return f"{timings.profile} ({hardware})"


def measured_sentence(timings: Timings) -> str:
    """How the column was measured, from what timings.md records."""
    sources = " and ".join(sorted({r.source for r in timings.runs.values()}))
    threads = "" if timings.threads is None else f", {timings.threads} torch threads"
    when = ""
    if timings.dates is not None:
        first, last = timings.dates
        when = f", measured {first}" if first == last else f", measured {first} to {last}"
    return (
        f"The {timings.profile} column is one `make course` with {sources} data on "
        f"{timings.device}{threads}{when}."
    )


def _split_row(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _join_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def run_time_block(block: str, timings: Timings, notebooks: list[str]) -> str:
    """The `run times` block with the column of `timings.profile` measured again.

    Rows follow `notebooks` (stems, "00_setup_and_data"); a notebook timings.md has no row for
    is "not measured" in this column. The sentence on how the column was measured replaces
    the one for the same profile below the table.
    """
    lines = block.rstrip("\n").split("\n")
    table = [line for line in lines if line.startswith("|")]
    notes = "\n".join(lines[len(table) :]).split("\n\n")  # one paragraph per measured column
    head, rule, *rows = table
    titles = _split_row(head)
    found = [i for i, title in enumerate(titles) if title.split(" (")[0] == timings.profile]
    if not found:
        raise MedtlError(f"the run-time table has no {timings.profile!r} column: {head}")
    column = found[0]
    titles[column] = column_title(timings)
    by_label = {_split_row(row)[0]: _split_row(row) for row in rows}
    total = next((cells for label, cells in by_label.items() if label.startswith("whole")), None)
    new_rows = []
    for stem in notebooks:
        label = stem.replace("_", " ", 1)
        cells = by_label.get(label, [label] + ["not measured"] * (len(titles) - 1))
        run = timings.runs.get(stem)
        _warn_footnote(cells[column], label)
        cells[column] = seconds_cell(run.seconds) if run else "not measured"
        new_rows.append(cells)
    total = total or ["whole course"] + ["not measured"] * (len(titles) - 1)
    measured = [stem[:2] for stem in notebooks if stem in timings.runs]
    seconds = sum(run.seconds for run in timings.runs.values() if run.name in notebooks)
    part = "" if len(measured) == len(notebooks) else f" ({', '.join(measured)})"
    total[column] = minutes_cell(seconds) + part
    new_rows.append(total)
    sentence = measured_sentence(timings)
    own = sentence.split(" is ")[0] + " is "
    notes = [note for note in map(str.strip, notes) if note and not note.startswith(own)]
    table = "\n".join([_join_row(titles), rule] + [_join_row(cells) for cells in new_rows])
    wrapped = textwrap.fill(sentence, WIDTH, break_long_words=False, break_on_hyphens=False)
    return "\n\n".join([table, wrapped, *notes]) + "\n"


def _warn_footnote(cell: str, label: str) -> None:
    if cell and cell[-1] in FOOTNOTE_MARKS:
        print(
            f"note: {label}'s old figure {cell!r} carried footnote {cell[-1]}: check that the "
            "footnote under the table still applies, and edit or remove it"
        )


def regenerate(text: str, folder: Path, timings: Path | None, guide: Path) -> str:
    """The guide `text` with its generated blocks made again from `folder` (and `timings`)."""
    text = replace_block(text, "learning goals", goals_markdown(folder), guide)
    if timings is None:
        return text
    stems = [path.stem for path in numbered_notebooks(folder)]
    block = run_time_block(generated_block(text, "run times", guide), read_timings(timings), stems)
    return replace_block(text, "run times", block, guide)


def _command(args: argparse.Namespace) -> str:
    parts = ["python -m medtl_helpers guide --write"]
    if args.guide != GUIDE:
        parts.append(f"--guide {args.guide}")
    if args.notebooks != Path("notebooks"):
        parts.append(f"--notebooks {args.notebooks}")
    if args.timings is not None:
        parts.append(f"--timings {args.timings}")
    return " ".join(parts)


def _run_guide(args: argparse.Namespace) -> int:
    if not args.guide.is_file():
        raise MedtlError(f"{args.guide} does not exist: run this in the course folder, or --guide")
    old = args.guide.read_text(encoding="utf-8")
    new = regenerate(old, args.notebooks, args.timings, args.guide)
    if new == old:
        print(f"{args.guide} is current")
        return 0
    diff = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), str(args.guide), "generated"
    )
    print("".join(diff), end="")
    if args.write:
        write_text(args.guide, new)
        print(f"rewrote the generated blocks of {args.guide}")
        return 0
    print(f"{args.guide} is stale: run `{_command(args)}`")
    return 1


def add_guide_command(sub: argparse._SubParsersAction) -> None:
    guide = sub.add_parser(
        "guide", help="check (or --write) the generated parts of docs/TEACHING.md"
    )
    guide.add_argument("--guide", type=Path, default=GUIDE, help="default: docs/TEACHING.md")
    guide.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    guide.add_argument(
        "--timings",
        type=Path,
        metavar="TIMINGS_MD",
        help="a timings.md from `make course` (runs/notebooks/timings.md): fills its profile's "
        "column of the run-time table; without it only the learning goals are checked",
    )
    guide.add_argument("--write", action="store_true", help="rewrite the guide instead of checking")
    guide.set_defaults(run=_run_guide)
