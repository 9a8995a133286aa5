"""pyproject.toml and environment.yml must list the same dependencies with the same lower bounds."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")


def parse_requirement(text: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=\s*[\w.]+)?", text)
    assert match, f"cannot parse requirement {text!r}"
    return match.group(1).lower(), (match.group(2) or "").replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    items = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(parse_requirement(item) for item in items)


def conda_requirements() -> dict[str, str]:
    found = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        match = re.match(r"^\s+-\s+([^#]+?)\s*$", line)
        if not match or match.group(1) in ("pip", "pip:", "-e .") or match.group(1).endswith(":"):
            continue
        name, bound = parse_requirement(match.group(1))
        if name != "python":
            found[CONDA_NAMES.get(name, name)] = bound
    return found


def test_environment_yml_matches_pyproject():
    assert conda_requirements() == pyproject_requirements()


def test_torch_ranges_stay_loose_for_colab():
    deps = pyproject_requirements()
    assert deps["torch"] == ">=2.3" and deps["torchvision"] == ">=0.18"


def test_ci_runs_make_test_only():
    script = (ROOT / ".ci" / "run").read_text()
    assert script.strip().splitlines()[-1] == "make test"
