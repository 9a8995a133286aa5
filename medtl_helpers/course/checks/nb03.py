"""Checkers for the exercises of notebook 03 (freezing strategies).

Each checker runs the student's answer against the package's own freezing, and when they differ
raises AssertionError with a sentence naming the first difference and what to change. On success
it prints one sentence.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import inspect
import types
from collections.abc import Callable

import torch
from torch import nn

from medtl_helpers.course.checks.common import call_answer, plain_number, require_answer
from medtl_helpers.models import build_model, group_of
from medtl_helpers.models.freezing import count_parameters, freeze

# Groups to freeze, and whether the model arrives with every parameter already frozen: a correct
# answer must also set requires_grad=True on the groups it does not freeze, the head included.
FREEZE_CASES = (
    (["stem"], False),
    (["stem", "layer1", "layer2"], False),
    (["layer4", "head"], True),
    (["stem", "layer1", "layer2"], True),
)


def _skeleton(arch: str) -> nn.Module:
    """The architecture on the meta device: real names and shapes, no memory, no init time."""
    with torch.device("meta"):
        return build_model(arch, pretrained="none", verbose=False)


# What the exercise asks the student to write, and so to use neither, in message order.
FORBIDDEN = (group_of, freeze)
FOLLOW_DEPTH = 6  # how many calls deep the answer's own functions are followed
PACKAGE = freeze.__module__.split(".")[0]  # medtl_helpers
UNKNOWN = object()  # a name or attribute the checker cannot resolve before the answer runs


def _lookups(code: types.CodeType):
    """Each name the code, and the code nested in it, loads, with where it comes from and the
    attributes read from it straight after: ('global', 'M', 'group_of') for `M.group_of`;
    ('import', 'medtl_helpers', 'freeze') for `from medtl_helpers import freeze`; and
    ('imported', 'F', 'medtl_helpers') for each name an import binds, with the module it was
    imported from, as in `import medtl_helpers as F`."""
    kinds = {"LOAD_GLOBAL": "global", "LOAD_NAME": "global", "LOAD_DEREF": "cell"}
    kinds |= {"LOAD_CLASSDEREF": "cell", "LOAD_FAST": "local"}
    stack, chains, chain, module, previous = [code], [], None, "", ""
    while stack:
        code = stack.pop()
        stack += [const for const in code.co_consts if isinstance(const, types.CodeType)]
        for instruction in dis.get_instructions(code):
            if instruction.opname in ("LOAD_ATTR", "LOAD_METHOD") and chain:
                chain.append(instruction.argval)
                continue
            chains += [tuple(chain)] if chain else []
            kind = kinds.get(instruction.opname)
            chain = [kind, instruction.argval] if kind else None
            if instruction.opname == "IMPORT_NAME":
                module = instruction.argval
            elif instruction.opname == "IMPORT_FROM":
                chains.append(("import", module, instruction.argval))
            elif instruction.opname.startswith("STORE_") and previous.startswith("IMPORT_"):
                chains.append(("imported", instruction.argval, module))
            previous = instruction.opname
        chains += [tuple(chain)] if chain else []
    return chains


def _ours(module: str) -> bool:
    """Whether an import names the package or one of its modules."""
    return module.split(".")[0] == PACKAGE


def _references(function: types.FunctionType, owner: type | None) -> dict[str, tuple]:
    """What each name the function looks up is bound to, with the class it was read from (None
    if none): its globals, its closure cells, the attributes of modules and classes, and in a
    method those of its class `owner` through `self`. Locals and the cells of functions nested
    in it are not known before it runs, so are not resolved; but `freeze` or `group_of` imported
    from the package in the function, or read as an attribute of a module imported there from
    the package (`F.freeze`), is taken by its name; one imported from elsewhere is not."""
    code = function.__code__
    roots = {"global": function.__globals__, "cell": {}, "local": {}}
    for name, cell in zip(code.co_freevars, function.__closure__ or ()):
        with contextlib.suppress(ValueError):  # an empty cell: not assigned yet
            roots["cell"][name] = cell.cell_contents
    if owner is not None and code.co_argcount:
        roots["local"][code.co_varnames[0]] = owner  # self, or cls in a classmethod
    defaults = dict(
        zip(code.co_varnames[: code.co_argcount][::-1], (function.__defaults__ or ())[::-1])
    )
    roots["local"] |= defaults | (function.__kwdefaults__ or {})  # `def f(m, g, f=freeze)`
    by_name = {package_function.__name__: package_function for package_function in FORBIDDEN}
    lookups, found = _lookups(code), {}
    imported = {  # names bound in the function by an import from the package
        root for kind, root, *source in lookups if kind == "imported" and _ours(source[0])
    }
    for kind, root, *attributes in lookups:
        if kind == "imported":
            continue
        if kind == "import":  # `from medtl_helpers.models import group_of`, in the function
            if _ours(root) and attributes[0] in by_name:
                found[f"{root}.{attributes[0]}"] = (by_name[attributes[0]], None)
            continue
        obj, label = roots[kind].get(root, UNKNOWN), root
        found |= {label: (obj, None)} if obj is not UNKNOWN else {}
        a_module = obj is UNKNOWN and root in imported  # a package module imported in it
        for attribute in attributes:
            label = f"{label}.{attribute}"
            if obj is UNKNOWN:  # not known before the function runs: go by the name
                by_name_here = a_module and attribute in by_name
                found |= {label: (by_name[attribute], None)} if by_name_here else {}
                continue
            if not isinstance(obj, (types.ModuleType, type)):
                break
            a_module = isinstance(obj, types.ModuleType)
            read_from = obj if isinstance(obj, type) else None
            obj = inspect.getattr_static(obj, attribute, UNKNOWN)
            found |= {label: (obj, read_from)} if obj is not UNKNOWN else {}
    return found


def _package_uses(answer: object) -> dict[str, list[str]]:
    """The package functions the answer reaches, each with the names it reaches it through.

    Names are resolved to objects, so a student's own function called group_of is not the
    package's, and an alias or a helper of the package's is: a global or closure alias, a
    defaulted argument, a class attribute read through `self` or `cls` (a staticmethod or
    classmethod included), and an import inside the function. Only the student's own functions
    (defined in __main__ or next to the answer) are followed, FOLLOW_DEPTH calls deep.
    Containers (`[freeze]`), attributes set on an instance at run time (`self.f = freeze`),
    dynamic lookups (`getattr`, `globals()`) and the student's own modules imported inside the
    function (not known before it runs) are not followed.
    """
    uses: dict[str, list[str]] = {}
    seen: set[int] = set()
    home: list[dict] = []  # the globals of the first function met: the answer's own namespace

    def own(function: types.FunctionType) -> bool:
        home[:] = home or [function.__globals__]
        return function.__module__ == "__main__" or function.__globals__ is home[0]

    def visit(obj: object, path: list[str], owner: type | None = None) -> None:
        for package_function in FORBIDDEN:
            if obj is package_function:
                uses.setdefault(package_function.__name__, path)
                return
        if len(path) > FOLLOW_DEPTH or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, functools.partial):
            for part in (obj.func, *obj.args, *obj.keywords.values()):
                visit(part, path)
        elif isinstance(obj, staticmethod):  # as found in a class's __dict__
            visit(obj.__func__, path)
        elif isinstance(obj, classmethod):
            visit(obj.__func__, path, owner)
        elif isinstance(obj, types.MethodType):  # bound to an instance, or to a class (cls)
            bound = obj.__self__
            visit(obj.__func__, path, bound if isinstance(bound, type) else type(bound))
        elif isinstance(obj, types.FunctionType):
            if own(obj):
                for name, (found, read_from) in _references(obj, owner).items():
                    visit(found, [*path, name], read_from)
        elif callable(obj) and not isinstance(obj, type):
            call = inspect.getattr_static(type(obj), "__call__", None)
            if isinstance(call, types.FunctionType):
                visit(call, [*path, f"{type(obj).__name__}.__call__"], type(obj))

    visit(answer, [])
    return {name: uses[name] for name in (f.__name__ for f in FORBIDDEN) if name in uses}


def _refuse_the_package(freeze_groups: object) -> None:
    used = []
    for name, path in _package_uses(freeze_groups).items():
        through = path[:-1] if path[-1:] == [name] else path
        used.append(f"{name} (through {', then '.join(through)})" if through else name)
    if used:
        raise AssertionError(
            f"freeze_groups uses {' and '.join(used)}, which the exercise asks you not to use: "
            "find each parameter's group from the first component of its name yourself, and set "
            "requires_grad from it."
        )


def check_freeze_groups(freeze_groups: Callable[[nn.Module, list[str]], object]) -> None:
    """`freeze_groups(model, groups)` must freeze exactly the named layer groups, by prefix,
    without calling the package's `freeze` or `group_of` (the exercise is to write them)."""
    require_answer(freeze_groups, "your freeze_groups")
    _refuse_the_package(freeze_groups)
    for groups, arrives_frozen in FREEZE_CASES:
        model = _skeleton("resnet18")
        for param in model.parameters():
            param.requires_grad_(not arrives_frozen)
        call = f"freeze_groups(model, {groups})"
        call_answer(
            freeze_groups,
            (model, list(groups)),
            call,
            "Go through model.named_parameters() and set requires_grad from the group of each "
            "name (its first component: conv1 and bn1 are the stem, fc the head).",
        )
        names = [name for name, _ in model.named_parameters()]
        frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
        wanted = {name for name in names if group_of(name) in groups}
        extra = [name for name in names if name in frozen - wanted]
        missing = [name for name in names if name in wanted - frozen]
        if extra and arrives_frozen:
            raise AssertionError(
                f"{call} left {extra[0]} frozen ({len(extra)} tensors in all) although its group, "
                f"{group_of(extra[0])}, is not in the list. The model arrived with everything "
                "frozen: set requires_grad=True on the other groups, as `freeze` does."
            )
        if extra:
            hint = (
                ' That is what a substring test such as `"conv1" in name` does; look at the '
                "name's first component (name.split('.')[0]) instead."
                if any(part in extra[0].split(".")[-2:] for part in ("conv1", "bn1"))
                else ""
            )
            raise AssertionError(
                f"{call} also froze {extra[0]} ({len(extra)} tensors outside the groups), which "
                f"belongs to {group_of(extra[0])}.{hint}"
            )
        if missing:
            raise AssertionError(
                f"{call} left {missing[0]} trainable ({len(missing)} tensors missed), but it "
                f"belongs to {group_of(missing[0])}. Stem = conv1 and bn1; head = fc."
            )
    print(
        f"Well done: freeze_groups freezes exactly the requested groups in all "
        f"{len(FREEZE_CASES)} cases, as medtl_helpers.models.freezing.freeze does."
    )


