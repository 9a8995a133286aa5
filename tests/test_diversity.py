"""How much two models' errors overlap: hand-worked measures, the overlap chance alone gives, a
paired bootstrap over patients, and the verdict that reads it."""

from __future__ import annotations

import numpy as np
import pytest

from medtl_helpers.evaluation.diversity import error_overlap, overlap_difference, overlap_verdict

# y, two models' probabilities and thresholds, worked by hand:
# m_a decides 1 0 1 1 0 0 0 1 and errs on cases 1, 3, 6, 7 (4 of 8);
# m_b (p >= 0.3) decides 1 1 0 0 0 1 1 1 and errs on cases 2, 5, 7 (3 of 8);
# both err on case 7 only, either on 6 cases, so they disagree on 6 - 1 = 5.
Y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
PAIR = (
    np.array([[0.9, 0.2, 0.8, 0.6, 0.1, 0.3, 0.4, 0.7], [0.9, 0.3, 0.2, 0.1, 0.2, 0.9, 0.35, 0.8]]),
    [0.5, 0.3],
)


def test_error_overlap_by_hand():
    assert error_overlap(Y, *PAIR) == pytest.approx(
        {
            "error rate a": 4 / 8,
            "error rate b": 3 / 8,
            "disagreement": 5 / 8,
            "both wrong": 1 / 8,
            "error overlap": 1 / 6,
            # independent errors at rates 1/2 and 3/8 would share 3/16 of the cases, and
            # 3/16 / (1/2 + 3/8 - 3/16) = 3/11 of the errors of either
            "chance overlap": 3 / 11,
            "overlap / chance": (1 / 6) / (3 / 11),
        }
    )
    same = error_overlap(Y, np.stack([PAIR[0][0]] * 2), [0.5, 0.5])
    assert same["error overlap"] == 1 and same["disagreement"] == 0
    with pytest.raises(ValueError, match=r"shape \(2, 8\).*got shapes \(8,\) and \(2,\)"):
        error_overlap(Y, PAIR[0][0], PAIR[1])


def test_overlap_difference_is_paired_over_patients():
    identical = overlap_difference(Y, PAIR, PAIR, n_boot=200)
    assert all(v == (0.0, 0.0, 0.0) for v in identical.values()), "a pair minus itself is 0"
    agreeing = (np.stack([PAIR[0][0]] * 2), [0.5, 0.5])  # the same mistakes twice
    patients = ["a", "a", "b", "b", "c", "c", "d", "d"]
    result = overlap_difference(Y, PAIR, agreeing, groups=patients, n_boot=300)
    difference, low, high = result["error overlap"]
    assert difference == pytest.approx(1 - 1 / 6)
    assert low <= difference <= high
    difference, low, high = result["disagreement"]
    assert difference == pytest.approx(-5 / 8) and low <= difference <= high < 0
    with pytest.raises(ValueError, match="groups has 3 ids but there are 8 cases"):
        overlap_difference(Y, PAIR, agreeing, groups=["a", "b", "c"])


def decided(wrong: np.ndarray) -> np.ndarray:
    """Probabilities that err exactly on `wrong`, for label 1 and a threshold of 0.5."""
    return np.where(wrong, 0.0, 1.0)


# 10,000 cases, label 1; model a errs on every 10th case. b errs independently of a (each digit
# of the case number decides one model): b_same 10% of the time, b_more 40%, b_twin like a.
CASES = np.arange(10_000)
WRONG_A = CASES % 10 == 0
ALL_PNEUMONIA = np.ones(CASES.size, dtype=int)


def pair(wrong_b: np.ndarray) -> tuple[np.ndarray, list[float]]:
    return np.stack([decided(WRONG_A), decided(wrong_b)]), [0.5, 0.5]


def test_independent_errors_overlap_as_chance_says_at_any_error_rate():
    for rate in (1, 4):
        measures = error_overlap(ALL_PNEUMONIA, *pair((CASES // 10) % 10 < rate))
        assert measures["both wrong"] == pytest.approx(0.1 * rate / 10)
        assert measures["error overlap"] == pytest.approx(measures["chance overlap"])
        assert measures["overlap / chance"] == pytest.approx(1)


def test_the_verdict_reads_the_overlap_against_chance_not_the_raw_overlap():
    same_rate, more_errors = pair((CASES // 10) % 10 == 0), pair((CASES // 10) % 10 < 4)
    result = overlap_difference(ALL_PNEUMONIA, same_rate, more_errors, n_boot=300)
    # the raw overlap grows with b's error rate alone: both pairs err independently
    assert result["error overlap"][1] > 0
    assert result["overlap / chance"][0] == pytest.approx(0)
    assert overlap_verdict(result, unit="images", first="seed", second="depth") == (
        "These images do not settle which pair's errors overlap less, each measured against the "
        "overlap its error rates give by chance (the interval includes 0). The pairs' error "
        "rates differ as well (an interval of a rate excludes 0): the raw error overlap moves "
        "with them, and the ratio takes out the part that chance gives but not the ceiling (the "
        "lower rate over the higher), which the rates also move."
    )


def test_the_verdict_names_the_pair_whose_errors_overlap_less():
    independent, twin = pair((CASES // 10) % 10 == 0), pair(WRONG_A)
    result = overlap_difference(ALL_PNEUMONIA, independent, twin, n_boot=300)
    assert overlap_verdict(result, first="seed", second="depth").startswith(
        "The seed's errors overlap less than the depth's, each measured against"
    )
    assert overlap_verdict(result).endswith(
        "These patients do not tell the pairs' error rates apart."
    )
    reverse = overlap_difference(ALL_PNEUMONIA, twin, independent, n_boot=300)
    assert overlap_verdict(reverse, first="seed", second="depth").startswith(
        "The depth's errors overlap less than the seed's"
    )


def test_no_error_gives_no_verdict_instead_of_not_settled():
    flawless = pair(np.zeros(CASES.size, dtype=bool))  # model b never errs: nothing to share
    result = overlap_difference(ALL_PNEUMONIA, pair(WRONG_A), flawless, n_boot=50)
    assert np.isnan(result["overlap / chance"][0])
    assert overlap_verdict(result, unit="images") == (
        "No verdict: a model of one pair makes no error on these images, so that pair's overlap "
        "against chance is undefined: there are no shared mistakes to compare."
    )
