"""The watch over the modules a check computes with, in the kernel that runs a graded notebook.

An answer runs in the same kernel as its check, so it can rebind what the checker calls:
`medtl_helpers.models.group_of`, `torch.allclose`, `builtins.isinstance`, a method of
`BasicBlock`. `watch_answer` (the grader's cell before each answer) notes every module of the
packages in WATCHED: its names, the attributes and bases of the classes defined in it and the
code of its functions. The check cell (tampering.guarded) compares with that note before the
check and, through `watched`, after it, since a function of the answer can patch while the
checker calls it. What changed is put back and named in a `TamperingError`: no points, a flag.
Submodules imported since are not a change, and a value set again to the same object is none
either. With torch, pandas and sklearn loaded (about 2,000 modules, 4,800 classes, 33,000
functions) a note takes 0.1 to 0.4 s and a comparison 0.05 s on one core.
"""

from __future__ import annotations

import operator
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from types import FunctionType, MethodType, ModuleType

# Packages whose modules `watch_answer` notes (everything a checker computes with), and names
# that Python itself adds to modules and classes as they are used.
WATCHED = ("medtl_helpers", "torch", "torchvision", "numpy", "pandas", "sklearn", "builtins",
           "math")  # fmt: skip
_HARMLESS = ("__warningregistry__", "__slotnames__", "__annotations__")
HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by Python code; C types can't be patched
_GONE = object()


class TamperingError(Exception):
    """An answer that changed what its check relies on, or gave an object of a class of its own
    where a plain value was asked for. `flag` says what, for the gradebook; `verdict` is what the
    course's check said with everything put back ("" when it passed or did not get that far)."""

    def __init__(self, flag: str, verdict: str = "") -> None:
        super().__init__(f"{flag}\n{verdict}" if verdict else flag)
        self.flag, self.verdict = flag, verdict


@dataclass
class _Noted:
    """One watched module as `watch_answer` found it."""

    module: ModuleType
    kind: type  # a module's class can be swapped for one whose __getattribute__ lies
    names: dict  # a copy of its __dict__
    classes: list  # (class defined in it, its __bases__, a copy of its __dict__)
    code: list  # (where, function, its __code__, __defaults__, __kwdefaults__)


def _functions(module: str, where: str, names: dict) -> list:
    """The functions among `names` that `module` defines (a re-export is noted where it lives)."""
    found = []
    for name, value in names.items():
        value = value.__func__ if type(value) in (staticmethod, classmethod) else value
        if type(value) is FunctionType and value.__module__ == module:
            found.append((f"{where}.{name}", value, *_code(value)))
    return found


def _note(name: str, module: ModuleType) -> _Noted:
    names = dict(vars(module))
    noted = _Noted(module, type(module), names, [], _functions(name, name, names))
    for value in names.values():  # type() only: getattr on an arbitrary object can warn or run
        if issubclass(type(value), type) and value.__flags__ & HEAP_TYPE:
            members = dict(vars(value))
            if members.get("__module__") == name:
                noted.classes.append((value, value.__bases__, members))
                noted.code += _functions(name, f"{name}.{value.__qualname__}", members)
    return noted


def _notes() -> dict[str, _Noted]:
    modules = [
        (name, module)
        for name, module in list(sys.modules.items())
        if name.partition(".")[0] in WATCHED and issubclass(type(module), ModuleType)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: _note(name, module) for name, module in modules}


def _same(was: object, now: object) -> bool:
    if was is now:
        return True
    kind = type(was)
    if kind is not type(now):
        return False
    if kind is MethodType:  # a bound method is made anew on each lookup (IPython's get_ipython)
        return was.__func__ is now.__func__ and was.__self__ is now.__self__
    if kind not in (int, float, complex, str, bytes, bool):
        return False
    return was == now or (was != was and now != now)  # NaN set again is no change either