def _group_sizes(model: nn.Module) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for name, param in model.named_parameters():
        sizes[group_of(name)] = sizes.get(group_of(name), 0) + param.numel()
    return sizes


def check_partial_count(answer: object) -> None:
    """`answer` must be the number of trainable parameters of resnet34 under freeze "partial".

    A whole-number float (19937794.0) counts as that int; a float with a fraction does not.
    """
    require_answer(answer, "your resnet34_partial")
    answer = plain_number(answer, "resnet34_partial")
    if type(answer) is float and answer.is_integer():
        answer = int(answer)  # a count computed with `/` or `**` comes as a float such as 2.0
    if type(answer) is not int:
        raise AssertionError(
            f"Your answer is a {type(answer).__name__} ({answer!r}); give a whole number of "
            "parameter values, e.g. 1234567."
        )
    arch = "resnet34"
    model = _skeleton(arch)
    freeze(model, "partial")
    expected = count_parameters(model, trainable_only=True)
    total = count_parameters(model)
    sizes = _group_sizes(model)
    resnet18 = _skeleton("resnet18")
    freeze(resnet18, "partial")
    mistakes = {
        total: f"that is every parameter of {arch}; 'partial' freezes stem, layer1 and layer2",
        total - expected: "that is the FROZEN count; the question asks how many still train",
        sizes["layer3"] + sizes["layer4"]: (
            f"you left out the head: fc still trains ({sizes['head']:,} values, 512 x 2 weights "
            "+ 2 biases)"
        ),
        sizes["layer4"] + sizes["head"]: "you counted layer4 and the head, but layer3 trains too",
        expected - 2: "the head has a bias per class too: 512 x 2 weights + 2 biases",
        count_parameters(resnet18, trainable_only=True): (
            "that is resnet18's count; resnet34 has [3, 4, 6, 3] blocks per stage, not [2, 2, 2, 2]"
        ),
    }
    if answer != expected:
        reason = mistakes.get(
            answer,
            f"you are {answer - expected:+,} off. Trainable = layer3 + layer4 + head; each 3x3 "
            "conv has in x out x 9 weights, each BatchNorm 2 x channels, and the first block "
            "of layer3 and layer4 has a 1x1 projection (conv + BatchNorm)",
        )
        raise AssertionError(
            f"{answer:,} is not the trainable count of {arch} 'partial': {reason}."
        )
    print(
        f"Correct: {arch} with freeze 'partial' trains {expected:,} of {total:,} parameters "
        f"({100 * expected / total:.1f}%)."
    )
