"""`make student-branch`: the student copies on a branch that holds no solutions.

The Colab badges of the student copies open student/NN_name.ipynb on links.STUDENT_BRANCH, so that
branch is what students browse. `publish_student_branch` builds its next commit from HEAD with git
plumbing and a temporary index, never touching the checkout or the working tree: HEAD's files less
INSTRUCTOR_ONLY, plus student copies of HEAD's notebooks, with README.md's notebook links pointing
at them. The commit's parent is the branch's previous tip, so `git push origin student` publishes
it as a fast-forward.

The package stays on the branch, checkers included: the copies import it, and their setup cell
installs it from the branch, so a copy runs with the package of the commit it was built from. The
checkers are public by design; whoever reads them can work out the answers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from medtl_helpers.course import links
from medtl_helpers.course.student import SOLUTION, student_copy
from medtl_helpers.errors import MedtlError

# What HEAD holds that the student branch must not, and why.
INSTRUCTOR_ONLY = {
    "notebooks": "the instructor notebooks, with every solution cell",
    "tests": "the reference solutions again (01's residual block) and a right answer per checker",
    "docs": "the teacher's guide: each exercise's common mistakes and the grading table",
    ".github": "CI runs `make test`, which needs tests/ and notebooks/: every push would fail",
    ".ci": "CI's script, `make test`",
}


class PublishError(MedtlError):
    """A repository or branch the student copies can't be committed to."""


def git(
    root: Path, *args: str, env: dict | None = None, stdin: str | None = None, check: bool = True
) -> str:
    """git's output, stripped; PublishError with git's own words when it fails (`check`)."""
    done = subprocess.run(
        ["git", *args], cwd=root, env=env, input=stdin, capture_output=True, encoding="utf-8"
    )
    if done.returncode and check:
        raise PublishError(f"`git {' '.join(args)}` failed in {root}: {done.stderr.strip()}")
    return done.stdout.strip() if not done.returncode else ""


STUDENT_NOTE = """\
> **This is the student branch.** Your notebooks are in `{folder}/`: open one in Colab with its
> badge below, or on your machine with `make venv`, then `make lab` (it opens `{folder}/`). `make
> course` and `make test` below are the instructor's commands: they need the course's main branch,
> which also holds `notebooks/`, `tests/` and the teacher's guide `docs/TEACHING.md`.
"""


def student_readme(text: str, folder: str, repository: str, branch: str) -> str:
    """README.md for the branch: a note on what the branch is for, and its notebook links and
    badges opening the student copies there."""
    title, _, rest = text.partition("\n")
    text = f"{title}\n\n{STUDENT_NOTE.format(folder=folder)}{rest}"
    for path in dict.fromkeys(links.readme_notebooks(text)):
        student = f"{folder}/{PurePosixPath(path).name}"
        for url in (links.colab_url, links.kaggle_url):
            text = text.replace(url(path), url(student, repository, branch))
        text = text.replace(f"]({path})", f"]({student})")
    # docs/ is not on the branch: README's pictures (docs/images/) come from the course's ref
    raw = f"https://raw.githubusercontent.com/{links.REPOSITORY}/{links.REF}/docs/"
    text = re.sub(r"(!\[[^\]]*\]\()docs/", lambda m: m.group(1) + raw, text)
    left = links.readme_notebooks(text)
    if left:
        raise PublishError(
            f"README.md links to {left[0]} in Colab at another repository or ref than "
            f"{links.REPOSITORY}@{links.REF}: run `python -m medtl_helpers links --write` first."
        )
    return text


def notebooks_with_solutions(root: Path, env: dict) -> list[str]:
    """The notebooks in the index of `env` that still have a cell tagged `solution`."""
    found = []
    for line in git(root, "ls-files", "-s", "--", "*.ipynb", env=env).splitlines():
        meta, path = line.split("\t", 1)
        cells = json.loads(git(root, "cat-file", "blob", meta.split()[1])).get("cells", [])
        if any(SOLUTION in cell.get("metadata", {}).get("tags", []) for cell in cells):
            found.append(path)
    return found


def _repository_of(folder: Path) -> tuple[Path, str]:
    """The root of the git repository `folder` is in, and `folder` relative to it."""
    folder = (Path.cwd() / folder).resolve()
    start = next(path for path in (folder, *folder.parents) if path.is_dir())
    top = git(start, "rev-parse", "--show-toplevel", check=False)
    if not top:
        raise PublishError(
            f"{folder} is in no git repository: --publish-branch commits the student copies to "
            "a branch of the repository that holds the notebooks."
        )
    root = Path(top).resolve()
    try:
        return root, folder.relative_to(root).as_posix()
    except ValueError:
        raise PublishError(f"{folder} is not inside the git repository {root}") from None


