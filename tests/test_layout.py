"""The package's shape, as COURSE.md §4 draws it: subpackages by responsibility, imports that only
point down, at most four loose modules, short modules and functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import medtl_helpers

PACKAGE = Path(medtl_helpers.__file__).resolve().parent
# Top to bottom: a module may import from its own part or from any part below it.
LAYERS = (
    "course",
    "adaptation",
    "evaluation",
    "training",
    "explain",
    "plots",
    "metrics",
    "models",
    "data",
    "config",
    "atomic",
    "progress",
    "errors",
)
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def layer_of(dotted: str) -> str | None:
    """The part of `medtl_helpers.x.y` ("x"), or None for the package itself."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(relative.parts).removesuffix(".__init__")


def imported(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return [name for name in names if name.split(".")[0] == "medtl_helpers"]


def test_every_part_of_the_package_is_in_the_layer_list():
    parts = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert parts - {"__init__", "__main__"} <= set(LAYERS)


def test_imports_only_point_down():
    upward = []
    for path in MODULES:
        here = layer_of(module_name(path))
        if here is None or here == "__main__":
            continue  # the package root re-exports and the entry point may use anything
        for name in imported(path):
            there = layer_of(name)
            if there in LAYERS and LAYERS.index(there) < LAYERS.index(here):
                upward.append(f"{module_name(path)} imports {name}")
    assert upward == []


def test_no_module_reaches_up_to_the_package_face():
    """`import medtl_helpers` inside the package points at __init__, above every layer (the
    version lives in config/version.py for that reason); `from medtl_helpers import config`
    names a part and is fine."""
    parts = {p.name.removesuffix(".py") for p in PACKAGE.iterdir()}
    face = []
    for path in MODULES:
        if path.parent == PACKAGE and path.stem in ("__init__", "__main__"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                face += [a.name for a in node.names if a.name == "medtl_helpers"]
            elif isinstance(node, ast.ImportFrom) and node.module == "medtl_helpers":
                face += [f"medtl_helpers.{a.name}" for a in node.names if a.name not in parts]
    assert face == []


def _module_imports(path: Path) -> set[str]:
    """The package modules `path` imports at its top level (type-checking imports included)."""
    known = {module_name(p) for p in MODULES}
    found, body = set(), list(ast.parse(path.read_text()).body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.If, ast.Try)):
            body += node.body
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # a submodule by name, else the module it comes from
                dotted = f"{node.module}.{alias.name}"
                found.add(dotted if dotted in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {name for name in found if name in known} - {module_name(path)}


def test_no_two_modules_import_each_other():
    graph = {module_name(p): _module_imports(p) for p in MODULES}
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        for other in sorted(graph.get(name, ())):
            if other in path:
                cycles.append(" -> ".join([*path[path.index(other) :], other]))
            elif other not in done:
                visit(other, [*path, other])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == []


def test_at_most_four_loose_modules():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert sorted(loose) == ["atomic.py", "errors.py", "plots.py", "progress.py"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_are_short(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= 300, f"{path.name} has {len(lines)} lines; split it by responsibility"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse("\n".join(lines)))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > 60
    ]
    assert long == []


def test_the_package_root_offers_the_names_notebooks_use_most():
    assert 10 <= len(medtl_helpers.__all__) <= 16
    for name in medtl_helpers.__all__:
        assert getattr(medtl_helpers, name) is not None
    from medtl_helpers.training import fit

    assert medtl_helpers.fit is fit
