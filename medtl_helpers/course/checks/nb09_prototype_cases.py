"""The 2-D cases of notebook 09's prototype checker (`nb09_prototypes`), why each is there, and
the known mistakes with what each answers on a case.

Each case is (support, labels, query). The right answer is the label of the nearest class mean;
every case is built so that some answers that look like it give another label somewhere.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

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
# 0.004 apart): adding w·log(5) for class 1, with w above 0.0025 and d² scaled or not, moves the
# queries nearer class 0 to class 1 (taking it away moves the others to class 0); a smaller w
# changes no answer there. Case 6: class 0's three points are uneven along the first axis, (0, 0),
# (1, 0) and (6, 0): their mean is (2.33, 0) but the centre of their range, (max + min) / 2, is
# (3, 0). Class 1's mean and range centre are both (8, 0), so the boundary moves from x = 5.17
# (means) to x = 5.5 (range centres), and (5.3, 0.5), nearer class 1's mean, goes to class 0.
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
SUPPORT_6 = torch.tensor([[8.0, 1.0], [0.0, 0.0], [6.0, 0.0], [8.0, -1.0], [1.0, 0.0]])
LABELS_6 = torch.tensor([1, 0, 0, 1, 0])
QUERY_6 = torch.tensor([[5.3, 0.5], [4.0, 2.0], [7.0, 0.0], [1.0, 1.0]])
PROTOTYPE_CASES = (
    (SUPPORT, LABELS, QUERY),
    (SUPPORT_2, LABELS_2, QUERY_2),
    (SUPPORT_3, LABELS_3, QUERY_3),
    (SUPPORT_4, LABELS_4, QUERY_4),
    (SUPPORT_5, LABELS_5, QUERY_5),
    (SUPPORT_6, LABELS_6, QUERY_6),
)
PRIOR_WEIGHTS = np.geomspace(1e-3, 1e2, 41)  # the weight of the prior, from negligible to ruling
_MEAN_IS = "A prototype is the mean of a class's support features"


def centres(x: np.ndarray, labels: np.ndarray, reduce=np.mean) -> np.ndarray:
    return np.stack([reduce(x[labels == c], axis=0) for c in (0, 1)])


def nearest(query: np.ndarray, centres: np.ndarray, norm: float = 2) -> np.ndarray:
    return np.linalg.norm(query[:, None, :] - centres[None], ord=norm, axis=-1).argmin(axis=1)


def _lower_median(x: np.ndarray, axis: int) -> np.ndarray:
    return np.sort(x, axis=axis)[(len(x) - 1) // 2]  # torch.median's choice for an even count


def _standardised(support, labels, query, rows, ddof: int) -> np.ndarray:
    mean, spread = rows.mean(axis=0), rows.std(axis=0, ddof=ddof)
    return nearest((query - mean) / spread, centres((support - mean) / spread, labels))


def _logistic(support, labels, query, c: float) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a separable support set: the weights grow
        return LogisticRegression(C=c, max_iter=10_000).fit(support, labels).predict(query)


def _centred_cosine(support, labels, query, centre) -> np.ndarray:
    means = centres(support - centre, labels)
    shifted = query - centre
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = (shifted @ means.T) / np.linalg.norm(shifted, axis=1, keepdims=True)
        return (cosine / np.linalg.norm(means, axis=1)).argmax(axis=1)


def _with_prior(support, labels, query) -> list[np.ndarray]:
    """Nearest mean with w times the log of each class's share of the support added to (or
    taken from) the score: one answer per weight w of `PRIOR_WEIGHTS`, then w = 2σ² for the pooled
    within-class variance σ² (unbiased, then biased), which is d²/2σ² - log share scaled. The list
    is in the same order on every case, so a rule is one position in it."""
    means = centres(support, labels)
    distance = np.linalg.norm(query[:, None, :] - means[None], axis=-1)
    prior = np.log(np.bincount(labels, minlength=2) / len(labels))
    squares = ((support - means[labels]) ** 2).sum()
    variances = [squares / (support.size - 2 * support.shape[1]), squares / support.size]
    return [
        (sign * w * prior - score).argmax(axis=1)
        for score in (distance**2, distance)
        for sign in (1, -1)
        for w in [*PRIOR_WEIGHTS, *(2 * v for v in variances)]
    ]


def _mean_gaps(support, labels, query) -> list[np.ndarray]:
    """The class whose support images are nearest on average (plain, then squared distances)."""
    gaps = np.linalg.norm(query[:, None, :] - support[None], axis=-1)
    return [
        np.stack([(gaps[:, labels == c] ** p).mean(1) for c in (0, 1)], 1).argmin(1) for p in (1, 2)
    ]


def _midranges(x: np.ndarray, axis: int) -> np.ndarray:
    return (x.max(axis=axis) + x.min(axis=axis)) / 2


def _neighbour_mistakes(support: np.ndarray, labels: np.ndarray, query: np.ndarray) -> list:
    """(answers, hint) for the mistakes that compare a query with single support images, or take
    the farther mean."""
    order = np.argsort(np.linalg.norm(query[:, None] - support[None], axis=-1), 1, kind="stable")
    return [
        ([1 - nearest(query, centres(support, labels))], "every answer is the other label: take "
         "the argmin of the distance, not the argmax, and stack the class means in label order "
         "(label 0's first)"),
        ([labels[order[:, 0]]], "that is the label of the nearest single support "
         f"image (1-nearest neighbour). {_MEAN_IS}: compare with the means"),
        ([(labels[order[:, :3]].mean(axis=1) > 0.5).astype(np.int64)], "that is a vote "
         "of the three nearest support images (k-nearest neighbours, k = 3). " + _MEAN_IS
         + ": compare each query with the two class means, not with single images"),
        (_mean_gaps(support, labels, query), "that is the mean of the distances from a query to "
         "each support image of a class, not the distance to the class mean. The mean squared "
         "distance to a class's images is the squared distance to their mean plus the class's "
         "spread (the mean squared distance of its images from their mean), so a spread-out "
         "class looks farther away. Average the support features first, then take one distance "
         "per class"),
    ]  # fmt: skip


def wrong_answers(support: np.ndarray, labels: np.ndarray, query: np.ndarray) -> list:
    """(answers, hint) for each known mistake, the answers each gives on this case."""
    means = centres(support, labels)
    blocks = [  # the first h rows taken as class 0, wherever the split
        nearest(query, np.stack([support[:h].mean(0), support[h:].mean(0)]))
        for h in range(1, len(support))
    ]
    unit = means / np.linalg.norm(means, axis=1, keepdims=True)
    medians = [centres(support, labels, reduce) for reduce in (np.median, _lower_median)]
    both = np.concatenate([support, query])
    scaled = [
        _standardised(support, labels, query, rows, d) for rows in (support, both) for d in (0, 1)
    ]
    return _neighbour_mistakes(support, labels, query) + [
        ([(query @ means.T).argmax(axis=1)], "that is the largest dot product with each mean. A "
         "dot product grows with the lengths of the vectors, so a long prototype wins even where "
         "it is far away: measure how far each query is from each mean"),
        ([(query @ unit.T).argmax(axis=1)], "that is the largest cosine similarity: it compares "
         "directions and ignores lengths, so a query pointing the way of a far prototype counts "
         "as near it. The exercise asks for the squared Euclidean distance"),
        ([nearest(query, means * np.bincount(labels)[:, None] / d) for d in (1, len(labels))],
         "the prototypes look like sums (or sums divided by the size of the whole support): the "
         "classes have different numbers of support images, so divide each class's sum by its "
         "own count (mean over the class)"),
        (blocks, "the classes "
         "were taken as blocks of the support order; select each class's rows with the labels, "
         "the order is shuffled"),
        ([nearest(query, m) for m in medians], "the prototypes look like medians (or another "
         "centre that discounts an outlying image). " + _MEAN_IS
         + " (.mean(dim=0)): a median ignores how far an outlying image lies, a mean does not"),
        ([nearest(query, centres(support, labels, _midranges))], "the prototypes look like "
         "the centre of each class's range, (max + min) / 2, which only the extreme images of each "
         "axis decide. " + _MEAN_IS + " (.mean(dim=0)): every image counts"),
        ([nearest(query, means, 1)], "that is the nearest mean by the L1 (city-block) distance, "
         "the sum of the absolute differences. Use the Euclidean distance: the square root of the "
         "sum of the squared differences (torch.cdist's default, p=2), or its square"),
        ([nearest(query, means, np.inf)], "that is the nearest mean by the L∞ (Chebyshev) "
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
        (_with_prior(support, labels, query), PRIOR_HINT),
    ]  # fmt: skip


PRIOR_HINT = (
    "that adds a term for the class sizes to the score (the log of each class's share of the "
    "support, or minus it, with one weight on every case, also when the distances are divided by "
    "a variance): a query a little nearer one class's mean goes "
    "to the other. The nearest prototype uses the distances alone: the "
    "class with the nearest mean wins, however many support images it has"
)
