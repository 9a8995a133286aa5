"""`make student`: student copies of the notebooks, each solution replaced by a stub.

One instructor source, generated student copies (as nbgrader does): the notebooks in notebooks/
carry their reference solutions in cells tagged `solution`, right after the `exercise` cell that
sets the task up. In the copy, each solution cell binds the names it would have defined to
`TODO` and raises `NotImplementedError` with the hint from the cell's metadata; the `check` cell
after it then raises `NotImplementedError` too (every checker starts with `require_answer`).
Both get nbval's `raises-exception` tag, so the copies run under `make test` like the originals.
Outputs are cleared and the Colab badge points at the published copy (see links.py);
`--publish-branch` commits the copies to a branch without the solutions (publish.py).
"""

from __future__ import annotations

import argparse
import ast
import copy
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medtl_helpers.course import links
from medtl_helpers.errors import MedtlError

if TYPE_CHECKING:
    import nbformat

EXERCISE, SOLUTION, CHECK = "exercise", "solution", "check"
ANSWER = "exercise-answer"  # the stub's tag: not `solution`, so a copy can't be built again
RAISES = "raises-exception"  # nbval: an error in this cell is expected
DEFAULT_HINT = "Exercise {}: write what the exercise above asks for here, then run the next cell."


class ExerciseLayoutError(MedtlError):
    """A notebook whose exercise and solution cells can't be turned into a student copy."""


def python_only(source: str) -> str:
    """IPython magics and shell escapes (%pip, !ls) become `pass`, keeping the indentation."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        lines.append(indent + "pass" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def _target_names(target: ast.AST) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from _target_names(element)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)
    # `x.attr = …` and `x[i] = …` change an object and bind no new name


def _bound(statements: Iterable[ast.stmt], in_loop: bool = False) -> Iterator[str]:
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
            continue  # names inside a function or class body are not module names
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            targets = [item.optional_vars for item in node.items if item.optional_vars]
        if not in_loop:
            for target in targets:
                yield from _target_names(target)
        # a loop's body binds per-iteration temporaries: a result the check needs is set up
        # before the loop, at module level, so only the loop variable itself is listed
        loop = in_loop or isinstance(node, (ast.For, ast.AsyncFor, ast.While))
        yield from _bound(getattr(node, "body", []), loop)
        yield from _bound(getattr(node, "orelse", []), in_loop)
        yield from _bound(getattr(node, "finalbody", []), in_loop)
        for handler in getattr(node, "handlers", []):
            yield from _bound(handler.body, in_loop)


def defined_names(source: str) -> list[str]:
    """Module-level names a cell binds, in order of first appearance.

    Assignments (tuple targets too), augmented and annotated assignments, `for` and `with`
    targets, `def` and `class`. Imports are left out: a stub must not shadow a module that other
    cells use, and a student who needs an import writes it.
    """
    names = dict.fromkeys(_bound(ast.parse(python_only(source)).body))
    return list(names)


def _string_lines(text: str, width: int = 88) -> list[str]:
    """`text` as consecutive string literals (Python joins them) of at most `width` characters."""
    chunks = textwrap.wrap(" ".join(text.split()), width, break_long_words=False)
    chunks = [chunk + " " for chunk in chunks[:-1]] + chunks[-1:]
    return [f'"{c}"' if '"' not in c and "\\" not in c else repr(c) for c in chunks]


def stub_source(names: list[str], hint: str, number: int) -> str:
    """The student's version of a solution cell: the names to define, then the hint, raised."""
    lines = [f"# Exercise {number}: write your answer in this cell, in place of the lines below."]
    if names:
        lines += ["from medtl_helpers.course.checks import TODO", ""]
        lines += [f"{name} = TODO" for name in names]
    lines += ["raise NotImplementedError(", *(f"    {s}" for s in _string_lines(hint)), ")"]
    return "\n".join(lines)


@dataclass
class StudentCopy:
    notebook: nbformat.NotebookNode
    exercises: int
    stubs: int
    checks: int


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def check_exercise_cells(notebook: nbformat.NotebookNode, name: str) -> None:
    """Refuse an exercise without a solution after it (before the next exercise)."""
    open_exercise = None
    for index, cell in enumerate(notebook.cells):
        tags = _tags(cell)
        if SOLUTION in tags and cell.cell_type != "code":
            raise ExerciseLayoutError(
                f"{name}: cell {index} is tagged '{SOLUTION}' but is a {cell.cell_type} cell; "
                "a solution must be a code cell."
            )
        if EXERCISE in tags and open_exercise is not None:
            break
        if EXERCISE in tags:
            open_exercise = index
        elif SOLUTION in tags:
            open_exercise = None
    if open_exercise is not None:
        raise ExerciseLayoutError(
            f"{name}: cell {open_exercise} is tagged '{EXERCISE}' but no cell tagged "
            f"'{SOLUTION}' follows it before the next exercise. Add the reference solution in a "
            f"code cell tagged '{SOLUTION}' right after it (an untagged solution would be copied "
            "into the student version as it is)."
        )


