"""What every checker shares: the placeholder a student copy starts from, and plain answers.

In the student notebooks (`make student`) each solution cell becomes a stub that binds the
names the exercise asks for to `TODO` and raises `NotImplementedError` with a hint. Every
checker calls `require_answer` first, so a checker run on an unanswered exercise raises
`NotImplementedError` too, with a sentence that says what to write, instead of a confusing
error about a `None` or a missing name.

A checker compares what the student gives with the right answer, and a comparison calls the
student's object: `class Whole(int)` with an `__eq__` that always says True would pass any of
them. So every value a checker compares goes through `plain` first, which raises
`TamperingError` (no points, a flag) for an object of a class the notebook made, inside lists,
tuples, sets, dicts, dataclasses and object arrays too; classes of Python, numpy, torch, pandas,
the course and other installed packages are fine. `plain_number` then gives a Python int or
float for a plain number, so that a checker can ask for exactly `int` (bool is not one).
`call_answer` runs a student's function and turns an error it raises into a sentence naming the
call and what to change, not a traceback into the checker.
"""

from __future__ import annotations

import dataclasses
import os
import site
import sys
from collections.abc import Callable
from pathlib import Path

from medtl_helpers.course.watch import HEAP_TYPE, TamperingError

_MAX_PARTS = 10_000  # parts of one value looked at; enough for any answer the course asks for
_INSTALLED = tuple(
    str(Path(place).resolve()) + os.sep
    for place in (sys.prefix, sys.base_prefix, *site.getsitepackages(), Path(__file__).parents[2])
)


class _Todo:
    """Placeholder for an exercise answer that has not been written yet."""

    def __repr__(self) -> str:
        return "TODO"

    def __bool__(self) -> bool:
        return False


TODO = _Todo()


def require_answer(answer: object, what: str) -> None:
    """Raise NotImplementedError when `answer` is still the student copy's placeholder."""
    if answer is TODO:
        raise NotImplementedError(
            f"{what} is not written yet: replace the placeholder cell above (its `= TODO` lines "
            "and its `raise NotImplementedError(...)`) with your answer, run it, then run this "
            "check again."
        )


def _made_here(cls: type) -> str:
    """Where the notebook made `cls` ('the notebook', or the file it wrote), or '' when Python or
    an installed package did. Read from the class's own __dict__: a class can lie in __module__
    but cannot then be found under its name there."""
    if not cls.__flags__ & HEAP_TYPE:
        return ""  # a C type: Python's, numpy's, torch's
    name = vars(cls).get("__module__")
    module = sys.modules.get(name) if type(name) is str else None
    if name == "__main__" or module is None:
        return "the notebook"
    found: object = module
    for part in cls.__qualname__.split("."):
        try:
            found = vars(found).get(part)
        except TypeError:  # no __dict__: the name leads nowhere
            found = None
    path = vars(module).get("__file__")
    if found is not cls or type(path) is not str:
        return "the notebook"
    path = str(Path(path).resolve())
    return "" if path.startswith(_INSTALLED) else f"{path}, written by the notebook"


def _inside(part: object) -> list:
    """The items of a container the course's answers come in; [] for anything else."""
    kind = type(part)
    if issubclass(kind, dict):
        return [item for pair in part.items() for item in pair]
    if issubclass(kind, (list, tuple, set, frozenset)):
        return list(part)
    if dataclasses.is_dataclass(part) and not isinstance(part, type):
        return [getattr(part, field.name) for field in dataclasses.fields(part)]
    if "numpy" in sys.modules and issubclass(kind, sys.modules["numpy"].ndarray):
        return list(part.ravel()) if part.dtype == object else []
    if "pandas" in sys.modules:
        pd = sys.modules["pandas"]
        if issubclass(kind, pd.DataFrame):
            return [part.index, part.columns, *(part[c] for c in part.columns)]
        if issubclass(kind, pd.Series):
            return [part.index, *(part.to_list() if part.dtype == object else [])]
        if issubclass(kind, pd.Index) and part.dtype == object:
            return part.to_list()
    return []


def plain(value: object, what: str) -> object:
    """`value`, once no part of it is an object of a class the notebook made; else raise
    TamperingError naming the class (e.g. "resnet34_partial is a Whole, a subclass of int
    defined in the notebook: give a plain int")."""
    stack, looked, seen = [(value, what)], 0, {}
    while stack and looked < _MAX_PARTS:
        part, called = stack.pop()
        looked += 1
        kind = type(part)
        where = seen[id(kind)] if id(kind) in seen else seen.setdefault(id(kind), _made_here(kind))
        if where:
            base = next((b for b in kind.__mro__[1:] if not _made_here(b)), object)
            what_kind = f"a subclass of {base.__name__}" if base is not object else "a class"
            wanted = base.__name__ if base is not object else "value of Python, numpy or torch"
            raise TamperingError(
                f"{called} is a {kind.__qualname__}, {what_kind} defined in {where}: give a "
                f"plain {wanted}"
            )
        stack += [(item, f"an item of {what}") for item in _inside(part)]
    return value


def plain_number(value: object, what: str) -> object:
    """`value` as a Python int or float when it is a plain number (int, float, a numpy number, a
    one-element tensor); anything else, bool included, as it is, for the checker to explain."""
    plain(value, what)
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    if torch is not None and type(value) is torch.Tensor and value.numel() == 1:
        value = value.item()
    if np is not None and isinstance(value, (np.integer, np.floating)):
        value = value.item()
    return value


def call_answer(function: Callable, args: tuple, call: str, hint: str) -> object:
    """`function(*args)`, or AssertionError "`call` raised <error>: <message>. `hint`" when it
    fails. NotImplementedError (a stub) and TamperingError go through as they are."""
    try:
        return function(*args)
    except (NotImplementedError, TamperingError):
        raise
    except Exception as err:
        raise AssertionError(f"{call} raised {type(err).__name__}: {err}. {hint}") from err
