"""The checker of notebook 09's first exercise: a nearest-prototype classifier written by hand.

The answer is the label of the nearest class mean by (squared) Euclidean distance; an answer that
calls `nearest_prototype` or `prototype_logits` is refused. Six small 2-D cases
(`nb09_prototype_cases`) tell it apart from the answers that look alike: the nearest single support
image or a vote of the three nearest, the mean of the distances to a class's images, the largest
dot product or cosine with a mean, sums instead of means, classes taken as blocks of the support
order, median prototypes or the centres of the classes' ranges, the L1 or L∞ distance,
standardised features, a logistic regression fit on the support, a cosine after subtracting the
support's mean, and a prior for the class sizes added to the score (with a weight above 0.0025 on
the squared distances, or with the distances divided by a variance; a smaller weight changes no
answer). At the first case an answer gets wrong, the message names the mistake it reproduces on
every case; else it names the first query point it gets wrong and
what the nearest class mean gives there.
"""

from __future__ import annotations

import types
from collections.abc import Callable

import numpy as np
import torch

from medtl_helpers.adaptation import nearest_prototype, prototype_logits
from medtl_helpers.course.checks.common import call_answer, plain, require_answer
from medtl_helpers.course.checks.nb09_prototype_cases import (
    PRIOR_HINT,
    PROTOTYPE_CASES,
    centres,
    nearest,
    wrong_answers,
)
from medtl_helpers.course.watch import TamperingError

__all__ = ["check_prototype_classifier", "package_call"]

_FORBIDDEN = {"nearest_prototype": nearest_prototype, "prototype_logits": prototype_logits}


def _as_labels(got: object, n: int, name: str) -> np.ndarray:
    plain(got, f"the value {name} returned")
    array = np.asarray(got.detach() if isinstance(got, torch.Tensor) else got)
    if array.ndim == 2 and array.shape == (n, 2):
        raise AssertionError(
            f"{name} returned an array of shape {array.shape}: one score per label. Return the "
            "predicted label of each query image (argmax over the labels), shape (n_query,)."
        )
    if array.shape != (n,):
        raise AssertionError(
            f"{name} returned shape {array.shape}; expected ({n},): one label per query image"
        )
    return array.astype(np.int64)


def _prototype_hint(got: list, number: int) -> str:
    """The hint of the first known mistake that gives the answers in `got` (one per case, None
    where the answer raised) on every case, else `_unknown_hint`: an answer that matches a mistake
    on a few cases only is as likely another mistake that happens to agree there. The prior
    counts only on every case and with one weight throughout: with many weights it could mimic
    almost any answer on a few cases."""
    per_case = [
        wrong_answers(s.numpy().astype(np.float64), y.numpy(), q.numpy().astype(np.float64))
        for s, y, q in PROTOTYPE_CASES
    ]
    cases, mistakes = range(len(per_case)), range(len(per_case[0]))

    def same(c: int, answer: np.ndarray) -> bool:
        return got[c] is None or np.array_equal(got[c], answer)

    def gives(i: int, c: int) -> bool:
        return any(same(c, a) for a in per_case[c][i][0])

    def one_rule(i: int) -> bool:  # one position of the mistake's list on every case
        return any(
            all(same(c, per_case[c][i][0][j]) for c in cases) for j in range(len(per_case[0][i][0]))
        )

    strict = {i for i in mistakes if per_case[0][i][1] is PRIOR_HINT}
    everywhere = [
        i for i in mistakes if (one_rule(i) if i in strict else all(gives(i, c) for c in cases))
    ]
    if everywhere:
        return per_case[0][everywhere[0]][1]
    return _unknown_hint(got[number - 1], number)


