"""Checkers for the exercises of notebook 09 (few-shot adaptation and meta-learning).

Each checker runs the student's answer on cases where the reference answer is known and, at the
first difference, raises AssertionError with a sentence saying what differs and the likely cause.
On success it prints one sentence.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from medtl_helpers.adaptation import Episode, FeaturePool, prototype_logits, tied_best
from medtl_helpers.course.checks.common import call_answer, plain, require_answer

__all__ = ["check_episode_leak", "check_prototype_classifier", "check_tied_best"]

# Two cases of support points in 2-D. In the first the labels are not in blocks, class 0 has
# three points and class 1 one, and the nearest single support point of the first query belongs
# to class 0 while the nearest prototype is class 1's (so a nearest-neighbour answer shows). In
# the second, class 1's prototype is long and class 0's points along the first axis: the largest
# dot product with a mean and the largest cosine both disagree with the nearest mean.
SUPPORT = torch.tensor([[0.0, 0.0], [4.0, 4.0], [10.0, 0.0], [5.0, 0.0]])
LABELS = torch.tensor([0, 1, 0, 0])
QUERY = torch.tensor([[0.5, 3.0], [6.0, 1.0], [3.0, 5.0], [9.0, 0.5]])
SUPPORT_2 = torch.tensor([[1.0, 0.0], [1.4, 0.2], [5.0, 5.0], [4.0, 4.0]])
LABELS_2 = torch.tensor([0, 0, 1, 1])
QUERY_2 = torch.tensor([[2.0, 2.2], [1.5, 1.0], [0.3, 0.0], [3.0, 3.5]])
PROTOTYPE_CASES = ((SUPPORT, LABELS, QUERY), (SUPPORT_2, LABELS_2, QUERY_2))


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


def _nearest(query: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return ((query[:, None, :] - centres[None]) ** 2).sum(-1).argmin(axis=1)


def _prototype_hint(got: np.ndarray, case: tuple) -> str:
    support, labels, query = (t.numpy() for t in case)
    means = np.stack([support[labels == c].mean(0) for c in (0, 1)])
    n0 = int((labels == 0).sum())
    unit = means / np.linalg.norm(means, axis=1, keepdims=True)
    wrong = (
        (1 - _nearest(query, means), "every answer is the other label: take the argmin of the "
         "distance, not the argmax"),
        (labels[_nearest(query, support)], "that is the label of the nearest single support "
         "image (1-nearest neighbour). A prototype is the mean of a class's support features: "
         "compare with the means"),
        ((query @ means.T).argmax(axis=1), "that is the largest dot product with each mean. A dot "
         "product grows with the lengths of the vectors, so a long prototype wins even where it "
         "is far away: measure how far each query is from each mean"),
        ((query @ unit.T).argmax(axis=1), "that is the largest cosine similarity: it compares "
         "directions and ignores lengths, so a query pointing the way of a far prototype counts "
         "as near it. The exercise asks for the squared Euclidean distance"),
        (_nearest(query, means * np.bincount(labels)[:, None]), "the prototypes look like sums: "
         "the classes have different numbers of support images, so divide each class's sum by "
         "its count (mean over the class)"),
        (_nearest(query, np.stack([support[:n0].mean(0), support[n0:].mean(0)])), "the classes "
         "were taken as blocks of the support order; select each class's rows with the labels, "
         "the order is shuffled"),
    )  # fmt: skip
    for answer, hint in wrong:
        if np.array_equal(got, answer):
            return hint
    return "average the support features of each label, then give each query the nearest mean"


def check_prototype_classifier(classify: Callable) -> None:
    """`classify(support, labels, query)`: the label of the nearest (Euclidean) prototype."""
    require_answer(classify, "your classify")
    hint = "It takes support (n, d), labels (n,) and query (m, d) tensors; return m labels."
    for number, case in enumerate(PROTOTYPE_CASES, start=1):
        support, labels, query = case
        expected = prototype_logits(support, labels, query).argmax(dim=1).numpy()
        got = call_answer(
            classify, (support.clone(), labels.clone(), query.clone()), "classify(...)", hint
        )
        got = _as_labels(got, len(query), "classify")
        if not np.array_equal(got, expected):
            raise AssertionError(
                f"classify gave {got.tolist()} for the 4 query points of the checker's case "
                f"{number}; expected {expected.tolist()}: {_prototype_hint(got, case)}."
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
        "are swapped. In the checker's first 2-D case the first query point is nearest a class-0 "
        "image but nearest the class-1 prototype; in the second, the largest dot product or "
        "cosine with a mean would pick the other class."
    )


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
    ([0, 2, 6, 8], [3, 9, 4, 10], {"p1", "p4"}),
)


def check_episode_leak(shared_patients: Callable[[Episode, FeaturePool], object]) -> None:
    """`shared_patients(episode, pool)`: the set of patient ids in both support and query."""
    require_answer(shared_patients, "your shared_patients")
    pool = _leak_pool()
    for support, query, expected in LEAK_CASES:
        got = call_answer(
            shared_patients,
            (_episode(support, query), pool),
            "shared_patients(episode, pool)",
            "episode.support and episode.query are image indices into the pool; "
            "pool.patients[i] is the patient of image i.",
        )
        got = _names(got, "shared_patients", "the set of patient ids themselves (for example "
                     "{'p0'}), so that the leak can be named")  # fmt: skip
        if got == expected:
            continue
        call = f"support images {support}, query images {query}"
        if got and all(isinstance(g, (int, np.integer)) for g in got):
            raise AssertionError(f"{call}: return patient ids (pool.patients[i]), not indices")
        hint = (
            "no image is in both, but a patient is: compare pool.patients of the support "
            "images with those of the query images, not the image indices"
            if not got
            else f"expected {sorted(expected)}: the patients of the support images that also "
            "appear among the patients of the query images"
        )
        raise AssertionError(f"{call}: shared_patients gave {sorted(got)}; {hint}.")
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
    # bound, tied under >= but not under >; T is apart whatever the rule.
    _row("P", 0.80, 0.78, 0.82, k=2),
    _row("Q", 0.76, 0.60, 0.90, k=2),
    _row("R", 0.77, 0.74, 0.78, k=2),
    _row("S", 0.70, 0.65, 0.75, k=2),
    _row("T", 0.50, 0.45, 0.55, k=2),
]
# (K, {answer: why it is wrong}) for each cell the checker asks about, setting "val"
TIE_CELLS = (
    (
        1,
        {
            frozenset({"A"}): "only the best: keep every method whose interval reaches the best's",
            frozenset({"A", "B"}): "D is missing: compare each method's upper bound with the "
            "best's lower bound, not with the best's mean",
            frozenset({"A", "B", "C", "D"}): "C's upper bound (0.875) is below A's lower (0.88)",
        },
    ),
    (
        2,
        {
            frozenset({"P", "Q"}): "R's upper bound (0.78) equals P's lower bound (0.78): an "
            "interval that just reaches the best's cannot be told apart from it, so use >=, not >",
            frozenset({"P", "Q", "R", "S"}): "the best is the method with the highest MEAN (P, "
            "0.80), not the highest upper bound (Q, 0.90); compare with P's lower bound (0.78)",
        },
    ),
)


def check_tied_best(tied: Callable) -> None:
    """`tied(rows, setting, k)`: the methods whose intervals reach the best one's lower bound."""
    require_answer(tied, "your tied_best")
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
        hint = hints.get(
            frozenset(got),
            "take the rows of that setting and K, find the best mean, keep the "
            "methods whose upper bound is at least its lower bound",
        )
        if any(r["method"] in got and (r["setting"], r["K"]) != ("val", k) for r in TIE_ROWS):
            hint = "select the rows of the setting and K asked for first"
        raise AssertionError(f"{call} gave {sorted(got)}; expected {sorted(expected)}: {hint}.")
    print(
        "Correct: in the checker's made-up rows, ['A', 'B', 'D'] cannot be told apart at K = 1; "
        "C's interval stops below A's and D's reaches it though D's mean is lower. At K = 2 the "
        "best is the highest mean, and an interval that just touches its lower bound counts."
    )
