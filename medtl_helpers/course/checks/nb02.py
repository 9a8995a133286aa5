"""Checkers for the exercises of notebook 02 (ResNet depth and what it costs).

Each checker runs the student's answer on cases with a known answer and, when it differs, raises
AssertionError with a sentence saying what the first difference is and what to change. On success
it prints one sentence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import nn

from medtl_helpers.course.checks.common import call_answer, plain, plain_number, require_answer

# (c_in, c_out, kernel_size, bias): the ResNet stem, a 3x3 of layer1, a bottleneck's 1x1
# expansion, a downsampling projection, and a biased conv so that `bias` matters.
_CONV_CASES = [
    (3, 64, 7, False),
    (64, 64, 3, False),
    (64, 256, 1, False),
    (256, 512, 1, False),
    (64, 128, 3, True),
    (16, 8, 5, True),
]


def _conv_reference(c_in: int, c_out: int, kernel_size: int, bias: bool) -> int:
    conv = nn.Conv2d(c_in, c_out, kernel_size, bias=bias)
    return sum(p.numel() for p in conv.parameters())


def _conv_hint(got: int, c_in: int, c_out: int, k: int, bias: bool) -> str:
    """Which typical mistake produces `got`, in words."""
    weights = c_out * c_in * k * k
    if got == weights + c_out and not bias:
        return f"with bias=False there is no bias: you added {c_out} (one per output channel)"
    if got == weights and bias:
        return f"bias=True adds one value per output channel ({c_out}), which is missing"
    extra = c_out if bias else 0
    if got == c_out * k * k + extra:
        return (
            "each output channel's filter spans all C_in input channels: multiply by C_in as well"
        )
    if got == c_out * c_in * k + extra:
        return f"a {k}x{k} kernel has k*k = {k * k} weights per input channel, not k = {k}"
    if got == c_in * k * k + extra:
        return "there is one filter per OUTPUT channel: multiply by C_out"
    return "a conv has C_out filters of C_in x k x k weights, plus C_out biases when bias=True"


def check_conv_params(conv_params: Callable[[int, int, int, bool], int]) -> None:
    """`conv_params(c_in, c_out, kernel_size, bias)` must equal nn.Conv2d's parameter count."""
    require_answer(conv_params, "your conv_params")
    for c_in, c_out, k, bias in _CONV_CASES:
        expected = _conv_reference(c_in, c_out, k, bias)
        call = f"conv_params({c_in}, {c_out}, {k}, bias={bias})"
        got = call_answer(
            conv_params,
            (c_in, c_out, k, bias),
            call,
            "It takes four numbers and returns an int; it does not need to build a layer.",
        )
        got = plain_number(got, f"the value {call} returned")
        if got is None:
            raise AssertionError(f"{call} returned None: did you forget the `return` statement?")
        if type(got) is float and got.is_integer():
            got = int(got)
        if type(got) is not int:
            raise AssertionError(
                f"{call} returned a {type(got).__name__} ({got!r}); expected an int."
            )
        if got != expected:
            raise AssertionError(
                f"{call} returned {got:,}; expected {expected:,}: "
                f"{_conv_hint(got, c_in, c_out, k, bias)}."
            )
    print(f"Correct: conv_params matches nn.Conv2d on all {len(_CONV_CASES)} layers tried.")


def _depth(arch: str) -> int:
    return int("".join(ch for ch in arch if ch.isdigit()))


def _deepest_within(rows: Sequence[dict], budget_ms: float, column: str) -> str | None:
    fitting = [row["arch"] for row in rows if row[column] <= budget_ms]
    return max(fitting, key=_depth) if fitting else None


def _budgets(rows: Sequence[dict], column: str) -> list[float]:
    """Budgets between measured latencies, above all, exactly on each one, and below all."""
    latencies = sorted(row[column] for row in rows)
    middles = [(a + b) / 2 for a, b in zip(latencies, latencies[1:])]
    return [*middles, math.inf, *latencies, latencies[0] / 2]


# Made-up batch-1 latencies (ms) that do not grow with depth, as on a busy machine: resnet50 is
# faster than resnet34 and resnet152 than resnet101, so the slowest model that fits is often not
# the deepest. The rows are not in depth order either, so that "the last row that fits" fails too
# (at 11 ms it is resnet50, the deepest that fits; at 14 ms resnet50 again, not resnet152).
_SHUFFLED_MS = {
    "resnet34": 9.0,
    "resnet18": 5.0,
    "resnet152": 13.0,
    "resnet50": 7.0,
    "resnet101": 15.0,
}
_SHUFFLED = (
    "On a made-up table where latency does not grow with depth and the rows are not in depth "
    "order (" + ", ".join(f"{arch} {ms:g} ms" for arch, ms in _SHUFFLED_MS.items()) + ")"
)


def _shuffled_rows(rows: Sequence[dict], column: str) -> list[dict]:
    """The made-up table, keeping any other columns of the student's rows for the same arch."""
    by_arch = {row["arch"]: row for row in rows}
    return [
        {**by_arch.get(arch, {}), "arch": arch, column: ms} for arch, ms in _SHUFFLED_MS.items()
    ]


# Typical wrong ways to pick among the architectures that fit (`fitting`, in row order), each
# with the answer it gives there. The checker names one only when it gives all of a student's
# answers on the table: at a single budget several can give the same wrong name.
_MISTAKES: dict[str, Callable[[list[str], dict[str, float]], str]] = {
    "slowest": lambda fitting, latency: max(fitting, key=latency.get),
    "last row": lambda fitting, latency: fitting[-1],
    "text": lambda fitting, latency: max(fitting),  # "resnet50" > "resnet152": "5" > "1"
    "fastest": lambda fitting, latency: min(fitting, key=latency.get),
}


