#!/usr/bin/env python3
"""Edit the course notebooks cell by cell from the shell, keeping their JSON tidy.

The notebooks in notebooks/ are the one source of the course: there is no generator script
behind them. Edit them in JupyterLab (`make lab`), or with this tool when a change is easier to
script or review as text. Either way, commit them with outputs cleared: the nbstripout hook in
.pre-commit-config.yaml does it (`pre-commit run nbstripout --all-files`).

    python tools/nbcell.py list NOTEBOOK                  index, id, type, tags, first line
    python tools/nbcell.py show NOTEBOOK CELL             the cell's source
    python tools/nbcell.py set NOTEBOOK CELL [FILE]       replace the source (FILE or stdin)
    python tools/nbcell.py insert NOTEBOOK AFTER TYPE [FILE] [--tags a,b]   a new cell after AFTER
    python tools/nbcell.py delete NOTEBOOK CELL

CELL is an index (as `list` prints it) or a cell id. Writing goes through nbformat, so a cell
keeps its id and metadata, and an edited code cell loses its now stale outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

CLEAR_IS_GONE = (
    "nbcell.py has no `clear` any more: nbstripout clears outputs and execution counts, keeping "
    "cell ids and metadata. Run `pre-commit run nbstripout --all-files` (or `--files NOTEBOOK`); "
    "`pip install pre-commit` first if you have not."
)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def write(notebook: nbformat.NotebookNode, path: Path) -> None:
    nbformat.validate(notebook)
    nbformat.write(notebook, path)


def find(notebook: nbformat.NotebookNode, cell: str) -> int:
    """The index of `cell`, given as an index or an id; SystemExit naming what exists otherwise."""
    if cell.lstrip("-").isdigit():
        index = int(cell)
        if -len(notebook.cells) <= index < len(notebook.cells):
            return index % len(notebook.cells)
    for index, candidate in enumerate(notebook.cells):
        if candidate.get("id") == cell:
            return index
    raise SystemExit(f"no cell {cell!r}: use an index below {len(notebook.cells)} or a cell id")


def drop_outputs(cell: nbformat.NotebookNode) -> None:
    """Drop a code cell's outputs and execution count: stale once its source has changed."""
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None


def source_text(file: str | None) -> str:
    text = sys.stdin.read() if file in (None, "-") else Path(file).read_text(encoding="utf-8")
    return text.rstrip("\n")


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["clear"]:
        raise SystemExit(CLEAR_IS_GONE)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for name in ("list", "show", "set", "insert", "delete"):
        command = sub.add_parser(name)
        command.add_argument("notebook", type=Path)
        if name in ("show", "set", "delete"):
            command.add_argument("cell")
        if name == "insert":
            command.add_argument("after", help="index or id of the cell to insert after (-1: top)")
            command.add_argument("type", choices=["code", "markdown"])
        if name in ("set", "insert"):
            command.add_argument("file", nargs="?", help="source file (default: stdin)")
        if name == "insert":
            command.add_argument("--tags", default="", help="comma-separated cell tags")
    args = parser.parse_args(argv)

    notebook = read(args.notebook)
    if args.action == "list":
        for index, cell in enumerate(notebook.cells):
            tags = ",".join(cell.metadata.get("tags", []))
            first = (cell.source.splitlines() or [""])[0][:70]
            print(f"{index:>3} {cell.get('id', ''):<10} {cell.cell_type:<8} {tags:<20} {first}")
        return 0
    if args.action == "show":
        print(notebook.cells[find(notebook, args.cell)].source)
        return 0
    if args.action == "set":
        cell = notebook.cells[find(notebook, args.cell)]
        cell.source = source_text(args.file)
        drop_outputs(cell)
    elif args.action == "delete":
        del notebook.cells[find(notebook, args.cell)]
    elif args.action == "insert":
        make = nbformat.v4.new_code_cell if args.type == "code" else nbformat.v4.new_markdown_cell
        cell = make(source_text(args.file))
        tags = [tag for tag in args.tags.split(",") if tag]
        if tags:
            cell.metadata["tags"] = tags
        position = 0 if args.after == "-1" else find(notebook, args.after) + 1
        notebook.cells.insert(position, cell)
    write(notebook, args.notebook)
    return 0


if __name__ == "__main__":
    sys.exit(main())
