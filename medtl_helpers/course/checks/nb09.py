"""Checkers for the exercises of notebook 09 (few-shot adaptation and meta-learning).

Each checker runs the student's answer on cases where the reference answer is known and, at the
first difference, raises AssertionError with a sentence saying what differs and the likely cause.
On success it prints one sentence. The first exercise's checker lives in nb09_prototypes.py.
Each exercise asks the student to write the function, so an answer that is or calls the package's
own (`Episode.shared_patients`, `tied_best`, `paired_tied_best`) is refused, as in the first.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from medtl_helpers.adaptation import Episode, FeaturePool, tied_best
from medtl_helpers.adaptation.few_shot import paired_tied_best
from medtl_helpers.course.checks.common import call_answer, plain, require_answer
from medtl_helpers.course.checks.nb09_prototypes import check_prototype_classifier, package_call

__all__ = ["check_episode_leak", "check_prototype_classifier", "check_tied_best"]


def _leak_pool() -> FeaturePool:
    """Six patients with two images each: p0-p2 NORMAL, p3-p5 PNEUMONIA."""
    patients = [f"p{i // 2}" for i in range(12)]
    labels = np.array([0] * 6 + [1] * 6)
    return FeaturePool("checker", torch.zeros(12, 1), labels, patients)


def _episode(support: list[int], query: list[int]) -> Episode:
    labels = np.array([0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0])  # any: the labels are not looked at
    return Episode(
        "checker",
        np.array(support),
        labels[: len(support)],
        np.array(query),
        labels[: len(query)],
        np.array([0, 1]),
    )


LEAK_CASES = (
    ([0, 6], [2, 8], set()),  # patients p0, p3 | p1, p4
    ([0, 6], [1, 8], {"p0"}),  # image 1 is p0's second film
    ([0, 2, 6, 8], [3, 9, 4, 10], {"p1", "p4"}),  # never at the same position on both sides
    ([0, 2, 6, 8], [3, 10, 4, 9], {"p1", "p4"}),  # p4's query image comes last
    ([0, 6], [2, 4, 8, 7], {"p3"}),  # a longer query: p3's image is its 4th
    ([0, 2, 6, 9], [4, 8], {"p4"}),  # a longer support: p4's image is its 4th
)
_BY_POSITION = (
    "{n} {longer} images and {m} {shorter} ones here, and {who}'s {longer} image is the 4th: go "
    "over every {longer} image, not range(len(episode.{shorter})) or zip(support, query), which "
    "stop at the shorter list"
)
# {case number: {a wrong answer: the mistake that gives it there, the cases before passed}}
LEAK_HINTS = {
    1: {
        frozenset({"p0", "p3"}): "that is every support patient: keep only those that also have "
        "an image in the query",
        frozenset({"p1", "p4"}): "that is every query patient: keep only those that also have "
        "an image in the support",
        frozenset({"p0", "p1", "p3", "p4"}): "that is every patient on either side (a union, |): "
        "a leak is a patient on both sides (an intersection, &)",
    },
    2: {
        frozenset(): "no image is in both, but a patient is: image 1 is p0's second film, and p0 "
        "is in the support. Compare pool.patients of the images, not the image indices",
    },
    3: {
        frozenset(): "p1 and p4 are on both sides, but never at the same position: compare "
        "pool.patients of every support image with those of every query image, and not pair by "
        "pair (zip)",
    },
    5: {frozenset(): _BY_POSITION.format(n=4, m=2, longer="query", shorter="support", who="p3")},
    6: {frozenset(): _BY_POSITION.format(n=4, m=2, longer="support", shorter="query", who="p4")},
}


def check_episode_leak(shared_patients: Callable[[Episode, FeaturePool], object]) -> None:
    """`shared_patients(episode, pool)`: the set of patient ids in both support and query."""
    require_answer(shared_patients, "your shared_patients")
    if package_call(shared_patients, {"shared_patients": Episode.shared_patients}):
        raise AssertionError(
            "shared_patients calls the package's Episode.shared_patients: the exercise asks you "
            "to write it yourself. Collect pool.patients of the support images and of the query "
            "images, and return the patients in both."
        )
    pool = _leak_pool()
    for number, (support, query, expected) in enumerate(LEAK_CASES, start=1):
        got = call_answer(
            shared_patients,
            (_episode(support, query), pool),
            "shared_patients(episode, pool)",
            "episode.support and episode.query are image indices into the pool, and their lengths "
            "can differ; pool.patients[i] is the patient of image i.",
        )
        got = _names(got, "shared_patients", "the set of patient ids themselves (for example "
                     "{'p0'}), so that the leak can be named")  # fmt: skip
        if got == expected:
            continue
        call = f"support images {support}, query images {query}"
        if got and all(isinstance(g, (int, np.integer)) for g in got):
            raise AssertionError(f"{call}: return patient ids (pool.patients[i]), not indices")
        if frozenset(got) in LEAK_HINTS.get(number, {}):
            hint = LEAK_HINTS[number][frozenset(got)]
        elif not got:
            hint = "compare pool.patients of every support image with those of every query image"
        elif got < expected:
            hint = (
                f"{sorted(expected - got)} is missing. Look at every support image and every "
                "query image, not only the first ones, and compare each support patient with all "
                "the query patients"
            )
        else:
            hint = (
                "the patients of the support images that also appear among the patients of the "
                "query images"
            )
        raise AssertionError(
            f"{call}: shared_patients gave {sorted(got)}; expected {sorted(expected)}: {hint}."
        )
    print(
        "Correct: the leak is a patient, not an image: two films of one child are different "
        "images, and a sampler drawing images instead of patients puts them on both sides."
    )


def _names(got: object, name: str, what: str) -> set:
    """The set of the names `got` holds (a set, list, tuple or Series); else AssertionError."""
    plain(got, f"the value {name} returned")
    if got is None or isinstance(got, (str, bool, int, float, np.number)):
        raise AssertionError(
            f"{name} returned {got!r}"
            + (": did you forget the `return` statement?" if got is None else "")
            + f"; return {what}"
        )
    try:
        return plain(set(got), f"the value {name} returned")
    except TypeError as err:
        raise AssertionError(f"{name} returned a {type(got).__name__}; return {what}") from err


def _row(method: str, mean: float, low: float, high: float, setting: str = "val", k: int = 1):
    return {
        "setting": setting,
        "K": k,
        "method": method,
        "accuracy": mean,
        "accuracy_low": low,
        "accuracy_high": high,
    }


TIE_ROWS = [
    _row("A", 0.90, 0.88, 0.92),
    _row("B", 0.89, 0.86, 0.91),  # overlaps A
    _row("C", 0.84, 0.80, 0.875),  # just below A's low: apart
    _row("D", 0.86, 0.75, 0.885),  # reaches A's low but not A's mean
    _row("E", 0.95, 0.94, 0.96, k=5),  # another K: must be left out
    _row("F", 0.99, 0.98, 1.00, setting="other"),  # another setting: must be left out
    # K = 2: P has the best mean; Q the widest interval and the highest upper bound, so "best by
    # upper bound" takes Q and its low 0.60 (S comes in); R's upper bound is exactly P's lower
    # bound, tied under >= but not under >; T is apart whatever the rule. N's interval overlaps
    # P's, yet the gap of the means (0.045) exceeds √(0.02² + 0.035²) ≈ 0.040: an unpaired test of
    # the difference drops it (and R).
    _row("P", 0.80, 0.78, 0.82, k=2),
    _row("Q", 0.76, 0.60, 0.90, k=2),
    _row("R", 0.77, 0.74, 0.78, k=2),
    _row("N", 0.755, 0.72, 0.79, k=2),
    _row("S", 0.70, 0.65, 0.75, k=2),
    _row("T", 0.50, 0.45, 0.55, k=2),
    # K = 3: U has the best mean and a wide interval, V the highest lower bound (0.76), so "best
    # by lower bound" compares with 0.76 and drops X and Z. W, X and Z are more than 0.05 below
    # U's mean, yet their upper bounds reach U's lower bound (0.70): "within 0.05 of the best
    # mean" drops them (a wider margin already fails at K = 1, on C). Y is apart whatever the rule.
    _row("U", 0.80, 0.70, 0.90, k=3),
    _row("V", 0.78, 0.76, 0.80, k=3),
    _row("W", 0.74, 0.72, 0.76, k=3),
    _row("X", 0.70, 0.66, 0.73, k=3),
    _row("Y", 0.60, 0.55, 0.65, k=3),
    _row("Z", 0.55, 0.40, 0.71, k=3),
    # K = 4: the best mean (H) is not the first row listed, so "the first row is the best" compares
    # with G's lower bound (0.66) and keeps G; J is apart whatever the rule.
    _row("G", 0.70, 0.66, 0.74, k=4),
    _row("H", 0.85, 0.82, 0.88, k=4),
    _row("I", 0.80, 0.76, 0.83, k=4),
    _row("J", 0.60, 0.55, 0.65, k=4),
]
# (K, {answer: why it is wrong}) for each cell the checker asks about, setting "val"
TIE_CELLS = (
    (
        1,
        {
            frozenset({"A"}): "only the best: keep every method whose interval reaches the best's. "
            "B's upper bound (0.91) and D's (0.885) reach A's lower bound (0.88); compare each "
            "method's upper bound, not its lower bound, with the best's lower bound",
            frozenset({"A", "B"}): "D is missing: its upper bound (0.885) reaches A's lower bound "
            "(0.88), though its mean (0.86) does not and A's mean (0.90) lies above it. Compare "
            "each method's upper bound with the best's lower bound, not a mean with a bound",
            frozenset({"A", "B", "C", "D"}): "C is kept, yet its upper bound (0.875) is below the "
            "lower bound (0.88) of A, the highest mean. Keep a method only where its upper bound "
            "reaches the best's lower bound: the whole cell, a margin on the means, or another "
            "row taken as the best lets C in",
        },
    ),
    (
        2,
        {
            frozenset({"P", "Q", "N"}): "R's upper bound (0.78) equals P's lower bound (0.78): an "
            "interval that just reaches the best's cannot be told apart from it, so use >=, not >",
            frozenset(
                {"P", "Q", "R", "S", "N"}
            ): "the best is the method with the highest MEAN (P, "
            "0.80), not the highest upper bound (Q, 0.90); compare with P's lower bound (0.78)",
        },
    ),
    (
        3,
        {
            frozenset({"U", "V", "W"}): "the best is the method with the highest MEAN (U, 0.80), "
            "not the highest lower bound (V, 0.76); compare every upper bound with U's lower "
            "bound (0.70)",
            frozenset({"U", "V"}): "a tie is read from the intervals, not from how close the "
            "means are: W, X and Z have means far below U's, but their upper bounds reach U's "
            "lower bound (0.70)",
        },
    ),
    (
        4,
        {
            frozenset({"G", "H", "I"}): "the best is the row with the highest mean (H, 0.85) "
            "wherever it is listed, not the first row of the cell (G, 0.70): the rows come in no "
            "order. G's upper bound (0.74) is below H's lower bound (0.82)",
        },
    ),
)


def _missing_hint(got: set, expected: set, k: int) -> str:
    """The hint for an answer that keeps the best and leaves out some tied methods."""
    if not (got < expected and tied_best(TIE_ROWS, "val", k)[0] in got):
        return (
            "take the rows of that setting and K, find the best mean, keep the methods whose "
            "upper bound is at least its lower bound"
        )
    cell = {r["method"]: r for r in TIE_ROWS if (r["setting"], r["K"]) == ("val", k)}
    best = cell[tied_best(TIE_ROWS, "val", k)[0]]
    missing = sorted(expected - got)
    bounds = " and ".join(f"{m}'s upper bound ({cell[m]['accuracy_high']:.2f})" for m in missing)
    return (
        f"{bounds} {'reaches' if len(missing) == 1 else 'reach'} {best['method']}'s lower bound "
        f"({best['accuracy_low']:.2f}), so the intervals overlap. The rule reads that overlap, "
        "not a test of the difference of the means (such as the gap against √(h_best² + h²)): "
        "keep every method whose upper bound is at least the best's lower bound"
    )


def check_tied_best(tied: Callable) -> None:
    """`tied(rows, setting, k)`: the methods whose intervals reach the best one's lower bound."""
    require_answer(tied, "your tied_best")
    called = package_call(tied, {"tied_best": tied_best, "paired_tied_best": paired_tied_best})
    if called is not None:
        raise AssertionError(
            f"tied_best calls the package's {called}: the exercise asks you to write the rule "
            "yourself. Keep the rows of the setting and K, find the one with the best mean, and "
            "return the methods whose upper bound is at least its lower bound."
        )
    for k, hints in TIE_CELLS:
        call = f"tied_best(rows, 'val', {k})"
        got = call_answer(
            tied,
            ([dict(r) for r in TIE_ROWS], "val", k),
            call,
            "rows is a list of dicts with the keys setting, K, method, accuracy, accuracy_low "
            "and accuracy_high.",
        )
        got = _names(got, "tied_best", "a list of method names, e.g. ['A', 'B']")
        expected = set(tied_best(TIE_ROWS, "val", k))
        if got == expected:
            continue
        hint = hints.get(frozenset(got)) or _missing_hint(got, expected, k)
        if any(r["method"] in got and (r["setting"], r["K"]) != ("val", k) for r in TIE_ROWS):
            hint = "select the rows of the setting and K asked for first"
        raise AssertionError(f"{call} gave {sorted(got)}; expected {sorted(expected)}: {hint}.")
    print(
        "Correct: in the checker's made-up rows, ['A', 'B', 'D'] cannot be told apart at K = 1; "
        "C's interval stops below A's and D's reaches it though D's mean is lower. At K = 2 the "
        "best is the highest mean, and an interval that just touches its lower bound counts. At "
        "K = 3 the best is still the highest mean, not the highest lower bound, and a mean far "
        "below the best's is tied when its interval reaches the best's lower bound. At K = 4 the "
        "best is not the first row listed."
    )
