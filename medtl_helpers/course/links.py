"""The one place that says where the course lives: Colab and Kaggle badges, the setup cell, and
the runtime each notebook asks Colab for.

Every notebook opens with its badges (cell 1) and a setup cell (cell 2) that, on Colab or Kaggle
only, installs this package from the repository and names the GPU; the notebooks that train ask
Colab for a GPU runtime in their metadata. All three are generated from the constants below, never
edited by hand: `python -m medtl_helpers links --write notebooks` rewrites them (and the badges in
README.md), `links --check` and a test fail when one has drifted. A fork changes REPOSITORY here
and runs `links --write`.
"""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path
from typing import TYPE_CHECKING

from medtl_helpers.config.version import __version__
from medtl_helpers.errors import MedtlError

if TYPE_CHECKING:
    import nbformat

REPOSITORY = "medtl-course/medtl"  # GitHub owner/name of the course (package and notebooks)
# The one git ref of the course: the badges open the notebooks at REF and the setup cell installs
# the package at REF, so a notebook always runs with the package of its own commit. A release may
# point both at its tag instead (REF = release_tag(), then `links --write`) once the tag exists.
REF = "main"
# Where `make student` copies are published for students to open: student/NN_name.ipynb on this
# branch of this repository (docs/TEACHING.md shows how to push them there).
STUDENT_REPOSITORY = REPOSITORY
STUDENT_BRANCH = "student"

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
KAGGLE_BADGE_IMAGE = "https://kaggle.com/static/images/open-in-kaggle.svg"
_COLAB_NOTEBOOK = re.compile(
    r"https://colab\.research\.google\.com/github/[^)\s]*?/(notebooks/[\w.-]+\.ipynb)"
)
# A README badge pair: the Colab badge of a notebook, and the Kaggle badge after it if there is one.
_README_BADGES = re.compile(
    r"\[!\[Open In Colab\]\([^)\s]*\)\]\(" + _COLAB_NOTEBOOK.pattern + r"\)"
    r"(?: \[!\[Open In Kaggle\]\([^)\s]*\)\]\([^)\s]*\))?"
)
BADGE_CELL, SETUP_CELL = 1, 2
# Notebooks that train nothing run on Colab's CPU runtime; every other one trains networks and its
# metadata asks Colab for a GPU (00: the data tour, the patient-level split and the tensor cache).
CPU_NOTEBOOKS = ("00",)
GPU_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4"}}


class NotebookOpeningError(MedtlError, ValueError):
    """A notebook without the badge and setup cells where every notebook has them."""


def numbered_notebooks(folder: Path) -> list[Path]:
    """The course notebooks of `folder` (`00_name.ipynb` …), in order; scratch files are not."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))


def github_url(path: str, repository: str = REPOSITORY, ref: str = REF) -> str:
    """GitHub's page of the file at `path` (relative to the repository root) at `ref`."""
    return f"https://github.com/{repository}/blob/{ref}/{path}"


def colab_url(path: str, repository: str = REPOSITORY, ref: str = REF) -> str:
    """Colab's address for the notebook at `path` (relative to the repository root)."""
    return f"https://colab.research.google.com/github/{repository}/blob/{ref}/{path}"


def kaggle_url(path: str, repository: str = REPOSITORY, ref: str = REF) -> str:
    """Kaggle's address that copies the notebook at `path` from GitHub into a Kaggle notebook."""
    return f"https://kaggle.com/kernels/welcome?src={github_url(path, repository, ref)}"


def badge_markdown(path: str, repository: str = REPOSITORY, ref: str = REF) -> str:
    """The Open in Colab and Open in Kaggle badges of the notebook at `path`, side by side."""
    colab = f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(path, repository, ref)})"
    kaggle = f"[![Open In Kaggle]({KAGGLE_BADGE_IMAGE})]({kaggle_url(path, repository, ref)})"
    return f"{colab} {kaggle}"


def is_badge(source: str) -> bool:
    return source.lstrip().startswith("[![Open In Colab]")


def release_tag() -> str:
    """The git tag a release of this version gets ("v0.1.0"): REF may name it once it exists."""
    return f"v{__version__}"


def install_spec(repository: str = REPOSITORY, ref: str = REF) -> str:
    """What `pip install` gets on Colab and Kaggle: the package at REF, the notebooks' own ref.

    The same ref as the badges: a notebook opened from `main` runs with the package of `main`,
    never with an older (or missing) release.
    """
    return f"medtl_helpers @ git+https://github.com/{repository}@{ref}"


