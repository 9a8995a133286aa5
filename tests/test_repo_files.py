"""The files around the course: pre-commit hooks, the GitHub workflow, the grading Dockerfile.

None of them runs here (no pre-commit hooks are fetched, no GitHub, no Docker engine), so these
tests read them and check that every command, path and target they name exists in the repository.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from packaging.requirements import Requirement

from medtl_helpers.course.cli import build_parser

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DOCKERFILE = ROOT / "docker" / "grade.Dockerfile"
# What nbstripout 0.9 strips from metadata without being asked (its README, "Stripping metadata")
NBSTRIPOUT_DEFAULT_KEYS = (
    "metadata.signature metadata.widgets cell.metadata.collapsed cell.metadata.ExecuteTime "
    "cell.metadata.execution cell.metadata.heading_collapsed cell.metadata.hidden "
    "cell.metadata.scrolled"
).split()


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*):(?!=)", text, flags=re.MULTILINE))


def subcommands() -> set[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def hooks() -> dict[str, dict]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return {
        hook["id"]: {**hook, "rev": repo["rev"]}
        for repo in config["repos"]
        for hook in repo["hooks"]
    }


def nbstripout_args() -> tuple[list[str], set[str]]:
    """The hook's arguments, and every metadata key it strips (defaults and --extra-keys)."""
    args = hooks()["nbstripout"].get("args", [])
    extra = [a.split("=", 1)[1].split() for a in args if a.startswith("--extra-keys=")]
    return args, set(NBSTRIPOUT_DEFAULT_KEYS).union(*extra)


def test_pre_commit_runs_ruff_and_ruff_format_at_the_projects_ruff():
    found = hooks()
    assert {"ruff-format", "nbstripout"} <= set(found) and {"ruff-check", "ruff"} & set(found)
    rev = found["ruff-format"]["rev"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", rev), f"ruff-pre-commit tags are vX.Y.Z, not {rev!r}"
    (ruff,) = [
        Requirement(r) for r in pyproject()["optional-dependencies"]["dev"] if r.startswith("ruff")
    ]
    assert ruff.specifier.contains(rev[1:]), f"ruff {rev} is outside the dev extra's {ruff}"


def test_nbstripout_runs_on_every_notebook_and_keeps_cell_ids():
    hook = hooks()["nbstripout"]
    pattern = re.compile(hook["files"])
    missed = [p.name for p in NOTEBOOKS if not pattern.search(p.relative_to(ROOT).as_posix())]
    assert NOTEBOOKS and not missed, f"the nbstripout hook's files pattern misses {missed}"
    # without --keep-id nbstripout renumbers the ids 0, 1, 2, ...: grading matches cells by id
    assert "--keep-id" in hook["args"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_hold_nothing_the_hook_would_strip(path):
    """nbstripout, as configured, leaves every committed notebook as it is."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    _, stripped = nbstripout_args()
    held = {f"metadata.{k}" for k in notebook["metadata"]}
    held |= {f"metadata.language_info.{k}" for k in notebook["metadata"].get("language_info", {})}
    for cell in notebook["cells"]:
        held |= {f"cell.metadata.{k}" for k in cell.get("metadata", {})}
        if cell["cell_type"] == "code":
            assert (cell["outputs"], cell["execution_count"]) == ([], None), (
                f"{path.name} has outputs: run `pre-commit run nbstripout --all-files`"
            )
    assert not held & stripped, (
        f"{path.name} holds {sorted(held & stripped)}, which nbstripout strips"
    )


def executed_copy(path: Path, folder: Path) -> Path:
    """`path` as running it leaves it: outputs, counts, cell timings, the kernel's language_info."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.language_info.update(
        codemirror_mode={"name": "ipython", "version": 3}, file_extension=".py",
        mimetype="text/x-python", nbconvert_exporter="python", pygments_lexer="ipython3",
        version="3.11.7",
    )  # fmt: skip
    for count, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        cell.execution_count = count + 1
        cell.outputs = [nbformat.v4.new_output("stream", text="ran\n")]
        cell.metadata["execution"] = {"iopub.status.idle": "2026-12-02T10:00:00.000000Z"}
    copy = folder / path.name
    nbformat.write(notebook, copy)
    return copy


@pytest.mark.skipif(not shutil.which("nbstripout"), reason="nbstripout is not installed")
def test_nbstripout_brings_executed_notebooks_back_to_their_committed_form(tmp_path):
    args, _ = nbstripout_args()
    copies = [executed_copy(path, tmp_path) for path in NOTEBOOKS]
    assert all(c.read_bytes() != p.read_bytes() for c, p in zip(copies, NOTEBOOKS))
    subprocess.run(["nbstripout", *args, *map(str, copies)], check=True)
    changed = [p.name for c, p in zip(copies, NOTEBOOKS) if c.read_bytes() != p.read_bytes()]
    assert not changed, f"nbstripout, as .pre-commit-config.yaml runs it, changes {changed}"


def workflow() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())


