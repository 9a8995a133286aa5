"""The paired bootstrap of a difference: both arms on the same resample of patients."""

import numpy as np
import pytest

from medtl_helpers.metrics import (
    bootstrap_ci,
    difference_table,
    difference_verdict,
    paired_difference,
)
from medtl_helpers.metrics.paired import SingleClassResamples


def _scores(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p_a = np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(0, 0.3, n), 0, 1)
    return y, p_a


def test_identical_arms_differ_by_exactly_zero():
    y, p = _scores()
    result = paired_difference(y, p, p.copy(), 0.5, n_boot=200)
    for name, (diff, low, high) in result.items():
        assert (diff, low, high) == (0.0, 0.0, 0.0), name


def test_a_small_consistent_gain_is_found_though_the_separate_intervals_overlap():
    y, p_a = _scores()
    # b is a with every positive nudged up a little: better on every resample, by a small margin.
    p_b = np.where(y == 1, np.minimum(p_a + 0.03, 1.0), p_a)
    diff, low, high = paired_difference(y, p_a, p_b, 0.5, n_boot=500)["auroc"]
    assert 0 < low <= diff <= high
    a_low, a_high = bootstrap_ci(y, p_a, 0.5, n_boot=500)["auroc"]
    b_low, b_high = bootstrap_ci(y, p_b, 0.5, n_boot=500)["auroc"]
    assert b_low < a_high, "the unpaired intervals overlap: only the pairing shows the gain"


def test_each_arm_keeps_its_own_threshold():
    y, p = _scores()
    diff, low, high = paired_difference(y, p, p, 0.5, 0.3, n_boot=200)["sensitivity"]
    expected = np.mean(p[y == 1] >= 0.3) - np.mean(p[y == 1] >= 0.5)
    assert diff == pytest.approx(expected)
    assert low >= 0 and high > 0


def test_whole_patients_are_resampled_together():
    y, p_a = _scores(n=200)
    p_b = np.where(y == 1, np.minimum(p_a + 0.03, 1.0), p_a)
    unique = paired_difference(y, p_a, p_b, groups=[f"{i:04d}" for i in range(200)], n_boot=300)
    alone = paired_difference(y, p_a, p_b, n_boot=300)
    assert unique["auroc"] == pytest.approx(alone["auroc"])
    # Every image duplicated under one patient id: the interval must not shrink as if there were
    # twice as many independent cases.
    twice = paired_difference(
        np.r_[y, y], np.r_[p_a, p_a], np.r_[p_b, p_b], groups=[f"{i:04d}" for i in range(200)] * 2
    )
    naive = paired_difference(np.r_[y, y], np.r_[p_a, p_a], np.r_[p_b, p_b])
    assert twice["auroc"][2] - twice["auroc"][1] > 1.2 * (naive["auroc"][2] - naive["auroc"][1])


def test_scores_of_different_cases_are_refused():
    y, p = _scores()
    with pytest.raises(ValueError, match="p_a has 300 scores but p_b has 299"):
        paired_difference(y, p, p[:-1])


def test_verdicts_read_the_interval():
    assert difference_verdict(0.01, 0.03) == "b is better"
    assert difference_verdict(-0.03, -0.01, "soft vote", "member") == "member is better"
    assert difference_verdict(-0.01, 0.02) == (
        "not settled by these patients (the interval includes 0)"
    )
    assert "these images" in difference_verdict(-0.01, 0.02, unit="images")
    y, p = _scores()
    table = difference_table(paired_difference(y, p, p, n_boot=50))
    assert list(table.columns) == ["difference", "low", "high", "verdict"]
    assert table.loc["auroc", "difference"] == 0.0
    by_image = difference_table(paired_difference(y, p, p, n_boot=50), unit="images")
    assert by_image.loc["auroc", "verdict"].startswith("not settled by these images")


def test_a_resample_of_one_class_only_is_refused_by_name():
    # Two cases: seed 0 draws the same case twice, so the only resample has one class. This
    # raised a bare IndexError from np.percentile before.
    with pytest.raises(
        ValueError, match=r"1 of 1 paired bootstrap resamples drew a single class.*no interval"
    ):
        paired_difference([0, 1], [0.2, 0.8], [0.8, 0.2], n_boot=1, seed=0)


def test_an_interval_resting_on_a_few_positive_patients_is_flagged_not_to_be_read():
    # Three positive images of one patient: about e**-1 of the resamples miss that patient. Their
    # AUROC was dropped silently before, and the interval rested on the rest.
    y = np.r_[np.zeros(60, int), np.ones(3, int)]
    p = np.linspace(0.0, 1.0, y.size)
    groups = [f"n{i}" for i in range(60)] + ["p0"] * 3
    with pytest.warns(UserWarning, match="paired bootstrap resamples") as caught:
        paired_difference(y, p, p[::-1].copy(), groups=groups)
    message = str(caught[0].message)
    dropped = int(message.split(" of 1000 ")[0])
    assert 300 < dropped < 450
    assert "(3 positive and 60 negative cases)" in message
    assert "too few groups (patients) holding it" in message
    assert "Do not read it; score both arms on a larger set" in message
    assert caught[0].message.dropped == dropped and caught[0].message.readable is False


def test_a_few_single_class_resamples_are_counted_in_a_warning():
    # Three positives, each its own case: about e**-3 of the resamples draw none of them.
    y = np.r_[np.zeros(60, int), np.ones(3, int)]
    p = np.linspace(0.0, 1.0, y.size)
    with pytest.warns(UserWarning, match=r"of 1000 paired bootstrap resamples") as caught:
        result = paired_difference(y, p, p, n_boot=1000)
    message = str(caught[0].message)
    dropped = int(message.split(" of ")[0])
    assert 20 < dropped < 100 and "Do not read it" not in message
    assert isinstance(caught[0].message, SingleClassResamples)
    assert caught[0].message.dropped == dropped and caught[0].message.readable is True
    assert result["auroc"] == (0.0, 0.0, 0.0)
