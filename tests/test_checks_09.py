"""The notebook 09 checkers of episodes and ties (`nb09`: `check_episode_leak`,
`check_tied_best`) accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from medtl_helpers.adaptation import tied_best
from medtl_helpers.course.checks import check_episode_leak, check_tied_best


def shared(episode, pool):
    return episode.shared_patients(pool)


def by_hand(episode, pool):
    support = {pool.patients[i] for i in episode.support}
    return support & {pool.patients[i] for i in episode.query}


def test_leak_checker_accepts_sets_and_lists(capsys):
    check_episode_leak(by_hand)
    check_episode_leak(lambda e, p: sorted(by_hand(e, p)))
    assert capsys.readouterr().out.count("Correct: the leak is a patient, not an image") == 2


def tied_by_hand(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(part, key=lambda r: r["accuracy"])
    return [r["method"] for r in part if r["accuracy_high"] >= best["accuracy_low"]]


def test_the_checkers_refuse_the_package_answers_the_exercises_ask_to_write():
    from medtl_helpers.adaptation import Episode
    from medtl_helpers.adaptation.few_shot import paired_tied_best

    leak = "shared_patients calls the package's Episode.shared_patients: the exercise asks you"
    for answer in (shared, lambda e, p: e.shared_patients(p), Episode.shared_patients):
        with pytest.raises(AssertionError, match=leak):
            check_episode_leak(answer)
    tie = "tied_best calls the package's {}: the exercise asks you to write the rule yourself"
    for answer, called in (
        (tied_best, "tied_best"),
        (lambda rows, s, k: sorted(tied_best(rows, s, k)), "tied_best"),
        (lambda rows, s, k: paired_tied_best(rows, s, k), "paired_tied_best"),
    ):
        with pytest.raises(AssertionError, match=tie.format(called)):
            check_tied_best(answer)


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


LEAK_WRONG = [
    (shared_indices, "no image is in both, but a patient is: image 1 is p0's second film"),
    (shared_index_of_patients, "return patient ids \\(pool.patients\\[i\\]\\), not indices"),
    (counts, "shared_patients returned 0; return the set of patient ids themselves"),
    (support_patients, "expected \\[\\]: that is every support patient: keep only those"),
    (first_two_queries, "expected \\['p1', 'p4'\\]: \\['p4'\\] is missing. Look at every"),
    (pair_by_pair, "compare pool.patients of every support image .*, and not pair by pair"),
]


def test_tied_best_checker_accepts_the_reference(capsys):
    check_tied_best(tied_by_hand)
    out = capsys.readouterr().out
    assert "Correct: in the checker's made-up rows, ['A', 'B', 'D'] cannot be told apart" in out


def best_only(rows, setting, k):
    return tied_by_hand(rows, setting, k)[:1]


def against_the_mean(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(part, key=lambda r: r["accuracy"])
    return [r["method"] for r in part if r["accuracy_high"] >= best["accuracy"]]


def everything_of_the_cell(rows, setting, k):
    return [r["method"] for r in rows if r["setting"] == setting and r["K"] == k]


def unfiltered(rows, setting, k):
    best = max(rows, key=lambda r: r["accuracy"])
    return [r["method"] for r in rows if r["accuracy_high"] >= best["accuracy_low"]]


TIE_WRONG = [
    (best_only, "only the best: keep every method whose interval reaches the best's"),
    (against_the_mean, "D is missing: its upper bound .*not a mean with a bound"),
    (everything_of_the_cell, "C is kept, yet its upper bound \\(0.875\\) is below the lower"),
    (unfiltered, "select the rows of the setting and K asked for first"),
]


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


def unpaired_test(rows, setting, k):
    """Tied where the gap of the means is at most √(h_best² + h_i²), h the half-widths."""
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(part, key=lambda r: r["accuracy"])

    def half(r):
        return (r["accuracy_high"] - r["accuracy_low"]) / 2

    return [
        r["method"]
        for r in part
        if best["accuracy"] - r["accuracy"] <= (half(best) ** 2 + half(r) ** 2) ** 0.5
    ]


TIE_MORE_WRONG = [
    (
        best_by_upper_bound,
        r"tied_best\(rows, 'val', 2\) gave \['N', 'P', 'Q', 'R', 'S'\]; expected \['N', 'P', 'Q', "
        r"'R'\]:"
        r" the best is the method with the highest MEAN \(P, 0\.80\), not the highest upper",
    ),
    (
        strictly_above,
        r"tied_best\(rows, 'val', 2\) gave \['N', 'P', 'Q'\]; expected \['N', 'P', 'Q', 'R'\]: "
        r"R's upper"
        r" bound \(0\.78\) equals P's lower bound \(0\.78\).*use >=, not >",
    ),
    (
        unpaired_test,
        r"tied_best\(rows, 'val', 2\) gave \['P', 'Q'\]; expected \['N', 'P', 'Q', 'R'\]: N's "
        r"upper bound \(0\.79\) and R's upper bound \(0\.78\) reach P's lower bound \(0\.78\), "
        r"so the intervals overlap. The rule reads that overlap, not a test of the difference",
    ),
    (lambda rows, s, k: None, r"tied_best returned None: did you forget the `return`"),
    (lambda rows, s, k: "A", r"tied_best returned 'A'; return a list of method names"),
    (lambda rows, s, k: rows[0]["methods"], r"tied_best\(rows, 'val', 1\) raised KeyError"),
]


def within_five_points(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(r["accuracy"] for r in part)
    return [r["method"] for r in part if best - r["accuracy"] <= 0.05]


def highest_lower_bound(rows, setting, k):
    part = [r for r in rows if r["setting"] == setting and r["K"] == k]
    best = max(part, key=lambda r: r["accuracy_low"])
    return [r["method"] for r in part if r["accuracy_high"] >= best["accuracy_low"]]


TIE_MEANS_AND_LOWER_BOUNDS = [
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
]


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
    assert tied_best(TIE_ROWS, "val", 2) == ["P", "R", "Q", "N"]
    assert sorted(best_by_upper_bound(TIE_ROWS, "val", 2)) == ["N", "P", "Q", "R", "S"]
    assert sorted(strictly_above(TIE_ROWS, "val", 2)) == ["N", "P", "Q"]
    assert sorted(unpaired_test(TIE_ROWS, "val", 2)) == ["P", "Q"]


LEAK_NO_SET = [
    (lambda e, p: None, r"shared_patients returned None: did you forget the `return`"),
    (lambda e, p: "p0", r"shared_patients returned 'p0'; return the set of patient ids"),
    (
        lambda e, p: {p.patient_ids[i] for i in e.support},
        r"shared_patients\(episode, pool\) raised AttributeError: .*pool\.patients\[i\]",
    ),
]


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


LEAK_SHORTER_SIDE = [
    (query_as_long_as_the_support, LONGER_QUERY + r"4 query images and 2 support ones here"),
    (zipped, LONGER_QUERY + r".*not range\(len\(episode.support\)\) or zip\(support, query\)"),
    (
        support_cut_to_the_query,
        r"shared_patients gave \[\]; expected \['p4'\]: 4 support images and 2 query ones",
    ),
    (union, r"that is every patient on either side \(a union, \|\)"),
    (query_patients, r"expected \[\]: that is every query patient: keep only those"),
]


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


TIE_FIRST_ROW_AS_BEST = [
    (
        first_row_is_best,
        r"tied_best\(rows, 'val', 4\) gave \['G', 'H', 'I'\]; expected \['H', 'I'\]: the best "
        r"is the row with the highest mean \(H, 0\.85\) wherever it is listed, not the first",
    ),
    (mean_inside_the_best, r"'val', 1\) gave \['A', 'B'\]; .*not a mean with a bound"),
    (lower_bounds, r"'val', 1\) gave \['A'\]; .*upper bound, not its lower bound, with the"),
]


def test_the_k4_cell_lists_its_best_after_another_row():
    from medtl_helpers.course.checks.nb09 import TIE_ROWS

    cell = [r["method"] for r in TIE_ROWS if r["K"] == 4]
    assert cell[0] != tied_best(TIE_ROWS, "val", 4)[0] == "H"
    for k in (1, 2, 3):  # the first-row answer is right wherever the best comes first
        assert sorted(first_row_is_best(TIE_ROWS, "val", k)) == sorted(
            tied_best(TIE_ROWS, "val", k)
        )


@pytest.mark.parametrize(
    ("answer", "message"),
    LEAK_WRONG + LEAK_NO_SET + LEAK_SHORTER_SIDE,
)
def test_leak_checker_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_episode_leak(answer)


@pytest.mark.parametrize(
    ("answer", "message"),
    TIE_WRONG + TIE_MORE_WRONG + TIE_MEANS_AND_LOWER_BOUNDS + TIE_FIRST_ROW_AS_BEST,
)
def test_tied_best_checker_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_tied_best(answer)
