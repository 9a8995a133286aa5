"""`python -m medtl_helpers …`, the `medtl` command by another name: see `course/cli.py`."""

import sys

from medtl_helpers.course.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m medtl_helpers"))
