"""`make student-branch`: the branch the badges open holds the student copies, never a solution.

A small course repository in a temporary folder (this one's notebooks, package and top-level
files, plus a test, the teacher's guide and a CI workflow standing in for the instructor-only
folders) gets its student branch built, and the branch is read back with git.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from medtl_helpers.course import links
from medtl_helpers.course.cli import main
from medtl_helpers.course.publish import INSTRUCTOR_ONLY

ROOT = Path(__file__).resolve().parents[1]
FILES = ("pyproject.toml", "README.md", "LICENSE", "Makefile", ".gitignore", "data/README.md")
INSTRUCTOR_FILES = {
    "tests/test_checks_01.py": "class SolutionBlock: ...\n",
    "docs/TEACHING.md": "# Teaching\n06.3: the answer is layer4\n",
    ".github/workflows/test.yml": "on: push\n",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def course(tmp_path, monkeypatch) -> Path:
    """A committed copy of the course on `main`, with git's identity set and its config isolated."""
    for key in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{key}_NAME", "Teacher")
        monkeypatch.setenv(f"GIT_{key}_EMAIL", "teacher@example.org")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    repo = tmp_path / "course"
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    shutil.copytree(ROOT / "medtl_helpers", repo / "medtl_helpers", ignore=ignore)
    shutil.copytree(ROOT / "notebooks", repo / "notebooks", ignore=ignore)
    for name in FILES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, repo / name)
    for name, text in INSTRUCTOR_FILES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "course")
    return repo