def _check_branch(root: Path, branch: str) -> None:
    git(root, "check-ref-format", "--branch", branch)
    if git(root, "symbolic-ref", "-q", "HEAD", check=False) == f"refs/heads/{branch}":
        raise PublishError(
            f"{branch} is checked out: the student copies are built from the instructor "
            "notebooks of HEAD. Switch to their branch (git switch main), then run this again."
        )


def _copies(root: Path, head: str, folder: str, into: str, repository: str, branch: str) -> list:
    """(path on the branch, notebook text, StudentCopy) for each numbered notebook of `head`."""
    import nbformat  # only the dev install has it; the training commands do not need it

    names = git(root, "ls-tree", "--name-only", head, f"{folder}/").splitlines()
    sources = [name for name in names if PurePosixPath(name).match("[0-9][0-9]_*.ipynb")]
    if not sources:
        raise PublishError(f"HEAD has no numbered notebooks (00_name.ipynb …) in {folder}/")
    copies = []
    for source in sources:
        path = f"{into}/{PurePosixPath(source).name}"
        notebook = nbformat.reads(git(root, "cat-file", "blob", f"{head}:{source}"), as_version=4)
        result = student_copy(notebook, path, repository, branch, install_ref=branch)
        copies.append((path, nbformat.writes(result.notebook).rstrip("\n") + "\n", result))
    return copies


def _tree(root: Path, head: str, remove: list[str], files: dict[str, str]) -> str:
    """The tree of `head` less the folders `remove`, with `files` (path: text) added or replaced."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        git(root, "read-tree", head, env=env)
        unstage = ["rm", "-r", "-f", "--cached", "--quiet", "--ignore-unmatch", "--"]
        git(root, *unstage, *remove, env=env)
        entries = "".join(
            f"100644 {git(root, 'hash-object', '-w', '--stdin', stdin=text)}\t{path}\n"
            for path, text in files.items()
        )
        git(root, "update-index", "--index-info", env=env, stdin=entries)
        leaks = notebooks_with_solutions(root, env)
        if leaks:
            raise PublishError(
                f"{', '.join(leaks)} would be published with cells tagged '{SOLUTION}': keep the "
                "instructor notebooks in one folder, or add the folder of these to "
                "INSTRUCTOR_ONLY in medtl_helpers/course/publish.py."
            )
        return git(root, "write-tree", env=env)


def publish_student_branch(
    folder: Path = Path("notebooks"),
    into: str = "student",
    branch: str = links.STUDENT_BRANCH,
    repository: str = links.STUDENT_REPOSITORY,
) -> list[str]:
    """Commit HEAD's files less INSTRUCTOR_ONLY, plus student copies of HEAD's `folder` in
    `into`/, to `branch`, on top of its previous tip; what was done, one line each."""
    root, relative = _repository_of(Path(folder))
    _check_branch(root, branch)
    head = git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
    if not head:
        raise PublishError(f"{root} has no commit yet: commit the course, then publish it.")
    if into in ("", ".", ".."):
        raise PublishError(f"-o {into!r} names no folder: the copies go in student/ (-o student)")
    copies = _copies(root, head, relative, into, repository, branch)
    files = {path: text for path, text, _ in copies}
    top = set(git(root, "ls-tree", "--name-only", head).splitlines())
    if "README.md" in top:
        readme = git(root, "cat-file", "blob", f"{head}:README.md") + "\n"
        files["README.md"] = student_readme(readme, into, repository, branch)
    removed = [name for name in dict.fromkeys([*INSTRUCTOR_ONLY, relative]) if name in top]
    tree = _tree(root, head, [*removed, into], files)
    ref = f"refs/heads/{branch}"
    parent = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    lines = [
        f"{path}: {r.exercises} exercises, {r.stubs} solutions replaced by stubs, {r.checks} checks"
        for path, _, r in copies
    ]
    if parent and git(root, "rev-parse", f"{parent}^{{tree}}") == tree:
        return [*lines, f"{branch} already holds these files at {parent[:12]}: nothing to commit"]
    less = ", ".join(f"{name}/" for name in removed)
    message = (
        f"Student copies of {head[:12]}\n\nThe files of {head} less {less}, plus {into}/: its "
        "notebooks with every solution replaced by a stub (medtl_helpers/course/publish.py).\n"
    )
    commit = git(root, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", message)
    git(root, "update-ref", "-m", f"student copies of {head[:12]}", ref, commit, parent)
    return [
        *lines,
        f"{branch}: commit {commit[:12]} on {parent[:12] if parent else 'nothing (a new branch)'}: "
        f"the files of {head[:12]} less {less}, plus {into}/ ({len(copies)} notebooks); badges "
        f"and setup cells point at {repository}@{branch}",
        f"publish it: git push origin {branch}",
    ]
