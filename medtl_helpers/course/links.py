"""The one place that says where the course lives: Colab badges and the Colab setup cell.

Every notebook opens with a Colab badge (cell 1) and a setup cell (cell 2) that, on Colab only,
installs this package from the repository and names the GPU. Both are generated from the
constants below, never edited by hand: `python -m medtl_helpers links --write notebooks` rewrites
them (and the badges in README.md), `links --check` and a test fail when one has drifted. A fork
changes REPOSITORY here and runs `links --write`.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

import medtl_helpers
from medtl_helpers.errors import MedtlError

if TYPE_CHECKING:
    import nbformat

REPOSITORY = "medtl-course/medtl"  # GitHub owner/name of the course (package and notebooks)
BRANCH = "main"
# Where `make student` copies are published for students to open: student/NN_name.ipynb on this
# branch of this repository (docs/TEACHING.md shows how to push them there).
STUDENT_REPOSITORY = REPOSITORY
STUDENT_BRANCH = "student"

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
_COLAB_NOTEBOOK = re.compile(
    r"https://colab\.research\.google\.com/github/[^)\s]*?/(notebooks/[\w.-]+\.ipynb)"
)
BADGE_CELL, SETUP_CELL = 1, 2


class NotebookOpeningError(MedtlError, ValueError):
    """A notebook without the badge and setup cells where every notebook has them."""


def numbered_notebooks(folder: Path) -> list[Path]:
    """The course notebooks of `folder` (`00_name.ipynb` …), in order; scratch files are not."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def colab_url(path: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """Colab's address for the notebook at `path` (relative to the repository root)."""
    return f"https://colab.research.google.com/github/{repository}/blob/{branch}/{path}"


def badge_markdown(path: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(path, repository, branch)})"


def is_badge(source: str) -> bool:
    return source.lstrip().startswith("[![Open In Colab]")


def release_tag() -> str:
    """The git tag of this version of the package ("v0.1.0"); each release is tagged so."""
    return f"v{medtl_helpers.__version__}"


def install_spec() -> str:
    """What `pip install` gets on Colab: this release of the package, pinned by its tag.

    Not the branch: the notebooks of a release must run with the package of that release, not
    with whatever `main` holds on the day a student opens them.
    """
    return f"medtl_helpers @ git+https://github.com/{REPOSITORY}@{release_tag()}"


def setup_cell_source() -> str:
    """Cell 2 of every notebook: does nothing locally; on Colab installs and reports the GPU."""
    return "\n".join(
        [
            "# Setup: on Colab this installs the course package and names the GPU; locally",
            "# `make lab` already installed everything and this cell does nothing.",
            "import sys",
            "",
            'if "google.colab" in sys.modules:',
            f'    %pip install --quiet "{install_spec()}"',
            "    import torch",
            "",
            "    if torch.cuda.is_available():",
            '        print(f"GPU: {torch.cuda.get_device_name(0)}")',
            "    else:",
            '        print("No GPU: pick Runtime > Change runtime type > T4 GPU, then run again.")',
        ]
    )


def _expected_cells(path: str) -> dict[int, tuple[str, str]]:
    return {
        BADGE_CELL: ("markdown", badge_markdown(path)),
        SETUP_CELL: ("code", setup_cell_source()),
    }


def sync_notebook(notebook: nbformat.NotebookNode, path: str) -> list[str]:
    """Put the generated badge and setup cell into `notebook`; return what was different."""
    changed = []
    for index, (kind, source) in _expected_cells(path).items():
        if len(notebook.cells) <= index or notebook.cells[index].cell_type != kind:
            raise NotebookOpeningError(
                f"{path}: cell {index} must be the {kind} cell with the Colab "
                f"{'badge' if index == BADGE_CELL else 'setup'} (see notebooks/README.md)"
            )
        cell = notebook.cells[index]
        if cell.source != source:
            changed.append(f"{path}: cell {index} ({'badge' if index == BADGE_CELL else 'setup'})")
            cell.source = source
    return changed


def sync_folder(folder: Path, write: bool = False) -> list[str]:
    """Check (or rewrite) cells 1 and 2 of every numbered notebook in `folder`."""
    import nbformat  # only the dev install has it; the training commands do not need it

    folder = Path(folder)
    changed = []
    for file in numbered_notebooks(folder):
        notebook = nbformat.read(file, as_version=4)
        differences = sync_notebook(notebook, f"{folder.resolve().name}/{file.name}")
        if differences and write:
            nbformat.write(notebook, file)
        changed += differences
    return changed


def sync_readme(text: str) -> str:
    """README text with every Colab link to notebooks/… pointing at REPOSITORY and BRANCH."""
    return _COLAB_NOTEBOOK.sub(lambda match: colab_url(match.group(1)), text)


def readme_notebooks(text: str) -> list[str]:
    """The notebooks/… paths the README links to in Colab, in order."""
    return _COLAB_NOTEBOOK.findall(text)


def _run_links(args: argparse.Namespace) -> int:
    changed = sync_folder(args.folder, write=args.write)
    readme = Path(args.readme)
    if readme.is_file():
        text = readme.read_text(encoding="utf-8")
        if sync_readme(text) != text:
            changed.append(f"{readme}: Colab badges")
            if args.write:
                readme.write_text(sync_readme(text), encoding="utf-8")
    verb = "rewrote" if args.write else "out of date"
    for line in changed:
        print(f"{verb}: {line}")
    print(f"{len(changed)} cell(s) or file(s) {verb}; repository {REPOSITORY}@{BRANCH}")
    return int(bool(changed) and not args.write)


def add_links_command(sub: argparse._SubParsersAction) -> None:
    links = sub.add_parser("links", help="check or rewrite the Colab badge and setup cells")
    links.add_argument("folder", type=Path, nargs="?", default=Path("notebooks"))
    links.add_argument("--readme", type=Path, default=Path("README.md"))
    mode = links.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a cell differs (default)")
    mode.add_argument("--write", action="store_true", help="rewrite the cells that differ")
    links.set_defaults(run=_run_links)
