"""The notebook 09 prototype checker (`nb09_prototypes`) accepts the reference answers and
explains typical wrong ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medtl_helpers.adaptation import nearest_prototype, prototype_logits
from medtl_helpers.course.checks import check_prototype_classifier


def logits(support, labels, query, metric="euclidean"):
    """prototype_logits written by hand: the checker refuses answers that call the package's."""
    centres = torch.stack([support[labels == c].mean(dim=0) for c in (0, 1)])
    if metric == "euclidean":
        return -torch.cdist(query, centres).pow(2)
    return F.normalize(query, dim=1) @ F.normalize(centres, dim=1).T


def nearest_mean(support, labels, query):
    return logits(support, labels, query).argmax(dim=1)


def euclidean(support, labels, query):
    centres = torch.stack([support[labels == c].mean(dim=0) for c in (0, 1)])
    return torch.cdist(query, centres).argmin(dim=1)


def squared_euclidean_numpy(support, labels, query):
    s, y, q = support.numpy(), labels.numpy(), query.numpy()
    centres = np.stack([s[y == c].mean(axis=0) for c in (0, 1)])
    return ((q[:, None, :] - centres[None]) ** 2).sum(axis=-1).argmin(axis=1)


def test_prototype_checker_accepts_the_reference_numpy_or_torch(capsys):
    check_prototype_classifier(nearest_mean)
    check_prototype_classifier(lambda s, y, q: nearest_mean(s, y, q).numpy().tolist())
    check_prototype_classifier(euclidean)
    check_prototype_classifier(squared_euclidean_numpy)
    out = capsys.readouterr().out
    assert out.count("Correct: the nearest class mean, and the answers follow") == 4


def nearest_point(support, labels, query):
    return labels[torch.cdist(query, support).argmin(dim=1)]


def sums(support, labels, query):
    centres = torch.stack([support[labels == c].sum(dim=0) for c in (0, 1)])
    return torch.cdist(query, centres).argmin(dim=1)


def blocks(support, labels, query):
    half = len(support) - 1  # "the first rows are class 0"
    centres = torch.stack([support[:half].mean(dim=0), support[half:].mean(dim=0)])
    return torch.cdist(query, centres).argmin(dim=1)


def farthest(support, labels, query):
    return logits(support, labels, query).argmin(dim=1)


def fixed_mapping(support, labels, query):
    centres = torch.stack([support[labels == c].mean(dim=0) for c in (0, 1)])
    # A fixed rule: whichever prototype is farther from the origin is called class 1, whatever
    # the support labels say (right on the checker's first case, wrong once they are swapped).
    nearest = torch.cdist(query, centres).argmin(dim=1)
    return (nearest == centres.norm(dim=1).argmax()).long()


def dot_with_mean(support, labels, query):
    centres = torch.stack([support[labels == c].mean(dim=0) for c in (0, 1)])
    return (query @ centres.T).argmax(dim=1)


def cosine(support, labels, query):
    return logits(support, labels, query, "cosine").argmax(dim=1)


def scores(support, labels, query):
    return logits(support, labels, query).softmax(dim=1)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (nearest_point, "nearest single support image \\(1-nearest neighbour\\)"),
        (sums, "the prototypes look like sums \\(or sums divided by .*: the classes have"),
        (dot_with_mean, "case 2; expected .*the largest dot product with each mean"),
        (cosine, "case 2; expected .*the largest cosine similarity: it compares directions"),
        (blocks, "the classes were taken as blocks of the support order"),
        (farthest, "take the argmin of the distance, not the argmax"),
        (fixed_mapping, "with the support labels swapped, classify should swap its answers"),
        (scores, "shape \\(4, 2\\): one score per label. Return the predicted label"),
    ],
)
def test_prototype_checker_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_prototype_classifier(answer)


def medians(support, labels, query):
    centres = torch.stack([support[labels == c].median(dim=0).values for c in (0, 1)])
    return torch.cdist(query, centres).argmin(dim=1)


def medians_numpy(support, labels, query):
    s, y = support.numpy(), labels.numpy()
    centres = torch.tensor(np.stack([np.median(s[y == c], axis=0) for c in (0, 1)]))
    return torch.cdist(query, centres).argmin(dim=1)


def minkowski(p):
    def answer(support, labels, query):
        centres = torch.stack([support[labels == c].mean(dim=0) for c in (0, 1)])
        return torch.cdist(query, centres, p=p).argmin(dim=1)

    return answer


def standardised(with_query):
    def answer(support, labels, query):
        rows = torch.cat([support, query]) if with_query else support
        mean, spread = rows.mean(dim=0), rows.std(dim=0)
        return euclidean((support - mean) / spread, labels, (query - mean) / spread)

    return answer


def sklearn_logistic(support, labels, query):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(support.numpy(), labels.numpy())
    return model.predict(query.numpy())


