"""The notebook 09 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtl_helpers.adaptation import prototype_logits, tied_best
from medtl_helpers.course.checks import (
    check_episode_leak,
    check_prototype_classifier,
    check_tied_best,
)


def nearest_mean(support, labels, query):
    return prototype_logits(support, labels, query).argmax(dim=1)


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
    return prototype_logits(support, labels, query).argmin(dim=1)


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
    return prototype_logits(support, labels, query, "cosine").argmax(dim=1)


def scores(support, labels, query):
    return prototype_logits(support, labels, query).softmax(dim=1)


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
        (medians, "case 3; expected .*the prototypes look like medians. A prototype is the mean"),
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
    from medtl_helpers.course.checks.nb09_prototypes import LABELS_3, QUERY_3, SUPPORT_3

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
    from medtl_helpers.course.checks.nb09_prototypes import LABELS, QUERY, SUPPORT

    right = nearest_mean(SUPPORT, LABELS, QUERY).tolist()
    assert right == [1, 0, 1, 0]
    for wrong in (nearest_point, sums, blocks, farthest):
        assert wrong(SUPPORT, LABELS, QUERY).tolist() != right, wrong.__name__


def shared(episode, pool):
    return episode.shared_patients(pool)


def test_leak_checker_accepts_sets_and_lists(capsys):
    check_episode_leak(shared)
    check_episode_leak(lambda e, p: sorted(shared(e, p)))
    assert capsys.readouterr().out.count("Correct: the leak is a patient, not an image") == 2


def shared_indices(episode, pool):
    return set(episode.support.tolist()) & set(episode.query.tolist())


def shared_index_of_patients(episode, pool):
    support = {pool.patients[i] for i in episode.support}
    return {int(i) for i in episode.query if pool.patients[i] in support}


def counts(episode, pool):
    return len(shared(episode, pool))


def support_patients(episode, pool):
    return {pool.patients[i] for i in episode.support}


def first_two_queries(episode, pool):
    return {pool.patients[i] for i in episode.support} & {
        pool.patients[i] for i in episode.query[:2]
    }


def pair_by_pair(episode, pool):
    pairs = zip(episode.support, episode.query)
    return {pool.patients[s] for s, q in pairs if pool.patients[s] == pool.patients[q]}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (shared_indices, "no image is in both, but a patient is: image 1 is p0's second film"),
        (shared_index_of_patients, "return patient ids \\(pool.patients\\[i\\]\\), not indices"),
        (counts, "shared_patients returned 0; return the set of patient ids themselves"),
        (support_patients, "expected \\[\\]: that is every support patient: keep only those"),
        (first_two_queries, "expected \\['p1', 'p4'\\]: \\['p4'\\] is missing. Look at every"),
        (pair_by_pair, "compare pool.patients of every support image .*, and not pair by pair"),
    ],
)
def test_leak_checker_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_episode_leak(answer)


def test_tied_best_checker_accepts_the_reference(capsys):
    check_tied_best(tied_best)
    out = capsys.readouterr().out
    assert "Correct: in the checker's made-up rows, ['A', 'B', 'D'] cannot be told apart" in out


def best_only(rows, setting, k):
    return tied_best(rows, setting, k)[:1]


def against_the_mean(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(part, key=lambda r: r["accuracy"])
    return [r["method"] for r in part if r["accuracy_high"] >= best["accuracy"]]


def everything_of_the_cell(rows, setting, k):
    return [r["method"] for r in rows if r["setting"] == setting and r["K"] == k]


def unfiltered(rows, setting, k):
    best = max(rows, key=lambda r: r["accuracy"])
    return [r["method"] for r in rows if r["accuracy_high"] >= best["accuracy_low"]]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (best_only, "only the best: keep every method whose interval reaches the best's"),
        (against_the_mean, "D is missing: its upper bound .*not a mean with a bound"),
        (everything_of_the_cell, "C is kept, yet its upper bound \\(0.875\\) is below the lower"),
        (unfiltered, "select the rows of the setting and K asked for first"),
    ],
)
def test_tied_best_checker_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_tied_best(answer)


def test_the_leak_cases_are_what_they_claim():
    from medtl_helpers.course.checks.nb09 import LEAK_CASES, _episode, _leak_pool

    pool = _leak_pool()
    for support, query, expected in LEAK_CASES:
        episode = _episode(support, query)
        assert set(support).isdisjoint(query)  # never the same image: the leak is a patient
        assert shared(episode, pool) == expected
    assert np.bincount(pool.labels).tolist() == [6, 6]


def best_by_upper_bound(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(part, key=lambda r: r["accuracy_high"])
    return [r["method"] for r in part if r["accuracy_high"] >= best["accuracy_low"]]


def strictly_above(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(part, key=lambda r: r["accuracy"])
    return [r["method"] for r in part if r is best or r["accuracy_high"] > best["accuracy_low"]]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            best_by_upper_bound,
            r"tied_best\(rows, 'val', 2\) gave \['P', 'Q', 'R', 'S'\]; expected \['P', 'Q', 'R'\]:"
            r" the best is the method with the highest MEAN \(P, 0\.80\), not the highest upper",
        ),
        (
            strictly_above,
            r"tied_best\(rows, 'val', 2\) gave \['P', 'Q'\]; expected \['P', 'Q', 'R'\]: R's upper"
            r" bound \(0\.78\) equals P's lower bound \(0\.78\).*use >=, not >",
        ),
        (lambda rows, s, k: None, r"tied_best returned None: did you forget the `return`"),
        (lambda rows, s, k: "A", r"tied_best returned 'A'; return a list of method names"),
        (lambda rows, s, k: rows[0]["methods"], r"tied_best\(rows, 'val', 1\) raised KeyError"),
    ],
)
def test_tied_best_checker_explains_more_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_tied_best(answer)


def within_five_points(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(r["accuracy"] for r in part)
    return [r["method"] for r in part if best - r["accuracy"] <= 0.05]


def highest_lower_bound(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(part, key=lambda r: r["accuracy_low"])
    return [r["method"] for r in part if r["accuracy_high"] >= best["accuracy_low"]]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            within_five_points,
            r"tied_best\(rows, 'val', 3\) gave \['U', 'V'\]; expected \['U', 'V', 'W', 'X', "
            r"'Z'\]: a tie is read from the intervals, not from how close the means are",
        ),
        (
            highest_lower_bound,
            r"'val', 3\) gave \['U', 'V', 'W'\]; .*: the best is the method with the highest "
            r"MEAN \(U, 0\.80\), not the highest lower bound \(V, 0\.76\)",
        ),
    ],
)
def test_tied_best_checker_rejects_rules_on_means_and_lower_bounds(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_tied_best(answer)


def test_the_k3_cell_catches_what_the_k1_and_k2_cells_let_through():
    from medtl_helpers.course.checks.nb09 import TIE_ROWS

    for rule in (within_five_points, highest_lower_bound):
        for k in (1, 2):
            assert sorted(rule(TIE_ROWS, "val", k)) == sorted(tied_best(TIE_ROWS, "val", k))
    assert tied_best(TIE_ROWS, "val", 3) == ["U", "V", "W", "X", "Z"]


def test_the_k2_cell_catches_what_the_k1_cell_lets_through():
    from medtl_helpers.course.checks.nb09 import TIE_ROWS

    for rule in (best_by_upper_bound, strictly_above):  # right by luck at K = 1
        assert rule(TIE_ROWS, "val", 1) == tied_best(TIE_ROWS, "val", 1)
    assert tied_best(TIE_ROWS, "val", 2) == ["P", "R", "Q"]
    assert sorted(best_by_upper_bound(TIE_ROWS, "val", 2)) == ["P", "Q", "R", "S"]
    assert sorted(strictly_above(TIE_ROWS, "val", 2)) == ["P", "Q"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda e, p: None, r"shared_patients returned None: did you forget the `return`"),
        (lambda e, p: "p0", r"shared_patients returned 'p0'; return the set of patient ids"),
        (
            lambda e, p: {p.patient_ids[i] for i in e.support},
            r"shared_patients\(episode, pool\) raised AttributeError: .*pool\.patients\[i\]",
        ),
    ],
)
def test_leak_checker_explains_answers_that_are_no_set(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_episode_leak(answer)


def test_prototype_checker_explains_an_error():
    with pytest.raises(AssertionError, match=r"classify\(\.\.\.\) raised .*return m labels"):
        check_prototype_classifier(lambda s, y, q: torch.cdist(q, s.mean(dim=1)).argmin(dim=1))


def test_the_second_prototype_case_tells_euclidean_from_dot_product_and_cosine():
    from medtl_helpers.course.checks.nb09_prototypes import LABELS_2, QUERY_2, SUPPORT_2

    right = nearest_mean(SUPPORT_2, LABELS_2, QUERY_2).tolist()
    assert right == [0, 0, 0, 1]
    assert dot_with_mean(SUPPORT_2, LABELS_2, QUERY_2).tolist() == [1, 1, 1, 1]
    assert cosine(SUPPORT_2, LABELS_2, QUERY_2).tolist() == [1, 1, 0, 1]


# Answers the checkers let through before the fourth prototype case, the longer query and support
# cases, and the K = 4 cell: each must now be rejected with a message naming its own mistake.


def centred_cosine(over_query):
    def answer(support, labels, query):
        centre = (torch.cat([support, query]) if over_query else support).mean(dim=0)
        return prototype_logits(support - centre, labels, query - centre, "cosine").argmax(dim=1)

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
    from medtl_helpers.course.checks.nb09_prototypes import (
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
        for support, labels, query in PROTOTYPE_CASES[:3]:  # only case 4 catches them
            assert torch.equal(rule(support, labels, query), nearest_mean(support, labels, query))


def query_as_long_as_the_support(episode, pool):
    support = {pool.patients[episode.support[i]] for i in range(len(episode.support))}
    return support & {pool.patients[episode.query[i]] for i in range(len(episode.support))}


def zipped(episode, pool):
    pairs = list(zip(episode.support, episode.query))
    return {pool.patients[s] for s, _ in pairs} & {pool.patients[q] for _, q in pairs}


def support_cut_to_the_query(episode, pool):
    support = {pool.patients[i] for i in episode.support[: len(episode.query)]}
    return support & {pool.patients[i] for i in episode.query}


def union(episode, pool):
    return {pool.patients[i] for i in episode.support} | {pool.patients[i] for i in episode.query}


def query_patients(episode, pool):
    return {pool.patients[i] for i in episode.query}


LONGER_QUERY = r"query images \[2, 4, 8, 7\]: shared_patients gave \[\]; expected \['p3'\]: "


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (query_as_long_as_the_support, LONGER_QUERY + r"4 query images and 2 support ones here"),
        (zipped, LONGER_QUERY + r".*not range\(len\(episode.support\)\) or zip\(support, query\)"),
        (
            support_cut_to_the_query,
            r"shared_patients gave \[\]; expected \['p4'\]: 4 support images and 2 query ones",
        ),
        (union, r"that is every patient on either side \(a union, \|\)"),
        (query_patients, r"expected \[\]: that is every query patient: keep only those"),
    ],
)
def test_leak_checker_rejects_answers_that_stop_at_the_shorter_side(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_episode_leak(answer)


def test_the_longer_sides_leak_beyond_the_other_sides_length():
    from medtl_helpers.course.checks.nb09 import LEAK_CASES, _leak_pool

    pool = _leak_pool()
    (s5, q5, leak5), (s6, q6, leak6) = LEAK_CASES[4:]
    assert len(q5) > len(s5) and {pool.patients[i] for i in q5[len(s5) :]} >= leak5
    assert not {pool.patients[i] for i in q5[: len(s5)]} & leak5
    assert len(s6) > len(q6) and not {pool.patients[i] for i in s6[: len(q6)]} & leak6


def first_row_is_best(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    return [r["method"] for r in part if r["accuracy_high"] >= part[0]["accuracy_low"]]


def mean_inside_the_best(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(part, key=lambda r: r["accuracy"])
    return [r["method"] for r in part if r["accuracy"] >= best["accuracy_low"]]


def lower_bounds(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(part, key=lambda r: r["accuracy"])
    return [r["method"] for r in part if r["accuracy_low"] >= best["accuracy_low"]]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            first_row_is_best,
            r"tied_best\(rows, 'val', 4\) gave \['G', 'H', 'I'\]; expected \['H', 'I'\]: the best "
            r"is the row with the highest mean \(H, 0\.85\) wherever it is listed, not the first",
        ),
        (mean_inside_the_best, r"'val', 1\) gave \['A', 'B'\]; .*not a mean with a bound"),
        (lower_bounds, r"'val', 1\) gave \['A'\]; .*upper bound, not its lower bound, with the"),
    ],
)
def test_tied_best_checker_rejects_the_first_row_as_best_and_names_each_mistake(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_tied_best(answer)


def test_the_k4_cell_lists_its_best_after_another_row():
    from medtl_helpers.course.checks.nb09 import TIE_ROWS

    cell = [r["method"] for r in TIE_ROWS if r["K"] == 4]
    assert cell[0] != tied_best(TIE_ROWS, "val", 4)[0] == "H"
    for k in (1, 2, 3):  # the first-row answer is right wherever the best comes first
        assert sorted(first_row_is_best(TIE_ROWS, "val", k)) == sorted(
            tied_best(TIE_ROWS, "val", k)
        )
