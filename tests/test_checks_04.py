"""The notebook 04 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from medtl_helpers.course.checks import check_class_weights, check_val_threshold
from medtl_helpers.course.checks.nb04 import _best_j, _leak_problem, _threshold_case
from medtl_helpers.metrics import choose_threshold, confusion


def balanced_weights(counts):
    return [sum(counts) / (len(counts) * n) for n in counts]


def rates_at(threshold, test_y, test_p, strict=False):
    pred = test_p > threshold if strict else test_p >= threshold
    tp = int((pred & (test_y == 1)).sum())
    fn = int((~pred & (test_y == 1)).sum())
    tn = int((~pred & (test_y == 0)).sum())
    fp = int((pred & (test_y == 0)).sum())
    return {"threshold": threshold, "sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp)}


def reference(val_y, val_p, test_y, test_p):
    threshold = choose_threshold(val_y, val_p)
    c = confusion(test_y, test_p, threshold)
    return {
        "threshold": threshold,
        "sensitivity": c["tp"] / (c["tp"] + c["fn"]),
        "specificity": c["tn"] / (c["tn"] + c["fp"]),
    }


def test_class_weights_accepts_the_reference(capsys):
    check_class_weights(balanced_weights)
    assert "Correct: your weights match" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda c: [n / sum(c) for n in c], "grow with the class count"),
        (lambda c: [1 / n for n in c], "right ratios but another scale"),
        (lambda c: [1.0] * len(c), "that is the unweighted loss"),
        (lambda c: [sum(c) / (2 * c[0]), sum(c) / (2 * c[1])], "expected one per class"),
        (lambda c: None, "`return` missing"),
        (
            lambda c: {i: sum(c) / (len(c) * n) for i, n in enumerate(c)},
            r"returned a dict, not numbers the checker can read: return one weight per class",
        ),
        (lambda c: [sum(c) / (2 * n) for n in c[:2]] + [1 / 0], r"\[1341, 3875\]\) raised Zero"),
    ],
)
def test_class_weights_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_class_weights(answer)


def test_class_weights_states_the_course_scale():
    """A weight of 1 / N_c has the right ratios; the message says which scale the course uses."""
    with pytest.raises(AssertionError) as caught:
        check_class_weights(lambda c: [1 / n for n in c])
    message = str(caught.value)
    # Kermany's counts: 1341 * (1 / 1341) + 3875 * (1 / 3875) = 2, where the course has N = 5216
    assert "their total weight is Σ_c N_c·w_c = 2," in message
    assert "Σ_c N_c·w_c = N = 5216, i.e. w_c = N / (C·N_c) with C = 2 classes" in message
    assert "Σ_c N_c·w_c = N" in " ".join(check_class_weights.__doc__.split())


def test_class_weights_names_the_formula_for_an_unrecognised_answer():
    with pytest.raises(AssertionError, match=r"w_c = N / \(C·N_c\) .* so that Σ_c N_c·w_c = N"):
        check_class_weights(lambda c: [n**0.5 for n in c][::-1])


def test_val_threshold_accepts_the_reference(capsys):
    check_val_threshold(reference)
    printed = capsys.readouterr().out
    assert "chosen on validation and applied unchanged" in printed
    # the figures are the checker's made-up case, and the message says so, not the student's run
    assert "on the checker's own test case (made-up predictions, not your run)" in printed


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda vy, vp, ty, tp: rates_at(choose_threshold(ty, tp), ty, tp), "TEST set"),
        (lambda vy, vp, ty, tp: rates_at(0.5, ty, tp), "default 0.5"),
        (
            lambda vy, vp, ty, tp: {
                **reference(vy, vp, ty, tp),
                "sensitivity": reference(vy, vp, ty, tp)["specificity"],
                "specificity": reference(vy, vp, ty, tp)["sensitivity"],
            },
            "swapped",
        ),
        (
            lambda vy, vp, ty, tp: rates_at(choose_threshold(vy, vp), ty, tp, strict=True),
            "p >= threshold",
        ),
        (lambda vy, vp, ty, tp: (0.5, 0.9, 0.8), "expected a dict"),
    ],
)
def test_val_threshold_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_val_threshold(answer)


def rates_on_validation(val_y, val_p, test_y, test_p):
    """The threshold from validation, but the rates measured on validation as well."""
    return rates_at(choose_threshold(val_y, val_p), val_y, val_p)


def precision_as_sensitivity(val_y, val_p, test_y, test_p):
    threshold = choose_threshold(val_y, val_p)
    c = confusion(test_y, test_p, threshold)
    return {**reference(val_y, val_p, test_y, test_p), "sensitivity": c["tp"] / (c["tp"] + c["fp"])}


def unthresholded(val_y, val_p, test_y, test_p):
    """Forgets to threshold the test probabilities: sklearn refuses continuous predictions."""
    from sklearn.metrics import confusion_matrix

    tn, fp, fn, tp = confusion_matrix(test_y, test_p).ravel()
    return {"threshold": choose_threshold(val_y, val_p), "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp)}  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (rates_on_validation, "are those of the VALIDATION predictions: the threshold comes from"),
        (precision_as_sensitivity, r"is the precision TP / \(TP \+ FP\)"),
        (
            lambda vy, vp, ty, tp: {**reference(vy, vp, ty, tp), "threshold": vp[:2]},
            r"returned ndarray array\(\[.*\]\) for 'threshold'; expected one number",
        ),
        (unthresholded, r"threshold_and_rates\(val_y, val_p, test_y, test_p\) raised ValueError"),
    ],
)
def test_val_threshold_explains_more_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_val_threshold(answer)


def best_by(score):
    """An answer taking the validation score that maximises `score(y, flagged)`, first of ties."""

    def answer(val_y, val_p, test_y, test_p):
        candidates = np.unique(val_p)
        values = [score(val_y, val_p >= t) for t in candidates]
        return rates_at(float(candidates[int(np.argmax(values))]), test_y, test_p)

    return answer


def accuracy(y, flagged):
    return (flagged == (y == 1)).mean()


def f1(y, flagged):
    tp = (flagged & (y == 1)).sum()
    return 2 * tp / (tp + flagged.sum() + (y == 1).sum())


def closest_to_corner(y, flagged):
    sensitivity, specificity = flagged[y == 1].mean(), (~flagged[y == 0]).mean()
    return -((1 - sensitivity) ** 2 + (1 - specificity) ** 2)


def in_the_gap(share):
    """A threshold `share` of the way from the next lower validation score up to Youden's."""

    def answer(val_y, val_p, test_y, test_p):
        youden = choose_threshold(val_y, val_p)
        below = val_p[val_p < youden].max()
        return rates_at(below + share * (youden - below), test_y, test_p)

    return answer


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (best_by(accuracy), r"maximises accuracy and F1 on validation, where J = .* is 0\.\d+"),
        (best_by(f1), "maximises accuracy and F1 on validation"),
        (
            best_by(closest_to_corner),
            r"your threshold is 0\.5508, with J = 0\.743 on validation; Youden's J is best, 0\.754",
        ),
        (in_the_gap(0.01), "has the best J on validation .* but flags other test cases"),
    ],
)
def test_val_threshold_names_the_rule_a_wrong_threshold_follows(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_val_threshold(answer)


def youden_on(where, search):
    """Youden's J maximised on the TEST set or on validation and test POOLED: the test labels leak.

    `search` picks the candidates: the course's (`choose_threshold`, the scores), a grid of 101
    thresholds, or the midpoints between neighbouring scores; the first best J wins."""

    def answer(val_y, val_p, test_y, test_p):
        y, p = (test_y, test_p) if where == "test" else (
            np.concatenate([val_y, test_y]), np.concatenate([val_p, test_p]))  # fmt: skip
        if search == "choose_threshold":
            return rates_at(choose_threshold(y, p), test_y, test_p)
        scores = np.unique(p)
        candidates = np.linspace(0, 1, 101) if search == "grid" else (scores[1:] + scores[:-1]) / 2
        j = [(p[y == 1] >= t).mean() + (p[y == 0] < t).mean() - 1 for t in candidates]
        return rates_at(float(candidates[int(np.argmax(j))]), test_y, test_p)

    return answer


BOTH = "the TEST set and on validation and test POOLED"


@pytest.mark.parametrize(
    ("where", "search", "named"),
    [
        ("test", "choose_threshold", BOTH),  # test and pooled share their best J at 0.526
        ("test", "grid", BOTH),
        ("test", "midpoints", BOTH),
        ("pooled", "choose_threshold", BOTH),
        ("pooled", "grid", BOTH),
        ("pooled", "midpoints", BOTH),
    ],
)
def test_val_threshold_names_the_test_leak_whatever_the_candidates(where, search, named):
    """The leak is named by the best J the threshold reaches, not by its value: a grid or the
    midpoints give other values than choose_threshold, with the same best J on test."""
    with pytest.raises(AssertionError) as caught:
        check_val_threshold(youden_on(where, search))
    message = str(caught.value)
    assert re.fullmatch(
        r"on the checker's test case, your threshold 0\.\d{4} reaches the best Youden's J on "
        + named
        + r", but not on validation \(J = 0\.\d{3} there; the best, 0\.754, is at 0\.4393\)\. "
        r"That is what a threshold tuned with the test labels gives, and it makes the test numbers "
        r"optimistic: choose the threshold on validation alone and apply it unchanged to test\. "
        r"If you used validation alone, your rule is not Youden's J\.",
        message,
    ), message


def validation_only_thresholds(val_y, val_p):
    """Every validation score that maximises accuracy, F1 or closeness to the corner (0, 1)."""
    rules = (accuracy, f1, closest_to_corner)
    candidates = np.unique(val_p)
    found = set()
    for rule in rules:
        values = np.array([rule(val_y, val_p >= t) for t in candidates])
        found |= {float(t) for t in candidates[np.isclose(values, values.max())]}
    return sorted(found)


def youden(y, flagged):
    return flagged[y == 1].mean() + (~flagged[y == 0]).mean() - 1


def leak_thresholds(val_y, val_p, test_y, test_p):
    """Every threshold (all ties) with the best J, accuracy or F1 on the TEST set or on validation
    and test POOLED, searched on the scores, a 101-point grid or the midpoints."""
    pooled = (np.concatenate([val_y, test_y]), np.concatenate([val_p, test_p]))
    found = set()
    for (y, p), rule, search in itertools.product(
        ((test_y, test_p), pooled), (youden, accuracy, f1), ("scores", "grid", "midpoints")
    ):
        scores = np.unique(p)
        candidates = {"scores": scores, "grid": np.linspace(0, 1, 101),
                      "midpoints": (scores[1:] + scores[:-1]) / 2}[search]  # fmt: skip
        values = np.array([rule(y, p >= t) for t in candidates])
        found |= {float(t) for t in candidates[np.isclose(values, values.max(), rtol=0)]}
    return sorted(found)


def honest_thresholds(val_y, val_p, test_p):
    """Validation-only rules (accuracy, F1, the corner) and the medians of the scores: wrong, but
    none of them uses the test labels."""
    medians = [np.median(val_p), np.median(test_p), np.median(np.concatenate([val_p, test_p]))]
    return validation_only_thresholds(val_y, val_p) + [float(m) for m in medians]


def test_the_case_keeps_validation_only_rules_apart_from_the_test_leaks():
    """No validation-only rule or median reaches the best J on test or pooled, so it is not told
    it used the test labels; no leak by J, accuracy or F1 has the best validation J and flags the
    test cases that Youden's threshold on validation flags, so none can pass."""
    val_y, val_p, test_y, test_p = _threshold_case()
    want = choose_threshold(val_y, val_p)
    honest = honest_thresholds(val_y, val_p, test_p)
    leaks = leak_thresholds(val_y, val_p, test_y, test_p)
    # validation's best accuracy and F1 lie below Youden's, closest to the corner above it
    assert honest[:2] == pytest.approx([0.4142, 0.5508]) and want == pytest.approx(0.4393)
    assert val_y.sum() / (val_y == 0).sum() == pytest.approx(2.5, abs=0.05)
    for threshold in honest:
        assert _leak_problem(threshold, want, (val_y, val_p), (test_y, test_p)) is None, threshold
    for threshold in leaks:  # other flags, or a J on validation that Youden's beats
        other_flags = ((test_p >= threshold) != (test_p >= want)).any()
        assert other_flags or not _best_j(val_y, val_p, threshold), threshold


def test_val_threshold_accepts_any_best_j_threshold_flagging_the_same_test_cases(capsys):
    check_val_threshold(in_the_gap(0.5))  # the midpoint of the cut: the same J, the same flags
    assert "Correct" in capsys.readouterr().out


def test_val_threshold_gives_j_for_a_threshold_that_follows_no_named_rule():
    def low(val_y, val_p, test_y, test_p):
        return rates_at(float(np.sort(val_p)[5]), test_y, test_p)

    with pytest.raises(AssertionError, match=r"your threshold is 0\.\d+, with J = 0\.\d+ on val"):
        check_val_threshold(low)


@pytest.mark.parametrize(
    ("name", "score"), [("test accuracy", accuracy), ("test F1", f1), ("pooled accuracy", accuracy)]
)
def test_val_threshold_fails_the_test_leaks_by_accuracy_or_f1(name, score):
    """The review's three leaks: the first score with the best accuracy or F1 on the TEST set, or
    the best accuracy on validation and test pooled (seed 176 let them pass at 0.4875)."""

    def answer(val_y, val_p, test_y, test_p):
        y, p = (test_y, test_p) if name.startswith("test") else (
            np.concatenate([val_y, test_y]), np.concatenate([val_p, test_p]))  # fmt: skip
        candidates = np.unique(p)
        values = [score(y, p >= t) for t in candidates]
        return rates_at(float(candidates[int(np.argmax(values))]), test_y, test_p)

    with pytest.raises(AssertionError, match="on the checker's test case"):
        check_val_threshold(answer)


def test_val_threshold_fails_every_leak_whatever_the_rule_and_the_tie():
    case = _threshold_case()
    for threshold in leak_thresholds(*case):
        with pytest.raises(AssertionError):
            check_val_threshold(lambda vy, vp, ty, tp, t=threshold: rates_at(t, ty, tp))


@pytest.mark.parametrize("which", ["validation", "test", "pooled"])
def test_val_threshold_does_not_accuse_the_median_of_using_the_test_labels(which):
    """A median of the scores is wrong but uses no labels: the message is the neutral one."""

    def median(val_y, val_p, test_y, test_p):
        p = {"validation": val_p, "test": test_p, "pooled": np.concatenate([val_p, test_p])}
        return rates_at(float(np.median(p[which])), test_y, test_p)

    with pytest.raises(AssertionError, match=r"your threshold is 0\.\d{4}, with J = .* on valid"):
        check_val_threshold(median)


def test_val_threshold_hedges_a_leak_a_validation_only_rule_could_reach():
    """A hand-picked 0.52 reaches the best J on test: the message says what a test-tuned
    threshold gives, and what it means if validation alone was used."""
    with pytest.raises(AssertionError) as caught:
        check_val_threshold(lambda vy, vp, ty, tp: rates_at(0.52, ty, tp))
    assert "reaches the best Youden's J on the TEST set" in str(caught.value)
    assert "If you used validation alone, your rule is not Youden's J." in str(caught.value)