def package_logistic(support, labels, query):
    from medtl_helpers.adaptation import logistic_regression

    return logistic_regression(support, labels, query).argmax(dim=1)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (medians, "case 3; expected .*the prototypes look like medians \\(or another centre"),
        (medians_numpy, "case 3; expected .*the prototypes look like medians"),
        (minkowski(1.0), "case 3; expected .*by the L1 \\(city-block\\) distance"),
        (minkowski(float("inf")), "case 3; expected .*by the L∞ \\(Chebyshev\\) distance"),
        (standardised(False), "case 3; expected .*the features look standardised"),
        (standardised(True), "case 3; expected .*the features look standardised"),
        (sklearn_logistic, "case 3; expected .*what a logistic regression fit on the support"),
        (package_logistic, "case 3; expected .*what a logistic regression fit on the support"),
    ],
)
def test_prototype_checker_rejects_other_prototypes_distances_and_classifiers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_prototype_classifier(answer)


def test_the_third_prototype_case_separates_each_lookalike():
    from medtl_helpers.course.checks.nb09_prototype_cases import LABELS_3, QUERY_3, SUPPORT_3

    case = (SUPPORT_3, LABELS_3, QUERY_3)
    right = nearest_mean(*case).tolist()
    assert right == [0, 0, 1, 0, 0, 1, 0]
    assert euclidean(*case).tolist() == right
    answers = {
        "medians": medians(*case).tolist(),
        "L1": minkowski(1.0)(*case).tolist(),
        "Linf": minkowski(float("inf"))(*case).tolist(),
        "standardised": standardised(False)(*case).tolist(),
        "logistic": sklearn_logistic(*case).tolist(),
    }
    assert answers == {
        "medians": [1, 1, 1, 0, 0, 1, 0],
        "L1": [0, 1, 1, 0, 0, 1, 0],
        "Linf": [0, 0, 1, 0, 1, 1, 0],
        "standardised": [1, 1, 1, 0, 1, 1, 1],
        "logistic": [0, 0, 0, 0, 0, 1, 0],
    }
    for mistake in (nearest_point, sums, farthest, dot_with_mean, cosine):
        assert mistake(*case).tolist() not in answers.values(), mistake.__name__


def test_the_prototype_traps_give_different_answers_from_the_right_one():
    from medtl_helpers.course.checks.nb09_prototype_cases import LABELS, QUERY, SUPPORT

    right = nearest_mean(SUPPORT, LABELS, QUERY).tolist()
    assert right == [1, 0, 1, 0]
    for wrong in (nearest_point, sums, blocks, farthest):
        assert wrong(SUPPORT, LABELS, QUERY).tolist() != right, wrong.__name__


def test_prototype_checker_explains_an_error():
    with pytest.raises(AssertionError, match=r"classify\(\.\.\.\) raised .*return m labels"):
        check_prototype_classifier(lambda s, y, q: torch.cdist(q, s.mean(dim=1)).argmin(dim=1))


def test_the_second_prototype_case_tells_euclidean_from_dot_product_and_cosine():
    from medtl_helpers.course.checks.nb09_prototype_cases import LABELS_2, QUERY_2, SUPPORT_2

    right = nearest_mean(SUPPORT_2, LABELS_2, QUERY_2).tolist()
    assert right == [0, 0, 0, 1]
    assert dot_with_mean(SUPPORT_2, LABELS_2, QUERY_2).tolist() == [1, 1, 1, 1]
    assert cosine(SUPPORT_2, LABELS_2, QUERY_2).tolist() == [1, 1, 0, 1]


# Answers the checker let through before the fourth case: each must now be rejected with a
# message naming its own mistake.


def centred_cosine(over_query):
    def answer(support, labels, query):
        centre = (torch.cat([support, query]) if over_query else support).mean(dim=0)
        return logits(support - centre, labels, query - centre, "cosine").argmax(dim=1)

    return answer


def with_prior(sign, power):
    def answer(support, labels, query):
        centres = torch.stack([support[labels == c].mean(dim=0) for c in (0, 1)])
        share = torch.bincount(labels, minlength=2) / len(labels)
        return (sign * share.log() - torch.cdist(query, centres) ** power).argmax(dim=1)

    return answer


def sums_over_everything(support, labels, query):
    centres = torch.stack([support[labels == c].sum(dim=0) / len(support) for c in (0, 1)])
    return torch.cdist(query, centres).argmin(dim=1)


