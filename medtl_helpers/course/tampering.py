"""What a graded answer may not do: replace the checker that grades it, or what the checker uses.

`grade` runs the course's check cells, not the submitted ones, but an answer cell runs in the
same kernel before its check. Three defences. A grader cell before each answer (`BASELINE`, which
calls watch.py's `watch_answer`) notes the modules of this package, torch, torchvision, numpy,
pandas, sklearn, builtins and math: their names, their classes' attributes and bases, their
functions' code. The check cell (`guarded`) compares them with that note before the check, in
`genuine`, which then loads the checker's module again from its file, and after it, in
`watched`, since an answer's function can patch while the checker calls it. Whatever the answer
rebound, added or deleted is put back and named in a `TamperingError`: no points, a flag. The
checkers also refuse objects of classes the notebook made where they ask for a plain value
(checks/common.py). And `tampering` reads each answer's syntax tree and names what it tried.
None of this makes a kernel a sandbox: code that patches the watch itself, a module it does not
watch, or the interpreter can still hide, which is why docs/TEACHING.md says to grade in a
container.
"""

from __future__ import annotations

import ast
import importlib
import textwrap
from collections.abc import Iterator
from pathlib import Path

from medtl_helpers.course.student import python_only
from medtl_helpers.course.watch import WATCH, TamperingError, watch_answer, watched  # noqa: F401

# Modules whose names an answer may only import as they are (`TODO`, or a checker under its own
# name, to try an answer out); `medtl_helpers.checks` is the path the course used before #8.
GUARDED_MODULES = (
    "medtl_helpers.course.checks", "medtl_helpers.checks", __name__, "medtl_helpers.course.watch"
)  # fmt: skip
ALLOWED_IMPORTS = ("TODO",)
RESERVED = ("require_answer", "genuine", "watched", "watch_answer")
CHECKS_FOLDER = Path(__file__).resolve().parent / "checks"
GUARD = f"from {__name__} import genuine, watched  # grade: the course's checker, as written"
# The grader's cell before each checked answer (grading.py inserts it).
BASELINE = f"from {__name__} import watch_answer; watch_answer()  # grade: note the modules first"


def is_checker_name(name: str) -> bool:
    return name.startswith("check_") or name in RESERVED


def checker_calls(source: str) -> list[str]:
    """The checker functions (`check_…`) a check cell calls, in order."""
    calls = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)]
    names = [call.func.id for call in calls if isinstance(call.func, ast.Name)]
    return list(dict.fromkeys(name for name in names if name.startswith("check_")))


def guarded(source: str) -> str:
    """A check cell's source, preceded by lines that fetch its checkers again, run `watched`."""
    fetch = [f'{name} = genuine("{name}")' for name in checker_calls(source)]
    body = ["with watched():", textwrap.indent(source, "    ")]
    return "\n".join([GUARD, *fetch, *body]) if fetch else source


def _defining_module(name: str) -> str:
    for path in sorted(CHECKS_FOLDER.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return f"medtl_helpers.course.checks.{path.stem}"
    raise LookupError(f"no checker named {name} in {CHECKS_FOLDER}")


def genuine(name: str):
    """The checker `name`, from its module re-executed from the installed source file, after
    what the answer changed in the watched modules is put back (and remembered for `watched`)."""
    WATCH.settle()
    module = importlib.reload(importlib.import_module(_defining_module(name)))
    WATCH.rebase(module)
    return getattr(module, name)


def _guarded_module(dotted: str) -> bool:
    return any(dotted == m or dotted.startswith(m + ".") for m in GUARDED_MODULES)


def _imports(node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """What an import statement does that an answer should not."""
    for alias in node.names:
        bound = alias.asname or alias.name.split(".")[0]
        if isinstance(node, ast.ImportFrom) and node.module and _guarded_module(node.module):
            if alias.name in ALLOWED_IMPORTS or (
                is_checker_name(alias.name) and bound == alias.name
            ):
                continue
            yield f"imports {alias.name} from {node.module}" + (
                f" as {alias.asname}" if alias.asname else ""
            )
            continue
        full = f"{node.module}.{alias.name}" if isinstance(node, ast.ImportFrom) else alias.name
        if _guarded_module(full):
            yield f"imports the module {full}" + (f" as {alias.asname}" if alias.asname else "")
        elif is_checker_name(bound):
            yield f"imports {full} under a checker's name, {bound}"


def _bound_names(node: ast.AST) -> Iterator[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        yield node.id
    elif isinstance(node, ast.Global):
        yield from node.names


def _changed_objects(node: ast.AST) -> Iterator[str]:
    """Attribute and item assignments (and setattr calls) that reach the checker modules."""
    targets: list[ast.AST] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    elif isinstance(node, ast.Delete):
        targets = node.targets
    elif isinstance(node, ast.Call) and ast.unparse(node.func) == "setattr" and node.args:
        targets = [node.args[0]]
    for target in targets:
        if isinstance(target, (ast.Attribute, ast.Subscript)) or isinstance(node, ast.Call):
            text = ast.unparse(target)
            if any(word in text for word in ("check", "sys.modules", "genuine", "tampering")):
                yield f"changes {text}"


def tampering(source: str) -> list[str]:
    """What an answer cell does to the checkers, in words; [] for an honest answer.

    Flagged: binding a `check_…` name (def, assignment, import as), importing the checker
    modules or a checker under another name, and changing attributes of the checker modules or
    `sys.modules`. Calling a checker, or importing one under its own name, is fine.
    """
    try:
        tree = ast.parse(python_only(source))
    except SyntaxError:
        return []  # the kernel reports it when the answer runs
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += list(_imports(node))
            continue
        found += [f"defines {name}, a checker's name" for name in _bound_names(node)
                  if is_checker_name(name)]  # fmt: skip
        found += list(_changed_objects(node))
    return list(dict.fromkeys(found))