def install_from(notebook: nbformat.NotebookNode, path: str, spec: str) -> None:
    """Make the setup cell install `spec` instead of the course's links.install_spec()."""
    cells = notebook.cells
    setup = cells[links.SETUP_CELL].source if len(cells) > links.SETUP_CELL else ""
    if links.install_spec() not in setup:
        raise ExerciseLayoutError(
            f"{path}: cell {links.SETUP_CELL} is not the setup cell that installs "
            f"{links.install_spec()!r}. Run `python -m medtl_helpers links --write notebooks`."
        )
    cells[links.SETUP_CELL].source = setup.replace(links.install_spec(), spec)


def student_copy(
    notebook: nbformat.NotebookNode,
    path: str,
    repository: str = links.STUDENT_REPOSITORY,
    branch: str = links.STUDENT_BRANCH,
    install_ref: str | None = None,
) -> StudentCopy:
    """The student version of `notebook`, to be published at `path` (e.g. student/01_x.ipynb).

    `install_ref`: the setup cell installs the package from `repository` at this ref (a student
    branch that holds the package, see publish.py); None keeps the course's, links.REF.
    """
    check_exercise_cells(notebook, path)
    copied = copy.deepcopy(notebook)
    if install_ref is not None:
        install_from(copied, path, links.install_spec(repository, install_ref))
    exercises = stubs = checks = 0
    for index, cell in enumerate(copied.cells):
        tags = _tags(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if cell.cell_type == "markdown" and links.is_badge(cell.source):
            cell.source = links.badge_markdown(path, repository, branch)
        exercises += EXERCISE in tags
        if SOLUTION in tags:
            try:
                names = defined_names(cell.source)
            except SyntaxError as err:
                raise ExerciseLayoutError(
                    f"{path}: the solution in cell {index} is not valid Python ({err})."
                ) from err
            hint = str(cell.metadata.pop("hint", "")).strip() or DEFAULT_HINT.format(exercises)
            cell.source = stub_source(names, hint, exercises)
            tags = [ANSWER if tag == SOLUTION else tag for tag in tags] + [RAISES]
            stubs += 1
        elif CHECK in tags:
            tags.append(RAISES)
            checks += 1
        if tags:
            cell.metadata["tags"] = tags
    return StudentCopy(copied, exercises, stubs, checks)


def build_student(
    folder: Path,
    out: Path,
    repository: str = links.STUDENT_REPOSITORY,
    branch: str = links.STUDENT_BRANCH,
) -> list[str]:
    """Write the student copy of every numbered notebook in `folder` to `out`; one line each.

    Every notebook is checked before anything is written, so a refused notebook leaves `out`
    as it was.
    """
    import nbformat  # only the dev install has it; the training commands do not need it

    folder, out = Path(folder), Path(out)
    if out.resolve() == folder.resolve():
        raise ExerciseLayoutError(
            f"the output folder {out} is the notebooks folder: student copies would overwrite "
            "the solutions. Write them elsewhere, e.g. -o student."
        )
    sources = links.numbered_notebooks(folder)
    if not sources:
        raise ExerciseLayoutError(f"no numbered notebooks (00_name.ipynb …) in {folder}")
    published = out.resolve().name
    copies = {
        file.name: student_copy(
            nbformat.read(file, as_version=4), f"{published}/{file.name}", repository, branch
        )
        for file in sources
    }
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for file_name, result in copies.items():
        nbformat.write(result.notebook, out / file_name)
        lines.append(
            f"{out / file_name}: {result.exercises} exercises, {result.stubs} solutions replaced "
            f"by stubs, {result.checks} checks"
        )
    stubs = sum(result.stubs for result in copies.values())
    lines.append(
        f"{len(copies)} student notebooks, {stubs} solutions replaced by stubs; Colab badges "
        f"point at {links.colab_url(f'{published}/…', repository, branch)}"
    )
    return lines


def _run_student(args: argparse.Namespace) -> int:
    if args.publish_branch is None:
        lines = build_student(
            args.folder, args.out, args.repository, args.branch or links.STUDENT_BRANCH
        )
    elif args.branch not in (None, args.publish_branch):
        raise MedtlError(
            f"--branch {args.branch} and --publish-branch {args.publish_branch}: the badges would "
            "open a branch the copies are not on. Give --publish-branch alone."
        )
    else:
        from medtl_helpers.course.publish import publish_student_branch

        lines = publish_student_branch(
            args.folder, args.out.name, args.publish_branch, args.repository
        )
    for line in lines:
        print(line)
    return 0


def add_student_command(sub: argparse._SubParsersAction) -> None:
    student = sub.add_parser("student", help="write student copies: solutions become stubs")
    student.add_argument("folder", type=Path, nargs="?", default=Path("notebooks"))
    student.add_argument("-o", "--out", type=Path, default=Path("student"))
    student.add_argument(
        "--repository",
        default=links.STUDENT_REPOSITORY,
        help="GitHub owner/name the copies are published in (for the Colab badges)",
    )
    student.add_argument("--branch", help=f"the branch the badges open ({links.STUDENT_BRANCH})")
    student.add_argument(
        "--publish-branch",
        nargs="?",
        const=links.STUDENT_BRANCH,
        metavar="BRANCH",
        help=f"commit copies of HEAD's notebooks, in a folder named like -o, to this branch "
        f"({links.STUDENT_BRANCH} if not named) with HEAD's files less the solutions; no "
        "checkout is switched (publish.py). Then git push origin BRANCH",
    )
    student.set_defaults(run=_run_student)
