"""The package as pip, conda, PyPI and a citation manager see it: pyproject.toml declares every
module the code imports, environment.yml lists the same, the Python floor is one the code runs on,
and LICENSE, CITATION.cff and the project's URLs agree with the metadata."""

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

from medtl_helpers.course import cli, links

if sys.version_info >= (3, 11):
    import tomllib
else:  # the dev extra installs tomli there: without it this fails, it does not skip
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch"}
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Python releases newer than 3.9 and what they brought that this code might use. The tests run
# on one Python, so this scan is what keeps requires-python honest.
NEWER = {
    "zip(strict=)": (3, 10),
    "dataclass(slots=)": (3, 10),
    "dataclass(kw_only=)": (3, 10),
    "itertools.pairwise": (3, 10),
    "contextlib.aclosing": (3, 10),
    "sys.stdlib_module_names": (3, 10),
    "importlib.metadata.packages_distributions": (3, 10),
    "typing.ParamSpec": (3, 10),
    "typing.TypeAlias": (3, 10),
    "typing.TypeGuard": (3, 10),
    "tomllib": (3, 11),
    "builtins.ExceptionGroup": (3, 11),
    ".add_note": (3, 11),
    "typing.Self": (3, 11),
    "typing.Never": (3, 11),
    "typing.assert_never": (3, 11),
    "typing.NotRequired": (3, 11),
    "enum.StrEnum": (3, 11),
    "datetime.UTC": (3, 11),
    "hashlib.file_digest": (3, 11),
    "contextlib.chdir": (3, 11),
    "sys.exception": (3, 11),
    "itertools.batched": (3, 12),
    "typing.override": (3, 12),
    "copy.replace": (3, 13),
    "warnings.deprecated": (3, 13),
}
NEWER_SYNTAX = {"Match": (3, 10), "TryStar": (3, 11), "TypeAlias": (3, 12)}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=\s*[\w.]+)?", text)
    assert match, f"cannot parse requirement {text!r}"
    return normalize(match.group(1)), (match.group(2) or "").replace(" ", "")


def requirements(*groups: str) -> dict[str, str]:
    """Name -> lower bound of `dependencies` and the named extras (a self-reference skipped)."""
    items = list(PROJECT["dependencies"]) if "runtime" in groups else []
    for group in groups:
        items += PROJECT["optional-dependencies"].get(group, [])
    found = dict(parse_requirement(item) for item in items)
    found.pop(normalize(PROJECT["name"]), None)
    return found


def conda_requirements() -> dict[str, str]:
    found = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        match = re.match(r"^\s+-\s+([^#]+?)\s*$", line)
        if not match or match.group(1) in ("pip", "pip:", "-e .") or match.group(1).endswith(":"):
            continue
        name, bound = parse_requirement(match.group(1))
        found[CONDA_NAMES.get(name, name)] = bound
    return found


def test_environment_yml_matches_pyproject():
    conda = conda_requirements()
    assert conda.pop("python") == ">=" + PROJECT["requires-python"].removeprefix(">=")
    assert conda == requirements("runtime", *PROJECT["optional-dependencies"])


def test_torch_ranges_stay_loose_for_colab():
    deps = requirements("runtime")
    assert deps["torch"] == ">=2.3" and deps["torchvision"] == ">=0.18"


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.removeprefix(">=").split("."))


def test_ipywidgets_admits_the_one_colab_preinstalls():
    # Colab ships ipywidgets 7.7.1 and renders 7.x; a higher floor makes pip replace it
    assert version(requirements("runtime")["ipywidgets"]) <= (7, 7, 1)