def _unknown_hint(got: np.ndarray, number: int) -> str:
    """What the nearest class mean gives at the first query point of case `number` that `got`
    labels differently."""
    support, labels, query = (t.numpy().astype(np.float64) for t in PROTOTYPE_CASES[number - 1])
    means = centres(support, labels)
    first = int(np.flatnonzero(got != nearest(query, means))[0])
    squared = ((query[first] - means) ** 2).sum(axis=1)

    def point(x: np.ndarray) -> str:
        return "(" + ", ".join(f"{round(float(v), 4):g}" for v in x) + ")"

    return (
        f"it matches no mistake this checker knows. At the query point {point(query[first])} "
        f"your answer is {int(got[first])}; the class means are {point(means[0])} and "
        f"{point(means[1])}, at squared distances {squared[0]:.2f} and {squared[1]:.2f}, so the "
        f"nearest class mean gives {int(squared.argmin())}. Average the support features of each "
        "label, then give each query the label of the nearer mean"
    )


def _answers(classify: Callable) -> list:
    """`classify`'s labels on every case, None where it raised or gave the wrong shape."""
    out = []
    for support, labels, query in PROTOTYPE_CASES:
        try:
            got = classify(support.clone(), labels.clone(), query.clone())
            out.append(_as_labels(got, len(query), "classify"))
        except (NotImplementedError, TamperingError):
            raise
        except Exception:  # the failing case was answered; the others only help name a mistake
            out.append(None)
    return out


def _names(code: types.CodeType) -> set[str]:
    """The global, attribute and free-variable names `code` and the functions inside it use."""
    names = set(code.co_names) | set(code.co_freevars)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def package_call(answer: Callable, forbidden: dict[str, object]) -> str | None:
    """The name of the function of `forbidden` that `answer` is, or calls by name (a global, an
    attribute such as `episode.shared_patients`, or a closure variable), else None."""
    code = getattr(answer, "__code__", None)
    found = dict(getattr(answer, "__globals__", {}))
    for name, cell in zip(code.co_freevars, answer.__closure__ or ()) if code else ():
        found[name] = cell.cell_contents if cell != types.CellType() else None  # not yet assigned
    names = _names(code) if code else set()
    for name, function in forbidden.items():
        if answer is function or any(n == name or found.get(n) is function for n in names):
            return name
    return None


def check_prototype_classifier(classify: Callable) -> None:
    """`classify(support, labels, query)`: the label of the nearest (Euclidean) prototype."""
    require_answer(classify, "your classify")
    called = package_call(classify, _FORBIDDEN)
    if called is not None:
        raise AssertionError(
            f"classify calls the package's {called}: the exercise asks you to write the nearest "
            "prototype yourself. Take each label's mean support row, measure each query's "
            "distance to the two means, and return the label of the nearer one."
        )
    hint = "It takes support (n, d), labels (n,) and query (m, d) tensors; return m labels."
    for number, case in enumerate(PROTOTYPE_CASES, start=1):
        support, labels, query = case
        expected = prototype_logits(support, labels, query).argmax(dim=1).numpy()
        got = call_answer(
            classify, (support.clone(), labels.clone(), query.clone()), "classify(...)", hint
        )
        got = _as_labels(got, len(query), "classify")
        if not np.array_equal(got, expected):
            answers = _answers(classify)
            answers[number - 1] = got
            hint = _prototype_hint(answers, number)
            raise AssertionError(
                f"classify gave {got.tolist()} for the {len(query)} query points of the checker's "
                f"case {number}; expected {expected.tolist()}: {hint}."
            )
        swapped = call_answer(
            classify, (support.clone(), 1 - labels, query.clone()), "classify(...)", hint
        )
        swapped = _as_labels(swapped, len(query), "classify")
        if not np.array_equal(swapped, 1 - expected):
            raise AssertionError(
                "with the support labels swapped, classify should swap its answers too: a "
                "prototype classifier knows which label is which only from the support set. "
                "Don't fix a label to a class."
            )
    print(
        "Correct: the nearest class mean, and the answers follow the support labels when they "
        "are swapped. In the checker's 2-D cases a nearest single image or a vote of the three "
        "nearest, the mean of the distances to a class's images, the largest dot product or "
        "cosine with a mean, median prototypes or the centres of the classes' ranges, the L1 or "
        "L∞ distance, standardised features, a logistic regression, a cosine after subtracting "
        "the support's mean and a prior for the class sizes (unless its weight is tiny) would "
        "each have picked another class for some query point."
    )