def _mistake_answer(name: str, latency: dict[str, float], budget: float) -> str | None:
    fitting = [arch for arch, ms in latency.items() if ms <= budget]
    return _MISTAKES[name](fitting, latency) if fitting else None


def _diagnose(
    deepest_within: Callable[[Sequence[dict], float], str | None],
    rows: Sequence[dict],
    column: str,
) -> str | None:
    """The typical mistake that gives the student's answer at every budget tried, if one does."""
    latency = {row["arch"]: row[column] for row in rows}
    answers = []
    for budget in _budgets(rows, column):
        try:
            got = deepest_within(rows, budget)
        except Exception:  # the failing call's own error is reported elsewhere
            return None
        if got is not None and type(got) is not str:
            return None
        answers.append((budget, got))
    return next(
        (
            name
            for name in _MISTAKES
            if all(got == _mistake_answer(name, latency, budget) for budget, got in answers)
        ),
        None,
    )


def _explain(
    got: object,
    expected: str | None,
    budget: float,
    latency: dict[str, float],
    mistake: str | None = None,
) -> str:
    """Why `got` is not the deepest architecture within `budget`, in words. `latency` is in the
    table's row order; `mistake` is the one `_diagnose` found (None: say only what is right)."""
    where = f"with a budget of {budget:.2f} ms you returned {got!r}"
    if expected is None:
        return (
            f"{where}, but no architecture is that fast (the fastest takes "
            f"{min(latency.values()):.2f} ms): return None."
        )
    strict = [arch for arch, ms in latency.items() if ms < budget]
    if latency[expected] == budget and got == max(strict, key=_depth, default=None):
        return (
            f"{where}; expected {expected!r}, which takes exactly {budget:.2f} ms: a model "
            "that takes the whole budget still fits (use <=, not <)."
        )
    if got is None:
        return (
            f"{where}, but {expected!r} takes {latency[expected]:.2f} ms and fits: return "
            "None only when no architecture fits."
        )
    if got not in latency:
        return (
            f"{where}; expected {expected!r}: return an architecture name from the "
            f"table's 'arch' column ({', '.join(latency)}), or None."
        )
    if latency[got] > budget:
        return (
            f"{where}, which takes {latency[got]:.2f} ms, over the budget; expected "
            f"{expected!r} ({latency[expected]:.2f} ms)."
        )
    return _mistake_message(mistake, where, got, expected, latency)


def _mistake_message(
    mistake: str | None, where: str, got: str, expected: str, latency: dict[str, float]
) -> str:
    """The explanation of one of `_MISTAKES` (None: none of them) at one budget."""
    layers = f"{_depth(expected)} layers against {_depth(got)}"
    if mistake == "slowest":
        return (
            f"{where} ({latency[got]:.2f} ms); expected {expected!r} ({latency[expected]:.2f} "
            f"ms, {layers}): you took the slowest that fits; the question asks for the deepest. "
            "Latency need not grow with depth: compare the depths in the names."
        )
    if mistake == "last row":
        return (
            f"{where}, the last row that fits; expected {expected!r} ({layers}). The last row "
            "is the deepest only when the rows are sorted by depth, and a table need not be: "
            "compare the depths in the names."
        )
    if mistake == "text":
        first = next(((a, b) for a, b in zip(got, expected) if a != b), None)
        at = "" if first is None else f" ({first[0]!r} > {first[1]!r} at the first difference)"
        return (
            f"{where}; expected {expected!r} ({layers}): you compared the names as text, which "
            f"goes character by character, so {got!r} > {expected!r}{at}. Compare the depths "
            "as numbers, e.g. int(arch.removeprefix('resnet'))."
        )
    fastest = ", not the fastest" if mistake == "fastest" else ""
    return (
        f"{where}; expected {expected!r} ({latency[expected]:.2f} ms), which also fits "
        f"and is deeper ({layers}): among the architectures that fit, take the deepest{fastest}."
    )


def _check_table(
    deepest_within: Callable[[Sequence[dict], float], str | None],
    rows: Sequence[dict],
    column: str,
    table: str,
) -> None:
    """Raises AssertionError, naming `table`, at the first budget answered wrongly."""
    latency = {row["arch"]: row[column] for row in rows}
    for budget in _budgets(rows, column):
        expected = _deepest_within(rows, budget, column)
        call = f"{table}, deepest_within(rows, {budget:.2f})"
        got = call_answer(
            deepest_within,
            (rows, budget),
            call,
            "When nothing fits, return None instead of failing.",
        )
        plain(got, f"the value deepest_within(rows, {budget:.2f}) returned")
        if got is not None and not isinstance(got, str):
            raise AssertionError(
                f"{call} returned a {type(got).__name__}; return an architecture name from the "
                "table's 'arch' column (a str), or None."
            )
        if got != expected:
            mistake = _diagnose(deepest_within, rows, column)
            raise AssertionError(f"{table}, {_explain(got, expected, budget, latency, mistake)}")


def check_deepest_within(
    deepest_within: Callable[[Sequence[dict], float], str | None],
    rows: Sequence[dict],
    column: str = "latency_b1_ms",
) -> None:
    """`deepest_within(rows, budget_ms)`: the deepest arch whose `column` <= budget, else None.

    Tried on the student's measured `rows`, then on a made-up table where latency does not grow
    with depth, so that "the slowest that fits" cannot pass by luck.
    """
    require_answer(deepest_within, "your deepest_within")
    _check_table(deepest_within, rows, column, "On your table")
    _check_table(deepest_within, _shuffled_rows(rows, column), column, _SHUFFLED)
    print(
        "Correct: deepest_within picks the deepest architecture that fits every budget tried, "
        "on your table and on a made-up one where latency does not grow with depth."
    )
