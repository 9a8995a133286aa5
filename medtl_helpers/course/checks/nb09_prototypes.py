"""The checker of notebook 09's first exercise: a nearest-prototype classifier written by hand.

The answer is the label of the nearest class mean by (squared) Euclidean distance; an answer that
calls `nearest_prototype` or `prototype_logits` is refused. Five small 2-D cases tell it apart
from the answers that look alike: the nearest single support image, the largest dot product or
cosine with a mean, sums instead of means, classes taken as blocks of the support order, median
prototypes, the L1 or L∞ distance, standardised features, a logistic regression fit on the
support, a cosine after subtracting the support's mean, and a prior for the class sizes added to
the score (with any weight, or with the distances divided by a variance). At the first case an
answer gets wrong, the message names the mistake it reproduces on every case (or on that case).
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from medtl_helpers.adaptation import nearest_prototype, prototype_logits
from medtl_helpers.course.checks.common import call_answer, plain, require_answer
from medtl_helpers.course.watch import TamperingError

__all__ = ["check_prototype_classifier"]

# Case 1: the labels are not in blocks, class 0 has three points and class 1 one, and the nearest
# single support point of the first query belongs to class 0 while the nearest prototype is class
# 1's (so a nearest-neighbour answer shows). Case 2: class 1's prototype is long and class 0's
# points lie along the first axis: the largest dot product with a mean and the largest cosine
# both disagree with the nearest mean. Case 3: class 0's point (7, 3) pulls its mean to (2.33, 2)
# while its median stays at (0, 2); class 1's points spread along the second axis, class 0's
# along the first, so dividing each axis by its spread moves the boundary; the query (4.5, 4) is
# nearer class 0's mean but not by the L1 distance, (1, 9.5) likewise by the L∞ distance; and
# (4.5, 7), nearer class 1's mean, lies on class 0's side of a logistic regression's boundary.
# Case 4: four images of class 0 (mean (1, 1)) and one of class 1 at (5, 1), so the support's mean
# (1.8, 1) is not halfway between the class means (x = 3): a cosine after subtracting it puts
# (2.4, 2) and (2.85, 1) in class 1. (3.15, 0.3) is nearer class 1's mean by a squared distance of
# 1.2, less than log(4/1), and goes to class 0 when the log of each class's share is added;
# (2.85, 1), nearer class 0's by as much, goes to class 1 when it is taken away. Case 5: one image
# of class 0 against five of class 1, each query 0.0005 from the midline x = 3 (squared distances
# 0.004 apart): adding w·log(5) for class 1, with any w above 0.0025 and d² scaled or not, moves
# the queries nearer class 0 to class 1 (taking it away moves the others to class 0).
SUPPORT = torch.tensor([[0.0, 0.0], [4.0, 4.0], [10.0, 0.0], [5.0, 0.0]])
LABELS = torch.tensor([0, 1, 0, 0])
QUERY = torch.tensor([[0.5, 3.0], [6.0, 1.0], [3.0, 5.0], [9.0, 0.5]])
SUPPORT_2 = torch.tensor([[1.0, 0.0], [1.4, 0.2], [5.0, 5.0], [4.0, 4.0]])
LABELS_2 = torch.tensor([0, 0, 1, 1])
QUERY_2 = torch.tensor([[2.0, 2.2], [1.5, 1.0], [0.3, 0.0], [3.0, 3.5]])
SUPPORT_3 = torch.tensor([[8.0, 7.0], [8.0, 1.0], [0.0, 2.0], [0.0, 1.0], [7.0, 3.0], [8.0, 4.0]])
LABELS_3 = torch.tensor([1, 1, 0, 0, 0, 1])
QUERY_3 = torch.tensor(
    [[3.5, 6.0], [4.5, 4.0], [4.5, 7.0], [0.5, 2.5], [1.0, 9.5], [9.5, 7.0], [2.5, 7.0]]
)
SUPPORT_4 = torch.tensor([[0.0, 1.0], [5.0, 1.0], [2.0, 1.0], [1.0, 0.0], [1.0, 2.0]])
LABELS_4 = torch.tensor([0, 1, 0, 0, 0])
QUERY_4 = torch.tensor([[2.4, 2.0], [3.15, 0.3], [4.5, 2.5], [0.5, 0.5], [2.85, 1.0]])
SUPPORT_5 = torch.tensor([[1.0, 3.0], [5.0, 4.0], [5.0, 2.0], [4.0, 3.0], [6.0, 3.0], [5.0, 3.0]])
LABELS_5 = torch.tensor([0, 1, 1, 1, 1, 1])
QUERY_5 = torch.tensor([[2.9995, 3.0], [3.0005, 2.5], [2.9995, 4.2], [3.0005, 3.8], [2.9995, 1.9]])
PROTOTYPE_CASES = (
    (SUPPORT, LABELS, QUERY),
    (SUPPORT_2, LABELS_2, QUERY_2),
    (SUPPORT_3, LABELS_3, QUERY_3),
    (SUPPORT_4, LABELS_4, QUERY_4),
    (SUPPORT_5, LABELS_5, QUERY_5),
)
PRIOR_WEIGHTS = np.geomspace(1e-3, 1e2, 41)  # the weight of the prior, from negligible to ruling
_FORBIDDEN = {"nearest_prototype": nearest_prototype, "prototype_logits": prototype_logits}
_MEAN_IS = "A prototype is the mean of a class's support features"


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


def _centres(x: np.ndarray, labels: np.ndarray, reduce=np.mean) -> np.ndarray:
    return np.stack([reduce(x[labels == c], axis=0) for c in (0, 1)])


def _nearest(query: np.ndarray, centres: np.ndarray, norm: float = 2) -> np.ndarray:
    return np.linalg.norm(query[:, None, :] - centres[None], ord=norm, axis=-1).argmin(axis=1)


def _lower_median(x: np.ndarray, axis: int) -> np.ndarray:
    return np.sort(x, axis=axis)[(len(x) - 1) // 2]  # torch.median's choice for an even count


def _standardised(support, labels, query, rows, ddof: int) -> np.ndarray:
    mean, spread = rows.mean(axis=0), rows.std(axis=0, ddof=ddof)
    return _nearest((query - mean) / spread, _centres((support - mean) / spread, labels))


def _logistic(support, labels, query, c: float) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a separable support set: the weights grow
        return LogisticRegression(C=c, max_iter=10_000).fit(support, labels).predict(query)


def _centred_cosine(support, labels, query, centre) -> np.ndarray:
    means = _centres(support - centre, labels)
    shifted = query - centre
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = (shifted @ means.T) / np.linalg.norm(shifted, axis=1, keepdims=True)
        return (cosine / np.linalg.norm(means, axis=1)).argmax(axis=1)


def _with_prior(support, labels, query) -> list[np.ndarray]:
    """Nearest mean with w times the log of each class's share of the support added to (or
    taken from) the score, for a range of weights w (a scaled distance, such as d²/2σ², is d² with
    another weight)."""
    distance = np.linalg.norm(query[:, None, :] - _centres(support, labels)[None], axis=-1)
    prior = np.log(np.bincount(labels, minlength=2) / len(labels))
    return [
        (sign * w * prior - score).argmax(axis=1)
        for score in (distance**2, distance)
        for sign in (1, -1)
        for w in PRIOR_WEIGHTS
    ]


def _wrong_answers(support: np.ndarray, labels: np.ndarray, query: np.ndarray) -> list:
    """(answers, hint) for each known mistake, the answers each gives on this case."""
    means = _centres(support, labels)
    blocks = [  # the first h rows taken as class 0, wherever the split
        _nearest(query, np.stack([support[:h].mean(0), support[h:].mean(0)]))
        for h in range(1, len(support))
    ]
    unit = means / np.linalg.norm(means, axis=1, keepdims=True)
    medians = [_centres(support, labels, reduce) for reduce in (np.median, _lower_median)]
    both = np.concatenate([support, query])
    scaled = [
        _standardised(support, labels, query, rows, d) for rows in (support, both) for d in (0, 1)
    ]
    return [
        ([1 - _nearest(query, means)], "every answer is the other label: take the argmin of the "
         "distance, not the argmax"),
        ([labels[_nearest(query, support)]], "that is the label of the nearest single support "
         f"image (1-nearest neighbour). {_MEAN_IS}: compare with the means"),
        ([(query @ means.T).argmax(axis=1)], "that is the largest dot product with each mean. A "
         "dot product grows with the lengths of the vectors, so a long prototype wins even where "
         "it is far away: measure how far each query is from each mean"),
        ([(query @ unit.T).argmax(axis=1)], "that is the largest cosine similarity: it compares "
         "directions and ignores lengths, so a query pointing the way of a far prototype counts "
         "as near it. The exercise asks for the squared Euclidean distance"),
        ([_nearest(query, means * np.bincount(labels)[:, None] / d) for d in (1, len(labels))],
         "the prototypes look like sums (or sums divided by the size of the whole support): the "
         "classes have different numbers of support images, so divide each class's sum by its "
         "own count (mean over the class)"),
        (blocks, "the classes "
         "were taken as blocks of the support order; select each class's rows with the labels, "
         "the order is shuffled"),
        ([_nearest(query, m) for m in medians], "the prototypes look like medians. " + _MEAN_IS
         + " (.mean(dim=0)): a median ignores how far an outlying image lies, a mean does not"),
        ([_nearest(query, means, 1)], "that is the nearest mean by the L1 (city-block) distance, "
         "the sum of the absolute differences. Use the Euclidean distance: the square root of the "
         "sum of the squared differences (torch.cdist's default, p=2), or its square"),
        ([_nearest(query, means, np.inf)], "that is the nearest mean by the L∞ (Chebyshev) "
         "distance, the largest absolute difference. Use the Euclidean distance (torch.cdist's "
         "default, p=2), or its square"),
        (scaled, "the features look standardised (each axis divided by its spread) before the "
         "distances were taken: that stretches one axis against the other and moves the boundary. "
         "Measure the distances on the features as they are given"),
        ([_logistic(support, labels, query, c) for c in (1.0, 1e4)], "that is what a logistic "
         "regression fit on the support answers: it learns a boundary of its own (weights, an "
         "intercept, a penalty), not the one halfway between the two means. Compute the means and "
         "each query's distance to them; nothing is trained"),
        ([_centred_cosine(support, labels, query, rows.mean(axis=0)) for rows in (support, both)],
         "that is a cosine after subtracting the mean of all the support (or of all the points). "
         "With classes of different sizes that mean lies nearer the larger class's mean, not "
         "halfway between the two, so the boundary moves towards the larger class. Subtract "
         "nothing: take each query's squared Euclidean distance to each class mean"),
        (_with_prior(support, labels, query), "that adds a term for the class sizes to the score "
         "(the log of each class's share of the support, or minus it, with any weight, also when "
         "the distances are divided by a variance): a query a little nearer one class's mean goes "
         "to the other. The nearest prototype uses the distances alone: the "
         "class with the nearest mean wins, however many support images it has"),
    ]  # fmt: skip


def _prototype_hint(got: list, number: int) -> str:
    """The hint of the first known mistake that gives the answers in `got` (one per case, None
    where the answer raised) on every case; else of the first that gives them on case `number`
    and on every case where it differs from the right answer; else a plain hint."""
    per_case = [
        _wrong_answers(s.numpy().astype(np.float64), y.numpy(), q.numpy().astype(np.float64))
        for s, y, q in PROTOTYPE_CASES
    ]
    right = [prototype_logits(*case).argmax(dim=1).numpy() for case in PROTOTYPE_CASES]

    def gives(i: int, c: int) -> bool:
        return got[c] is None or any(np.array_equal(got[c], a) for a in per_case[c][i][0])

    def silent(i: int, c: int) -> bool:  # the mistake changes no answer on case c
        return all(np.array_equal(a, right[c]) for a in per_case[c][i][0])

    cases, mistakes = range(len(per_case)), range(len(per_case[0]))
    everywhere = [i for i in mistakes if all(gives(i, c) for c in cases)]
    wherever_wrong = [
        i
        for i in mistakes
        if gives(i, number - 1) and all(gives(i, c) or silent(i, c) for c in cases)
    ]
    if everywhere or wherever_wrong:
        return per_case[0][(everywhere or wherever_wrong)[0]][1]
    return "average the support features of each label, then give each query the nearest mean"


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


def _package_call(classify: Callable) -> str | None:
    """The package function `classify` is or calls (by name, global or closure), else None."""
    code = getattr(classify, "__code__", None)
    found = dict(getattr(classify, "__globals__", {}), classify=classify)
    for name, cell in zip(code.co_freevars, classify.__closure__ or ()) if code else ():
        found[name] = cell.cell_contents if cell != types.CellType() else None  # not yet assigned
    names = {"classify"} | (_names(code) if code else set())
    for forbidden, function in _FORBIDDEN.items():
        if any(name == forbidden or found.get(name) is function for name in names):
            return forbidden
    return None


def check_prototype_classifier(classify: Callable) -> None:
    """`classify(support, labels, query)`: the label of the nearest (Euclidean) prototype."""
    require_answer(classify, "your classify")
    called = _package_call(classify)
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
        "are swapped. In the checker's 2-D cases a nearest single image, the largest dot product "
        "or cosine with a mean, median prototypes, the L1 or L∞ distance, standardised features, "
        "a logistic regression, a cosine after subtracting the support's mean and a prior for the "
        "class sizes (with any weight) would each have picked another class for some query point."
    )
