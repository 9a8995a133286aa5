"""`python -m medtl_helpers …`: see `medtl_helpers/course/cli.py`."""

import sys

from medtl_helpers.course.cli import main

if __name__ == "__main__":
    sys.exit(main())