def publish(repo: Path, capsys) -> tuple[int, str]:
    code = main(["student", str(repo / "notebooks"), "-o", "student", "--publish-branch"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def solution_sources(repo: Path) -> list[str]:
    return [
        cell.source
        for path in links.numbered_notebooks(repo / "notebooks")
        for cell in nbformat.read(path, as_version=4).cells
        if "solution" in cell.metadata.get("tags", [])
    ]


def test_the_branch_holds_the_copies_and_the_package_and_no_solution(course, capsys):
    code, out = publish(course, capsys)
    assert code == 0, out
    assert "publish it: git push origin student" in out
    files = git(course, "ls-tree", "-r", "--name-only", "student").splitlines()
    stems = [path.name for path in links.numbered_notebooks(course / "notebooks")]
    assert [f for f in files if f.endswith(".ipynb")] == [f"student/{name}" for name in stems]
    assert {*FILES, "medtl_helpers/__init__.py", "medtl_helpers/course/checks/nb06.py"} <= {*files}
    assert not [f for f in files if f.split("/")[0] in INSTRUCTOR_ONLY]

    solutions = solution_sources(course)
    assert len(solutions) >= 20
    for path in files:
        text = git(course, "show", f"student:{path}")
        if path.endswith(".ipynb"):
            cells = json.loads(text)["cells"]
            assert not [c for c in cells if "solution" in c["metadata"].get("tags", [])], path
        leaked = [source for source in solutions if source in text]
        assert not leaked, f"{path} holds the solution {leaked[0][:60]!r}"

    copy = nbformat.reads(git(course, "show", f"student:student/{stems[6]}"), as_version=4)
    assert f"/blob/student/student/{stems[6]}" in copy.cells[links.BADGE_CELL].source
    setup = copy.cells[links.SETUP_CELL].source
    assert f'"{links.install_spec(links.STUDENT_REPOSITORY, "student")}"' in setup
    assert links.install_spec() not in setup  # the package of the branch, not of main

    readme = git(course, "show", "student:README.md")
    assert links.readme_notebooks(readme) == [] and "](notebooks/" not in readme
    assert links.colab_url(f"student/{stems[0]}", links.STUDENT_REPOSITORY, "student") in readme
    assert f"]({'student/' + stems[0]})" in readme
    assert readme.split("\n")[2].startswith("> **This is the student branch.** Your notebooks are")

    # on the branch `make lab` opens student/ and `make clean` leaves the students' work alone
    branch = course.parent / "branch"
    git(course, "worktree", "add", "-q", str(branch), "student")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    for target, line, absent in (
        ("lab", "jupyter lab student/", None),
        ("clean", "rm -rf", "student"),
    ):
        done = subprocess.run(["make", "-n", target, "STAMP="], cwd=branch, env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        ran = next(row for row in done.stdout.splitlines() if line in row)
        assert absent is None or absent not in ran.split(), ran
    git(course, "worktree", "remove", "--force", str(branch))

    # nothing was checked out or written: the working tree and main are as they were
    assert git(course, "status", "--porcelain", "--ignored") == ""
    assert git(course, "symbolic-ref", "HEAD") == "refs/heads/main"


def test_a_second_run_is_a_child_commit_and_an_unchanged_one_commits_nothing(course, capsys):
    assert publish(course, capsys)[0] == 0
    first = git(course, "rev-parse", "student")
    code, out = publish(course, capsys)
    assert code == 0 and git(course, "rev-parse", "student") == first
    assert f"student already holds these files at {first[:12]}: nothing to commit" in out

    path = course / "notebooks" / "00_setup_and_data.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[0].source += "\n\nA sentence added on main."
    nbformat.write(notebook, path)
    git(course, "commit", "-q", "-am", "00: one more sentence")
    code, out = publish(course, capsys)
    assert code == 0, out
    assert git(course, "rev-parse", "student^") == first
    assert "A sentence added on main." in git(
        course, "show", "student:student/00_setup_and_data.ipynb"
    )
    assert git(course, "rev-parse", "main") in git(course, "log", "-1", "--format=%B", "student")


def test_publishing_refuses_the_checked_out_branch_and_uncommitted_work_is_not_published(
    course, capsys
):
    assert publish(course, capsys)[0] == 0
    git(course, "switch", "-q", "student")
    code, out = publish(course, capsys)
    assert code == 2
    assert "error: student is checked out" in out and "git switch main" in out
    git(course, "switch", "-q", "main")

    (course / "notebooks" / "00_setup_and_data.ipynb").write_text("not committed, not JSON")
    code, out = publish(course, capsys)
    assert code == 0, out  # built from HEAD: the edit in the working tree is not read
    assert "nothing to commit" in out


def test_pip_installs_the_package_from_the_branch_as_the_setup_cell_does(course, capsys, tmp_path):
    assert publish(course, capsys)[0] == 0
    # the setup cell's spec, with this repository for GitHub ("localhost": pip's URL check)
    spec = links.install_spec(links.STUDENT_REPOSITORY, "student").replace(
        f"https://github.com/{links.STUDENT_REPOSITORY}", f"file://localhost{course}"
    )
    wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index"]
    wheel += ["--no-build-isolation", "-w", str(tmp_path / "dist"), spec]
    done = subprocess.run(wheel, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [built] = (tmp_path / "dist").glob("medtl_helpers-*.whl")
    names = zipfile.ZipFile(built).namelist()
    assert "medtl_helpers/course/checks/nb06.py" in names
    assert not [name for name in names if name.startswith(("student/", "notebooks/"))]


def test_a_notebook_with_solutions_outside_notebooks_is_not_published(course, capsys):
    stray = course / "benchmarks" / "scratch.ipynb"
    stray.parent.mkdir()
    shutil.copy(course / "notebooks" / "01_residual_blocks.ipynb", stray)
    git(course, "add", "benchmarks")
    git(course, "commit", "-q", "-m", "a stray instructor notebook")
    code, out = publish(course, capsys)
    assert code == 2
    assert "error: benchmarks/scratch.ipynb would be published with cells tagged 'solution'" in out
    assert "INSTRUCTOR_ONLY in medtl_helpers/course/publish.py" in out
    assert git(course, "branch", "--list", "student") == ""


def test_the_student_readme_takes_its_pictures_from_the_course_ref():
    from medtl_helpers.course.publish import student_readme

    text = "# medtl\n\n![a page](docs/images/site-04.png)\n[guide](docs/TEACHING.md)\n"
    out = student_readme(text, "student", links.STUDENT_REPOSITORY, "student")
    raw = (
        f"https://raw.githubusercontent.com/{links.REPOSITORY}/{links.REF}/docs/images/site-04.png"
    )
    assert f"![a page]({raw})" in out and "](docs/images/" not in out
    assert "[guide](docs/TEACHING.md)" in out  # only pictures are rewritten
