"""The notebook 04 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

import pytest

from medtl_helpers.course.checks import check_class_weights, check_val_threshold
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
    ],
)
def test_class_weights_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_class_weights(answer)


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
