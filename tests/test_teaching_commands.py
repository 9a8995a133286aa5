"""The commands docs/TEACHING.md (and README's "For teachers") gives, as a teacher would type them.

Every `-m medtl_helpers` command runs from the course's `.venv` (after the README's setup a bare
`python` has no torch), its subcommand exists and accepts the documented arguments, and every
`make` line names a target that exists. The offline route of TEACHING.md section 6 is checked as
far as it can be without building a wheelhouse (a few GB): the Makefile's and the guide's
`pip wheel` include the build backend, and `make venv WHEELS=folder` installs with no index.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from medtl_helpers.course.cli import build_parser, main
from medtl_helpers.errors import DataError, error_line

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

ROOT = Path(__file__).resolve().parents[1]
TEACHING = ROOT / "docs" / "TEACHING.md"
LAUNCHERS = (".venv/bin/python", ".venv/bin/torchrun")
# Under `make test` the parent make's settings would make these print "Entering directory" lines
ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
needs_make = pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")


def readme_for_teachers() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## For teachers\n", 1)[1].split("\n## ", 1)[0]


def code_texts(markdown: str) -> list[str]:
    """Every fenced block's logical lines (continuations joined) and every inline code span."""
    texts, rest = [], []
    for n, part in enumerate(re.split(r"^\s*```.*$", markdown, flags=re.MULTILINE)):
        if n % 2:  # inside a fence
            texts += part.replace("\\\n", " ").splitlines()
        else:
            rest.append(part)
    spans = re.findall(r"`([^`]+)`", "\n".join(rest))
    return [t.strip() for t in texts + [re.sub(r"\s*\n\s*", " ", s) for s in spans] if t.strip()]


def segments(text: str) -> list[list[str]]:
    """A line's commands as words: the command, and one a comment shows (`# = make …`)."""
    words = shlex.split(text)
    parts, current = [], []
    for word in words:
        if word == "#":
            parts.append(current)
            current = []
        else:
            current.append(word)
    parts.append(current)
    return [p[1:] if p[:1] == ["="] else p for p in parts if p]


def program(words: list[str]) -> list[str]:
    """`words` without leading VAR=value assignments."""
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words = words[1:]
    return words


def documented() -> list[list[str]]:
    """Each command the guide gives, once."""
    found = []
    for text in code_texts(TEACHING.read_text()) + code_texts(readme_for_teachers()):
        found += [tuple(words) for words in segments(text)]
    return [list(words) for words in dict.fromkeys(found)]


def medtl_commands() -> list[tuple[str, list[str]]]:
    """(launcher, arguments after `-m medtl_helpers`) of every such command in the guide."""
    commands = []
    for words in documented():
        for i in range(1, len(words) - 1):
            if words[i : i + 2] == ["-m", "medtl_helpers"]:
                python = "python" in Path(words[i - 1]).name
                commands.append((words[i - 1] if python else program(words)[0], words[i + 2 :]))
    return commands


def make_commands() -> list[list[str]]:
    return [program(w)[1:] for w in documented() if program(w)[:1] == ["make"]]


def subcommand_path(args: list[str]) -> list[str]:
    """The leading words of `args` that name (sub)commands: ["data", "verify"], ["train"]."""
    parser, path = build_parser(), []
    for word in args:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
        path.append(word)
    return path


def test_the_guide_gives_medtl_commands_and_make_targets():
    assert len(medtl_commands()) >= 10 and len(make_commands()) >= 5


def test_every_documented_command_runs_from_the_courses_venv():
    wrong = [
        f"{launcher} -m medtl_helpers {' '.join(args[:2])}"
        for launcher, args in medtl_commands()
        if not launcher.endswith(LAUNCHERS)
    ]
    bare = [  # python -c, and torchrun, need the venv's packages too
        " ".join(words[i : i + 3])
        for words in documented()
        for i, word in enumerate(words[:-1])
        if word in ("python", "python3") and words[i + 1] in ("-m", "-c") or word == "torchrun"
    ]
    assert not wrong and not bare, (
        f"TEACHING.md gives {wrong + bare}: after the README's setup only .venv has the course's "
        "packages; write .venv/bin/python (or .venv/bin/torchrun), or a make target"
    )