def setup_cell_source(gpu: bool = True) -> str:
    """Cell 2 of every notebook: does nothing locally; on Colab or Kaggle installs the package and
    reports the GPU (`gpu=False`: a notebook that trains nothing, where none is needed)."""
    no_gpu = [
        "    elif on_colab:",
        '        print("No GPU: pick Runtime > Change runtime type > T4 GPU, then run again.")',
        "    else:",
        '        print("No GPU: pick Settings > Accelerator > GPU T4 x2, then run again.")',
    ]
    if not gpu:
        no_gpu = [
            "    else:",
            '        print("No GPU, and none needed: this notebook trains nothing.")',
        ]
    return "\n".join(
        [
            "# Setup: on Colab or Kaggle this installs the course package and names the GPU (on",
            "# Kaggle, turn Settings > Internet on first); locally `make lab` already installed",
            "# everything and this cell does nothing.",
            "import os",
            "import sys",
            "",
            'on_colab = "google.colab" in sys.modules',
            'on_kaggle = "KAGGLE_KERNEL_RUN_TYPE" in os.environ  # set in every Kaggle notebook',
            "if on_colab or on_kaggle:",
            f'    %pip install --quiet "{install_spec()}"',
            "    import torch",
            "",
            "    if torch.cuda.is_available():",
            '        print(f"GPU: {torch.cuda.get_device_name(0)}")',
            *no_gpu,
        ]
    )


def needs_gpu(path: str) -> bool:
    """True for a notebook that trains: its metadata asks Colab for a GPU runtime."""
    return Path(path).name[:2] not in CPU_NOTEBOOKS


def _expected_cells(path: str) -> dict[int, tuple[str, str]]:
    return {
        BADGE_CELL: ("markdown", badge_markdown(path)),
        SETUP_CELL: ("code", setup_cell_source(needs_gpu(path))),
    }


def sync_metadata(notebook: nbformat.NotebookNode, path: str) -> list[str]:
    """Ask Colab for a GPU runtime in a notebook that trains, and for none in one that does not.

    Colab reads the notebook's top-level `accelerator` ("GPU") and `colab.gpuType` ("T4"), the
    keys it writes itself when a runtime type is chosen and saved; other `colab` keys are kept.
    """
    metadata = notebook.metadata
    before = copy.deepcopy(metadata)
    colab = dict(metadata.get("colab", {}))
    if needs_gpu(path):
        metadata["accelerator"] = GPU_METADATA["accelerator"]
        colab.update(GPU_METADATA["colab"])
    else:
        metadata.pop("accelerator", None)
        colab.pop("gpuType", None)
    if colab:
        metadata["colab"] = colab
    else:
        metadata.pop("colab", None)
    if metadata == before:
        return []
    runtime = "a GPU runtime" if needs_gpu(path) else "the CPU runtime"
    return [f"{path}: metadata (asks Colab for {runtime})"]


def sync_notebook(notebook: nbformat.NotebookNode, path: str) -> list[str]:
    """Put the generated badges, setup cell and metadata into `notebook`; return what differed."""
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
    return changed + sync_metadata(notebook, path)


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
    """README text with the Colab and Kaggle badges of each notebook, at REPOSITORY and REF.

    Each Colab badge of a notebook becomes the generated pair (the Kaggle badge is added where
    it is missing); any other Colab link to notebooks/… is pointed at REPOSITORY and REF.
    """
    text = _README_BADGES.sub(lambda match: badge_markdown(match.group(1)), text)
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
            changed.append(f"{readme}: Colab and Kaggle badges")
            if args.write:
                readme.write_text(sync_readme(text), encoding="utf-8")
    verb = "rewrote" if args.write else "out of date"
    for line in changed:
        print(f"{verb}: {line}")
    print(f"{len(changed)} cell(s) or file(s) {verb}; repository {REPOSITORY}@{REF}")
    return int(bool(changed) and not args.write)


def add_links_command(sub: argparse._SubParsersAction) -> None:
    links = sub.add_parser("links", help="check or rewrite the badges, setup cells and metadata")
    links.add_argument("folder", type=Path, nargs="?", default=Path("notebooks"))
    links.add_argument("--readme", type=Path, default=Path("README.md"))
    mode = links.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if a cell differs (default)")
    mode.add_argument("--write", action="store_true", help="rewrite the cells that differ")
    links.set_defaults(run=_run_links)