def _names_changed(where: str, was: dict, now: dict, put, remove) -> Iterator[tuple]:
    """(what, undo) for each name of `was` rebound or deleted in `now`, and each name added."""
    if len(was) == len(now) and all(map(operator.is_, was, now)):
        if all(map(operator.is_, was.values(), now.values())):
            return  # the usual case, checked at C speed
    for name, value in was.items():
        current = now.get(name, _GONE)
        if current is _GONE:
            yield f"deleted {where}.{name}", partial(put, name, value)
        elif not _same(value, current):
            yield f"rebound {where}.{name}", partial(put, name, value)
    for name in [name for name in now if name not in was]:
        if name not in _HARMLESS and sys.modules.get(f"{where}.{name}") is not now[name]:
            yield f"added {where}.{name}", partial(remove, name)  # it can hide a builtin


def _changes(name: str, noted: _Noted) -> Iterator[tuple]:
    module = noted.module
    if sys.modules.get(name) is not module:
        yield f"replaced sys.modules[{name!r}]", partial(sys.modules.__setitem__, name, module)
    if type(module) is not noted.kind:
        yield f"changed the class of {name}", partial(setattr, module, "__class__", noted.kind)
    names = vars(module)
    yield from _names_changed(name, noted.names, names, names.__setitem__, names.__delitem__)
    for cls, bases, members in noted.classes:
        where = f"{name}.{cls.__qualname__}"
        if cls.__bases__ is not bases:
            yield f"changed the bases of {where}", partial(setattr, cls, "__bases__", bases)
        put, remove = partial(type.__setattr__, cls), partial(type.__delattr__, cls)
        yield from _names_changed(where, members, vars(cls), put, remove)
    for where, function, *was in noted.code:
        if not all(map(operator.is_, was, _code(function))):
            yield f"changed the code of {where}", partial(_put_code, function, *was)


def _code(function: FunctionType) -> tuple:
    return function.__code__, function.__defaults__, function.__kwdefaults__


def _put_code(function: FunctionType, code, defaults, kwdefaults) -> None:
    function.__code__, function.__defaults__, function.__kwdefaults__ = code, defaults, kwdefaults


class _Watch:
    """The kernel's note of the watched modules, and what the answer was found to have changed.
    Kept in an object: rebinding names of this module would itself count as a change."""

    def __init__(self) -> None:
        self.noted: dict[str, _Noted] | None = None
        self.found: list[str] = []

    def start(self) -> None:
        self.noted, self.found = _notes(), []

    def settle(self, when: str = "") -> None:
        """Put back what changed since the note, and remember what it was."""
        changes = [change for name, noted in (self.noted or {}).items()
                   for change in _changes(name, noted)]  # fmt: skip
        for _, undo in changes:
            try:
                undo()
            except (AttributeError, TypeError):
                pass  # named in the flag all the same
        self.found += [f"{what}{when}" for what, _ in changes]

    def rebase(self, module: ModuleType) -> None:
        if self.noted is not None and module.__name__ in self.noted:
            self.noted[module.__name__] = _note(module.__name__, module)


WATCH = _Watch()


def watch_answer() -> None:
    """The grader's cell before an answer: note the watched modules as they are now."""
    WATCH.start()


class watched:  # noqa: N801 -- used as `with watched():` in the graded check cells
    """Around a check: what the answer changed is put back before it (if `genuine` has not done
    so) and after it; any change raises TamperingError with the check's own verdict in it."""

    def __enter__(self) -> None:
        if WATCH.noted is None:
            WATCH.start()  # no note before the answer: the check itself is still watched
        WATCH.settle()

    def __exit__(self, kind, error, traceback) -> bool:
        WATCH.settle(" while the check ran")
        found, WATCH.noted, WATCH.found = WATCH.found, None, []
        if not found or (error is not None and not isinstance(error, Exception)):
            return False  # nothing changed, or an interrupt: let it through
        more = f" and {len(found) - 6} more" if len(found) > 6 else ""
        flag = "the answer " + ", ".join(found[:6]) + more
        verdict = "" if error is None else str(error)
        if isinstance(error, TamperingError):
            flag, verdict = f"{error.flag}; {flag}", error.verdict
        elif error is not None and not isinstance(error, AssertionError):
            verdict = f"{kind.__name__}: {error}"
        raise TamperingError(flag, verdict) from error