@pytest.mark.parametrize(
    "args", [args for _, args in medtl_commands()], ids=lambda a: " ".join(a)[:60]
)
def test_each_documented_subcommand_exists_and_takes_its_arguments(args, capsys):
    path = subcommand_path(args)
    assert path, f"`medtl_helpers {' '.join(args)}`: no such subcommand"
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    assert done.value.code == 0 and f"usage: medtl {' '.join(path)}" in capsys.readouterr().out
    try:
        build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"`medtl_helpers {' '.join(args)}`: {capsys.readouterr().err}")


@needs_make
@pytest.mark.parametrize("args", make_commands(), ids=" ".join)
def test_each_documented_make_line_names_a_target_that_exists(args):
    done = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, f"make {' '.join(args)}: {done.stderr}"


def make_dry_run(tmp_path: Path, *args: str) -> str:
    """What `make -n` would run, for a .venv that does not exist yet."""
    command = ["make", "-n", *args, f"VENV={tmp_path / 'venv'}"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, env=ENV)
    return done.stdout


@needs_make
def test_make_venv_from_a_wheelhouse_installs_with_no_index_and_writes_the_stamp(tmp_path):
    lines = make_dry_run(tmp_path, "student", "WHEELS=class/wheels").splitlines()
    (install,) = [line for line in lines if " install " in line]
    words = shlex.split(install)
    assert words[words.index("--find-links") + 1] == "class/wheels"
    assert "--no-index" in words and words[-2:] == ["-e", ".[dev]"]
    assert lines.index(f"touch {tmp_path / 'venv' / '.medtl-installed'}") < len(lines) - 1
    assert lines[-1].endswith("-m medtl_helpers student notebooks -o student")
    online = make_dry_run(tmp_path, "venv")
    assert "--no-index" not in online and "--find-links" not in online


def build_requires() -> list[Requirement]:
    text = (ROOT / "pyproject.toml").read_text()
    return [Requirement(r) for r in tomllib.loads(text)["build-system"]["requires"]]


def pip_wheel_words(text: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if re.search(r" -m pip .*\bwheel ", line)]
    return shlex.split(line.split("# = ", 1)[-1])


@needs_make
def test_the_wheelhouse_holds_the_build_backend_the_editable_install_needs(tmp_path):
    """Offline, pip's isolated build of `-e .` finds [build-system] requires only there."""
    requires = {str(r) for r in build_requires()}
    made = pip_wheel_words(make_dry_run(tmp_path, "wheels"))
    guide = pip_wheel_words(TEACHING.read_text())
    for words in (made, guide):
        assert words[words.index("-w") + 1] == "wheels" and ".[dev]" in words
        assert requires <= set(words), f"{words} leaves out the build backend {requires}"
    assert guide[0] == ".venv/bin/python"


def test_the_wheelhouse_build_and_grading_folders_are_not_committed():
    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["wheels/torch.whl", "build/lib/medtl_helpers/errors.py", "submissions/alice/01.ipynb"]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True
    )
    assert done.stdout.split() == paths, (
        f"add to .gitignore: {set(paths) - set(done.stdout.split())}"
    )


def test_the_ddp_demo_without_gpus_trains_without_imagenet_weights():
    (demo,) = [w for w in documented() if "--device" in w and "torchrun" in " ".join(w)]
    assert "MEDTL_PRETRAINED=none" in demo or "--pretrained" in demo and "none" in demo


def test_under_torchrun_rank_0_alone_prints_the_whole_error(tmp_path, monkeypatch, capsys):
    command = ["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run")]
    monkeypatch.delenv("RANK", raising=False)
    assert main(command) == 2
    alone = capsys.readouterr().err
    assert alone.startswith(f"error: Data folder {tmp_path / 'missing'} does not exist. Check")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(command) == 2
    assert capsys.readouterr().err == alone
    monkeypatch.setenv("RANK", "1")
    assert main(command) == 2
    said = capsys.readouterr().err
    assert said == f"error on rank 1 of 2: Data folder {tmp_path / 'missing'} does not exist.\n"


def test_the_other_ranks_say_the_first_sentence_of_a_long_error(monkeypatch):
    err = DataError("ImageNet weights for resnet18 are not available: offline.\n  expected at: /x")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "7")
    assert error_line(err) == (
        "error on rank 7 of 8: ImageNet weights for resnet18 are not available: offline."
    )
    monkeypatch.setenv("RANK", "0")
    assert error_line(err) == f"error: {err}"
