""".github/workflows/site.yml, which publishes the course as a website: it cannot run here (no
GitHub), so these tests read it and check that every command it runs exists and that it deploys
what `make site` builds."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from medtl_helpers.config.profiles import PROFILES
from medtl_helpers.course.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "site.yml"


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps() -> list[dict]:
    return [step for job in workflow()["jobs"].values() for step in job["steps"]]


def commands() -> list[list[str]]:
    """Every shell command of the workflow's `run` steps, as words (continuations joined)."""
    found = []
    for step in steps():
        text = step.get("run", "").replace("\\\n", " ")
        for line in text.splitlines():
            for command in re.split(r"&&|\|\||;", line):
                if command.strip() and not command.strip().startswith("#"):
                    found.append(shlex.split(command))
    return found


def without_assignments(words: list[str]) -> list[str]:
    """The command after its leading VAR=value words."""
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        words = words[1:]
    return words


def medtl_commands() -> list[tuple[dict[str, str], list[str]]]:
    """(environment, arguments) of each `python -m medtl_helpers …` the workflow runs."""
    found = []
    for words in commands():
        env = dict(w.split("=", 1) for w in words[: len(words) - len(without_assignments(words))])
        words = without_assignments(words)
        if (
            len(words) > 2
            and Path(words[0]).name.startswith("python")
            and words[1:3]
            == [
                "-m",
                "medtl_helpers",
            ]
        ):
            found.append((env, words[3:]))
    return found


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*):(?!=)", text, flags=re.MULTILINE))


def make_runs() -> list[tuple[dict[str, str], str]]:
    """(environment, target) of each `make X` the workflow runs, in order."""
    found = []
    for words in commands():
        rest = without_assignments(words)
        env = dict(w.split("=", 1) for w in words[: len(words) - len(rest)])
        if rest[:1] == ["make"]:
            found += [(env, target) for target in rest[1:] if "=" not in target]
    return found


def test_it_runs_on_a_push_to_main_and_by_hand():
    flow = workflow()
    events = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert events["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in events


def test_every_make_target_it_runs_is_in_the_makefile():
    targets = [target for _, target in make_runs()]
    assert {"venv", "course", "site"} <= set(targets)
    assert set(targets) <= make_targets(), f"no Makefile target {set(targets) - make_targets()}"


def test_it_runs_the_course_in_the_cpu_profile_before_it_builds_the_site():
    runs = make_runs()
    (course,) = [env for env, target in runs if target == "course"]
    assert course.get("MEDTL_PROFILE") == "cpu"
    order = [target for _, target in runs]
    assert order.index("venv") < order.index("course") < order.index("site")


def test_every_medtl_command_it_runs_parses():
    found = medtl_commands()
    assert found, "the workflow downloads the data with `python -m medtl_helpers data download`"
    parser = build_parser()
    for _, args in found:
        try:
            parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"`python -m medtl_helpers {' '.join(args)}` does not parse")


def test_it_downloads_the_pneumoniamnist_file_the_cpu_profile_reads():
    parser = build_parser()
    downloads = [parser.parse_args(a) for _, a in medtl_commands() if a[:2] == ["data", "download"]]
    assert [(d.source, d.size) for d in downloads] == [
        ("pneumoniamnist", PROFILES["cpu"].image_size)
    ]


def test_it_deploys_the_site_folder_to_github_pages():
    flow = workflow()
    assert flow["permissions"]["pages"] == "write" and flow["permissions"]["id-token"] == "write"
    uses = {step.get("uses", "").split("@")[0]: step for step in steps()}
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "site"
    assert "actions/deploy-pages" in uses
    (deploy,) = [job for job in workflow()["jobs"].values() if "environment" in job]
    assert deploy["environment"]["name"] == "github-pages"
    assert deploy["needs"] == "build"


def test_the_makefile_builds_the_site_with_the_script_and_git_ignores_it():
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^site:.*\n((?:\t.*\n)+)", text, flags=re.MULTILINE).group(1)
    assert "tools/build_site.py" in recipe and (ROOT / "tools" / "build_site.py").is_file()
    assert "/site/" in (ROOT / ".gitignore").read_text().splitlines()
