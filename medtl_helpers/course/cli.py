"""Command line: `medtl data | train | evaluate | calibrate | course | student | links | grade |
guide …`.

`python -m medtl_helpers …` runs the same commands where the `medtl` script is not on the PATH.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import warnings

from medtl_helpers.config.version import __version__
from medtl_helpers.course.data_commands import add_data_commands
from medtl_helpers.course.gradebook import add_grade_command
from medtl_helpers.course.guide import add_guide_command
from medtl_helpers.course.links import add_links_command
from medtl_helpers.course.runner import add_course_command
from medtl_helpers.course.site_commands import add_site_commands
from medtl_helpers.course.student import add_student_command
from medtl_helpers.course.train_commands import add_train_commands
from medtl_helpers.errors import MedtlError, command_line, error_line

# The commands that read, write and run notebooks, and what they do it with: pyproject.toml's
# `course` extra (tests/test_packaging.py keeps the two lists equal).
NOTEBOOK_COMMANDS = ("course", "student", "links", "grade")
NOTEBOOK_TOOLS = ("nbformat", "nbclient", "traitlets", "jupyter_core", "ipykernel")


def build_parser(prog: str = "medtl") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--version", action="version", version=f"medtl_helpers {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_data_commands(sub)
    add_train_commands(sub)
    add_site_commands(sub)
    add_course_command(sub)
    add_student_command(sub)
    add_links_command(sub)
    add_grade_command(sub)
    add_guide_command(sub)
    return parser


def _plain_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def missing_notebook_tools(command: str, prog: str) -> str:
    """The error to print when `command` needs a notebook tool that is not installed, else ""."""
    if command not in NOTEBOOK_COMMANDS:
        return ""
    missing = [name for name in NOTEBOOK_TOOLS if importlib.util.find_spec(name) is None]
    if not missing:
        return ""
    return (
        f"`{prog} {command}` needs the notebook tools {', '.join(NOTEBOOK_TOOLS)}; missing here: "
        f"{', '.join(missing)}. Install the package's `course` extra: pip install -e '.[course]' "
        f"in the course folder (`make` does that), or pip install {' '.join(missing)}"
    )


def main(argv: list[str] | None = None, prog: str = "medtl") -> int:
    """Run one command; `prog` is the name the help shows (`python -m medtl_helpers` there)."""
    args = build_parser(prog).parse_args(argv)
    missing = missing_notebook_tools(args.command, prog)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings(), command_line():  # messages name flags, not variables
            warnings.showwarning = _plain_warning  # one line each, without the source location
            return args.run(args)
    except MedtlError as err:
        print(error_line(err), file=sys.stderr)  # under torchrun, rank 0 alone says it in full
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
