"""Command line: `python -m medtl_helpers data | train | evaluate | course | student | links …`."""

from __future__ import annotations

import argparse
import sys
import warnings

from medtl_helpers.course.data_commands import add_data_commands
from medtl_helpers.course.gradebook import add_grade_command
from medtl_helpers.course.links import add_links_command
from medtl_helpers.course.runner import add_course_command
from medtl_helpers.course.student import add_student_command
from medtl_helpers.course.train_commands import add_train_commands
from medtl_helpers.errors import MedtlError, command_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m medtl_helpers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_data_commands(sub)
    add_train_commands(sub)
    add_course_command(sub)
    add_student_command(sub)
    add_links_command(sub)
    add_grade_command(sub)
    return parser


def _plain_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings(), command_line():  # messages name flags, not variables
            warnings.showwarning = _plain_warning  # one line each, without the source location
            return args.run(args)
    except MedtlError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