def test_ci_runs_make_test_only():
    script = (ROOT / ".ci" / "run").read_text()
    assert script.strip().splitlines()[-1] == "make test"


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def imported(path: Path) -> dict[str, bool]:
    """Top-level modules `path` imports: True when importing the file imports them, False when
    only a function does (or `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    lazy = set()
    for node in ast.walk(tree):
        deferred = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        if deferred or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy |= {id(inner) for inner in ast.walk(node)}
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        for top in (name.split(".")[0] for name in names):
            found[top] = found.get(top, False) or id(node) not in lazy
    return found


def undeclared(files: list[Path], declared: dict[str, str], eager_only: bool) -> list[str]:
    """'file: module (distribution)' for each third-party import not in `declared`."""
    local = {path.stem for path in python_files("tests", "tools", "benchmarks")}
    local |= {"medtl_helpers", *sys.stdlib_module_names}
    owners = metadata.packages_distributions()
    problems = []
    for path in files:
        for module, eager in imported(path).items():
            if module in local or (eager_only and not eager):
                continue
            distribution = normalize(owners.get(module, [module])[0])
            if distribution not in declared:
                problems.append(f"{path.relative_to(ROOT)}: {module} ({distribution})")
    return problems


def test_the_package_declares_every_module_it_imports():
    package = python_files("medtl_helpers")
    # importing a module of the package needs only `dependencies`; what a function imports
    # late may come from the `course` extra (the command line names it when it is missing)
    assert undeclared(package, requirements("runtime"), eager_only=True) == []
    assert undeclared(package, requirements("runtime", "course"), eager_only=False) == []


def test_the_tests_tools_and_benchmarks_import_only_declared_modules():
    everything = requirements("runtime", *PROJECT["optional-dependencies"])
    files = python_files("tests", "tools", "benchmarks")
    assert undeclared(files, everything, eager_only=False) == []


def test_the_notebook_commands_check_for_the_course_extra():
    assert {normalize(name) for name in cli.NOTEBOOK_TOOLS} == set(requirements("course"))
    assert f"{PROJECT['name']}[course]" in PROJECT["optional-dependencies"]["dev"]


def python_floor() -> tuple[int, int]:
    match = re.fullmatch(r">=\s*3\.(\d+)", PROJECT["requires-python"])
    assert match, f"requires-python should be a plain floor, not {PROJECT['requires-python']!r}"
    return 3, int(match.group(1))


def test_the_python_floor_is_the_same_everywhere():
    floor = python_floor()
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    assert ruff["target-version"] == f"py{floor[0]}{floor[1]}"
    assert "UP" in ruff["lint"]["select"]  # pyupgrade's rules run at the floor
    prefix = "Programming Language :: Python :: 3."
    minors = [int(c.removeprefix(prefix)) for c in PROJECT["classifiers"] if c.startswith(prefix)]
    assert minors == list(range(floor[1], floor[1] + len(minors))) and len(minors) >= 2
    assert f"python>=3.{floor[1]}\n" in (ROOT / "environment.yml").read_text()


def newer_features(path: Path) -> dict[str, tuple[int, int]]:
    """The features of NEWER and NEWER_SYNTAX that `path` uses, with the Python they need
    (what an `if sys.version_info …:` block imports is not counted: the block chose it)."""
    tree = ast.parse(path.read_text())
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).startswith("sys.version_info"):
            guarded |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    aliases, used = {}, set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name
                used.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                used |= {node.module, f"{node.module}.{alias.name}"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(aliases.get(node.id) or f"builtins.{node.id}")
        elif isinstance(node, ast.Attribute):
            used.add(f".{node.attr}")
            if isinstance(node.value, ast.Name):
                used.add(f"{aliases.get(node.value.id) or node.value.id}.{node.attr}")
        if isinstance(node, ast.Call):
            function = ast.unparse(node.func).split(".")[-1]
            used |= {f"{function}({keyword.arg}=)" for keyword in node.keywords}
    syntax = {type(node).__name__ for node in ast.walk(tree)}
    found = {name: NEWER[name] for name in used if name in NEWER}
    return found | {name: NEWER_SYNTAX[name] for name in syntax if name in NEWER_SYNTAX}


def test_no_code_needs_a_python_newer_than_the_floor():
    floor = python_floor()
    newer = [
        f"{path.relative_to(ROOT)}: {feature} needs Python {needs[0]}.{needs[1]}"
        for path in python_files("medtl_helpers", "tests", "tools", "benchmarks")
        for feature, needs in sorted(newer_features(path).items())
        if needs > floor
    ]
    assert newer == []


def test_the_scan_finds_what_it_looks_for(tmp_path):
    code = (
        "import sys, tomllib\nfrom itertools import batched\n"
        "match x:\n    case 1: zip(a, strict=1)\n"
        "if sys.version_info >= (3, 13):\n    from warnings import deprecated\n"
        "except_group = ExceptionGroup\nSelf = 'not typing.Self'\n"
    )
    (tmp_path / "new.py").write_text(code)
    assert newer_features(tmp_path / "new.py") == {
        "tomllib": (3, 11),
        "itertools.batched": (3, 12),
        "Match": (3, 10),
        "zip(strict=)": (3, 10),
        "builtins.ExceptionGroup": (3, 11),
    }


def test_license_is_the_mit_text_the_metadata_declares():
    text = (ROOT / "LICENSE").read_text()
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert text.startswith("MIT License\n\nCopyright (c) ")
    assert "Permission is hereby granted, free of charge, to any person obtaining a copy" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def citation() -> dict[str, str]:
    """CITATION.cff's top-level `key: value` lines (YAML; these values are plain scalars)."""
    text = (ROOT / "CITATION.cff").read_text()
    pairs = re.findall(r"^([\w-]+):[ \t]+(.+?)[ \t]*$", text, flags=re.MULTILINE)
    return {key: value.strip("\"'") for key, value in pairs}


def test_citation_cff_names_this_release_and_repository():
    cff = citation()
    repository = f"https://github.com/{links.REPOSITORY}"
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == PROJECT["version"]
    assert cff["license"] == PROJECT["license"] and cff["repository-code"] == repository
    assert cff["title"] and cff["message"]
    authors = (ROOT / "CITATION.cff").read_text().split("\nauthors:\n", 1)[1]
    assert re.match(r"  - name: \"?medtl course authors\"?\n", authors)
    assert PROJECT["authors"] == [{"name": "medtl course authors"}]


def test_the_project_urls_are_the_repository_the_links_point_at():
    repository = f"https://github.com/{links.REPOSITORY}"
    urls = PROJECT["urls"]
    assert urls["Repository"] == urls["Homepage"] == repository
    assert urls["Issues"] == f"{repository}/issues"