def test_the_workflow_runs_make_test_on_push_and_pull_requests():
    flow = workflow()
    events = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert {"push", "pull_request"} <= set(events)
    (job,) = flow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    python = [
        s["with"]["python-version"] for s in job["steps"] if "setup-python" in s.get("uses", "")
    ]
    assert python == [dockerfile_python()], "the workflow and the grading image use one Python"
    commands = [s["run"] for s in job["steps"] if "run" in s]
    if any(".ci/run" in command for command in commands):
        commands.append((ROOT / ".ci" / "run").read_text())
    named = set(re.findall(r"\bmake\s+([\w.-]+)", "\n".join(commands)))
    assert "test" in named and named <= make_targets(), (
        f"no Makefile target {named - make_targets()}"
    )


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the grading Dockerfile: comments dropped, lines joined."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line.strip()]


def dockerfile_python() -> str:
    (image,) = [args for op, args in dockerfile() if op == "FROM"]
    return re.fullmatch(r"python:(\d+\.\d+)(-slim)?", image).group(1)


def check_command(words: list[str]) -> None:
    """Fail unless the `make X`, `python -m medtl_helpers X` or `pip install` names what exists."""
    if words[:1] == ["make"]:
        assert set(words[1:]) <= make_targets(), f"{words}: no such Makefile target"
    if words[:3] == ["python", "-m", "medtl_helpers"]:
        assert words[3] in subcommands(), f"{words}: no such subcommand"
    if words[:2] == ["pip", "install"]:
        names = {Requirement(d).name for d in pyproject()["dependencies"]}
        for word in [w for w in words[2:] if not w.startswith("-") and "://" not in w]:
            local = re.fullmatch(r"\.\[([\w,]+)\]", word)
            if local:  # the course itself, with extras that pyproject.toml defines
                assert set(local.group(1).split(",")) <= set(pyproject()["optional-dependencies"])
            else:
                assert word in names, f"the image installs {word}, which the course does not use"


def test_the_grading_image_copies_and_runs_only_what_exists():
    steps = dockerfile()
    copied = [src.rstrip("/") for op, args in steps if op == "COPY" for src in args.split()[:-1]]
    assert "." not in copied, "COPY . would put .venv, data and submissions into the image"
    missing = [src for src in copied if not (ROOT / src).exists()]
    assert not missing, f"the Dockerfile copies {missing}, which the repository lacks"
    project = pyproject()
    needed = {"pyproject.toml", project["readme"], *project.get("license-files", [])}
    needed |= {"medtl_helpers", "notebooks"}
    assert needed <= set(copied), f"the build and grade read {sorted(needed - set(copied))}"
    for op, args in steps:
        if op == "RUN":
            for command in args.split("&&"):
                check_command(shlex.split(command))
        if op in ("CMD", "ENTRYPOINT"):
            check_command(json.loads(args))
    (entry,) = [json.loads(args) for op, args in steps if op == "ENTRYPOINT"]
    assert entry == ["python", "-m", "medtl_helpers", "grade"]
    env = " ".join(args for op, args in steps if op == "ENV").split()
    assert "MEDTL_OFFLINE=1" in env


def teaching_command(program: str) -> list[str]:
    """The one `docker <program>` command of TEACHING.md, continuation lines joined."""
    text = (ROOT / "docs" / "TEACHING.md").read_text()
    found = re.findall(rf"^\s*(docker {program} (?:.*\\\n)*.*)$", text, flags=re.MULTILINE)
    assert len(found) == 1, f"TEACHING.md should hold one `docker {program}`, not {len(found)}"
    return shlex.split(found[0].replace("\\\n", " "))


def test_teaching_builds_the_dockerfile_and_grades_without_network():
    build = teaching_command("build")
    assert build[-1] == ".", "build from the repository root: the Dockerfile copies from there"
    assert build[build.index("-f") + 1] == DOCKERFILE.relative_to(ROOT).as_posix()
    tag = build[build.index("-t") + 1]
    run = teaching_command("run")
    assert run[run.index("--network") + 1] == "none"
    grade_args = run[run.index(tag) + 1 :]
    try:
        args = build_parser().parse_args(["grade", *grade_args])
    except SystemExit:
        pytest.fail(f"`grade` refuses TEACHING.md's arguments {grade_args}")
    mounts = [run[i + 1] for i, word in enumerate(run) if word == "-v"]
    targets = {mount.split(":")[1]: mount.split(":")[2:] for mount in mounts}
    for submissions in args.submissions:
        assert targets.get(str(submissions)) == ["ro"], f"mount {submissions} read-only"
    assert targets.get(str(args.out)) == [], f"--out {args.out} must be a writable mount"