CENTRED = "that is a cosine after subtracting the mean of all the support"
PRIOR = "that adds a term for the class sizes to the score"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (centred_cosine(False), f"case 4; expected .*{CENTRED}"),
        (centred_cosine(True), f"case 2; expected .*{CENTRED}"),  # not "a logistic regression"
        (with_prior(1, 2), f"case 4; expected .*{PRIOR}"),
        (with_prior(1, 1), f"case 4; expected .*{PRIOR}"),
        (with_prior(-1, 2), f"case 4; expected .*{PRIOR}"),
        (sums_over_everything, "or sums divided by the size of the whole support"),
    ],
)
def test_prototype_checker_rejects_a_centred_cosine_and_a_class_size_prior(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_prototype_classifier(answer)


def test_the_fourth_prototype_case_separates_the_centred_cosine_and_the_priors():
    from medtl_helpers.course.checks.nb09_prototype_cases import (
        LABELS_4,
        PROTOTYPE_CASES,
        QUERY_4,
        SUPPORT_4,
    )

    case = (SUPPORT_4, LABELS_4, QUERY_4)
    assert nearest_mean(*case).tolist() == [0, 1, 1, 0, 0]
    assert centred_cosine(False)(*case).tolist() == [1, 1, 1, 0, 1]
    assert with_prior(1, 2)(*case).tolist() == with_prior(1, 1)(*case).tolist() == [0, 0, 1, 0, 0]
    assert with_prior(-1, 2)(*case).tolist() == [0, 1, 1, 0, 1]
    for rule in (centred_cosine(False), with_prior(1, 2), with_prior(1, 1), with_prior(-1, 2)):
        for support, labels, query in PROTOTYPE_CASES[:3]:  # only case 4 (and 5) catch them
            assert torch.equal(rule(support, labels, query), nearest_mean(support, labels, query))


# Answers the checker let through before the fifth case and the check for the package's
# functions (review 2 of notebook 09): each must be rejected with a message naming its mistake.


def gaussian_prior(support, labels, query, unbiased=True):
    """argmax(-d²/(2σ̂²) + log π_c), σ̂² the pooled within-class variance of the support."""
    centres = torch.stack([support[labels == c].mean(dim=0) for c in (0, 1)])
    entries = support.numel() - (2 * support.shape[1] if unbiased else 0)
    variance = (support - centres[labels]).pow(2).sum() / entries
    share = torch.bincount(labels, minlength=2) / len(labels)
    return (share.log() - torch.cdist(query, centres) ** 2 / (2 * variance)).argmax(dim=1)


def weighted_prior(weight):
    def answer(support, labels, query):
        centres = torch.stack([support[labels == c].mean(dim=0) for c in (0, 1)])
        share = torch.bincount(labels, minlength=2) / len(labels)
        return (weight * share.log() - torch.cdist(query, centres) ** 2).argmax(dim=1)

    return answer


def nested_package_call(support, labels, query):
    def score(rows):
        return prototype_logits(support, labels, rows)

    return score(query).argmax(1)


PACKAGE = "classify calls the package's {}: the exercise asks you to write the nearest prototype"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (gaussian_prior, f"case 1; expected .*{PRIOR}"),
        (lambda s, y, q: gaussian_prior(s, y, q, False), f"case 5; expected .*{PRIOR}"),
        (weighted_prior(0.5), f"case 5; expected .*{PRIOR}"),
        (weighted_prior(0.25), f"case 5; expected .*{PRIOR}"),
        (weighted_prior(0.01), f"case 5; expected .*{PRIOR}"),
        (weighted_prior(-0.25), f"case 5; expected .*{PRIOR}"),
        (lambda s, y, q: prototype_logits(s, y, q).argmax(1), PACKAGE.format("prototype_logits")),
        (lambda s, y, q: nearest_prototype(s, y, q).argmax(1), PACKAGE.format("nearest_prototype")),
        (nested_package_call, PACKAGE.format("prototype_logits")),
    ],
)
def test_prototype_checker_rejects_any_class_prior_and_the_package_functions(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_prototype_classifier(answer)


def test_the_fifth_prototype_case_flips_with_any_positive_prior_weight():
    from medtl_helpers.course.checks.nb09_prototype_cases import LABELS_5, QUERY_5, SUPPORT_5

    case = (SUPPORT_5, LABELS_5, QUERY_5)
    assert nearest_mean(*case).tolist() == [0, 1, 0, 1, 0]
    for weight in (0.003, 0.01, 0.25, 0.5, 1.0, 4.0):
        assert weighted_prior(weight)(*case).tolist() == [1, 1, 1, 1, 1], weight
        assert weighted_prior(-weight)(*case).tolist() == [0, 0, 0, 0, 0], weight
    assert gaussian_prior(*case).tolist() == [1, 1, 1, 1, 1]


# Answers review 3 of notebook 09 found passing or named as a class-size prior: each must fail
# with a message naming its own mistake (or, for one the checker does not know, the query point).


def midranges(support, labels, query):
    """The centre of each class's bounding box, (max + min) / 2, as the prototype."""
    parts = [support[labels == c] for c in (0, 1)]
    centres = torch.stack([(x.max(dim=0).values + x.min(dim=0).values) / 2 for x in parts])
    return torch.cdist(query, centres).argmin(dim=1)


def mean_distance(power):
    def answer(support, labels, query):
        gaps = torch.cdist(query, support) ** power
        return torch.stack([gaps[:, labels == c].mean(dim=1) for c in (0, 1)], 1).argmin(dim=1)

    return answer


def three_nearest(support, labels, query):
    """A vote of the three nearest support images, written by hand."""
    nearest = torch.cdist(query, support).argsort(dim=1)[:, :3]
    return (labels[nearest].float().mean(dim=1) > 0.5).long()


def sklearn_lda(support, labels, query):
    """Linear discriminant analysis: a pooled covariance (the Mahalanobis metric) and a prior."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    return LinearDiscriminantAnalysis().fit(support.numpy(), labels.numpy()).predict(query.numpy())


UNKNOWN = "it matches no mistake this checker knows. At the query point \\(0.5, 3\\) your answer"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (midranges, "case 6; expected .*the centre of each class's range, \\(max \\+ min\\) / 2"),
        (mean_distance(1), "case 1; expected .*the mean of the distances from a query to each"),
        (mean_distance(2), "case 1; expected .*plus the class's spread"),
        (three_nearest, "case 1; expected .*a vote of the three nearest support images"),
        (sklearn_lda, f"case 1; expected .*{UNKNOWN} is 0; .*the nearest class mean gives 1"),
    ],
)
def test_prototype_checker_names_the_mistake_not_a_prior(answer, message):
    with pytest.raises(AssertionError, match=message) as caught:
        check_prototype_classifier(answer)
    assert PRIOR not in str(caught.value)


def test_the_sixth_prototype_case_puts_a_query_between_the_mean_and_the_range_centre():
    from medtl_helpers.course.checks.nb09_prototype_cases import (
        LABELS_6,
        PROTOTYPE_CASES,
        QUERY_6,
        SUPPORT_6,
    )

    case = (SUPPORT_6, LABELS_6, QUERY_6)
    assert SUPPORT_6[LABELS_6 == 0].mean(dim=0).tolist() == pytest.approx([7 / 3, 0])
    assert nearest_mean(*case).tolist() == [1, 0, 1, 0]
    assert midranges(*case).tolist() == [0, 0, 1, 0]
    for support, labels, query in PROTOTYPE_CASES[:5]:  # only case 6 catches it
        assert torch.equal(midranges(support, labels, query), nearest_mean(support, labels, query))


def test_a_prior_below_the_stated_weight_passes_and_the_message_says_so(capsys):
    check_prototype_classifier(weighted_prior(0.002))  # below 0.0025: no answer changes
    out = capsys.readouterr().out
    assert "a prior for the class sizes (unless its weight is tiny)" in out
    assert "any weight" not in out


def _first_feature_only(support, labels, query):
    support, labels, query = (
        torch.as_tensor(x, dtype=torch.float64) for x in (support, labels, query)
    )
    means = torch.stack([support[labels == k].mean(0) for k in (0, 1)])
    return (query[:, :1] - means[:, 0]).abs().argmin(1)


def _trimmed_mean(support, labels, query):
    support, labels, query = (
        torch.as_tensor(x, dtype=torch.float64) for x in (support, labels, query)
    )
    means = []
    for k in (0, 1):
        rows = support[labels == k]
        if len(rows) > 2:
            far = ((rows - rows.mean(0)) ** 2).sum(1).argmax()
            rows = torch.cat([rows[:far], rows[far + 1 :]])
        means.append(rows.mean(0))
    return torch.cdist(query, torch.stack(means)).argmin(1)


@pytest.mark.parametrize("answer", [_first_feature_only, _trimmed_mean])
def test_an_answer_that_matches_a_mistake_on_a_few_cases_gets_the_plain_hint(answer):
    # These matched the "blocks of the support order" and "three nearest" mistakes on the cases
    # they got wrong, and were told to undo a mistake they never made.
    with pytest.raises(AssertionError, match="it matches no mistake this checker knows"):
        check_prototype_classifier(answer)


def test_means_stacked_in_the_wrong_order_are_named_as_a_cause():
    # argmin of the distance to [mean of label 1, mean of label 0]: the argmin is right, the order
    # is not, and the hint used to tell this student to change the argmin.
    def reversed_means(support, labels, query):
        support, labels, query = (
            torch.as_tensor(x, dtype=torch.float64) for x in (support, labels, query)
        )
        means = torch.stack([support[labels == k].mean(0) for k in (1, 0)])
        return torch.cdist(query, means).argmin(1)

    with pytest.raises(AssertionError, match=r"stack the class means in label order"):
        check_prototype_classifier(reversed_means)
