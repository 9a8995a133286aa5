"""threshold_spread: the bootstrap spread of the chosen threshold; and how the Youden threshold
follows a temperature or a shift of the logits (notebook 04, section 6)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_scores
from scipy.special import expit, logit

import medtl_helpers.metrics
from medtl_helpers.metrics import choose_threshold, threshold_spread


def test_spread_brackets_the_threshold_chosen_on_all_cases():
    y, p = random_scores(300, seed=1)
    spread = threshold_spread(y, p, n_boot=300, seed=0)
    assert spread["threshold"] == choose_threshold(y, p)
    assert spread["low"] <= spread["median"] <= spread["high"]
    assert spread["low"] <= spread["threshold"] <= spread["high"] and spread["low"] < spread["high"]
    assert set(spread) == {"threshold", "low", "median", "high"}
    again = threshold_spread(y, p, n_boot=300, seed=0)
    assert again == spread  # the seed fixes the resamples


def test_spread_is_zero_when_every_resample_picks_the_same_threshold():
    # Every positive scores 0.8 and every negative less: each resample's best cut is 0.8.
    y = np.array([0] * 20 + [1] * 20)
    p = np.r_[np.linspace(0.1, 0.4, 20), np.full(20, 0.8)]
    spread = threshold_spread(y, p, n_boot=200)
    assert spread == {"threshold": 0.8, "low": 0.8, "median": 0.8, "high": 0.8}


def test_groups_resample_whole_patients():
    # Two identical X-rays per child: resampling children must give exactly what resampling
    # the single X-rays gives (the same draws, each case counted twice, the same thresholds).
    y, p = random_scores(120, seed=2)
    twice_y, twice_p = np.repeat(y, 2), np.repeat(p, 2)
    children = np.repeat([f"child{i:03d}" for i in range(120)], 2)
    by_child = threshold_spread(twice_y, twice_p, groups=children, n_boot=200, seed=3)
    assert by_child == threshold_spread(y, p, n_boot=200, seed=3)
    by_image = threshold_spread(twice_y, twice_p, n_boot=200, seed=3)
    assert by_image["high"] - by_image["low"] < by_child["high"] - by_child["low"]


def test_spread_of_the_sensitivity_rule():
    y, p = random_scores(200, seed=4)
    spread = threshold_spread(y, p, rule="sensitivity", target=0.9, n_boot=200)
    assert spread["threshold"] == choose_threshold(y, p, rule="sensitivity", target=0.9)
    assert spread["low"] < spread["high"]


def test_spread_errors_and_single_class_resamples():
    y, p = random_scores(40, seed=5)
    with pytest.raises(ValueError, match="unknown rule 'best'; use 'youden' or 'sensitivity'"):
        threshold_spread(y, p, rule="best")
    with pytest.raises(ValueError, match=r"target sensitivity must be in \(0, 1\], got 1.5"):
        threshold_spread(y, p, rule="sensitivity", target=1.5)
    with pytest.raises(ValueError, match="groups has 3 ids but there are 40 cases"):
        threshold_spread(y, p, groups=["a", "b", "c"])
    with pytest.raises(ValueError, match="threshold_spread needs both classes"):
        threshold_spread([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.warns(UserWarning, match=r"of 100 resamples held a single class and were skipped"):
        spread = threshold_spread([0, 1, 0, 1], [0.1, 0.9, 0.3, 0.6], n_boot=100)
    assert spread["threshold"] == 0.6


def test_exported_from_metrics():
    assert "threshold_spread" in medtl_helpers.metrics.__all__


def test_temperature_scales_the_youden_logit_and_a_shift_moves_it():
    # Notebook 04's claim: dividing every logit by T divides Youden's threshold logit by T (so a
    # threshold at p = 0.5 stays there); adding b to every logit adds b to it. Continuous scores,
    # so no two thresholds tie for the best J.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    z = 1.5 * y - 0.4 + rng.normal(0, 1.2, 400)
    best = logit(choose_threshold(y, expit(z)))
    for temperature in (0.5, 2.0):
        scaled = logit(choose_threshold(y, expit(z / temperature)))
        assert scaled == pytest.approx(best / temperature, abs=1e-9)
    for shift in (-1.0, 1.0):
        shifted = logit(choose_threshold(y, expit(z + shift)))
        assert shifted == pytest.approx(best + shift, abs=1e-9)
    centred = z - best  # the same scores with Youden's threshold at logit 0, p = 0.5
    for temperature in (0.5, 2.0):
        assert choose_threshold(y, expit(centred / temperature)) == pytest.approx(0.5)


@pytest.mark.parametrize(("target", "above"), [(0.5, True), (0.95, False)])
def test_a_sensitivity_target_can_give_sensitivity_back_or_cost_specificity(target, above):
    """The highest threshold reaching the target lies above Youden's when Youden's reaches it."""
    from medtl_helpers.metrics import binary_metrics

    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.45, 0.5, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95])
    youden = choose_threshold(y, p)  # 0.6: sensitivity 5/6, specificity 1
    screening = choose_threshold(y, p, rule="sensitivity", target=target)
    at_youden, at_target = binary_metrics(y, p, youden), binary_metrics(y, p, screening)
    assert (screening > youden) is above and screening != youden
    if above:  # Youden's already reaches the target: sensitivity given back for specificity
        assert at_target["sensitivity"] < at_youden["sensitivity"]
        assert at_target["specificity"] >= at_youden["specificity"]
    else:  # Youden's falls short: reaching the target costs specificity
        assert at_target["sensitivity"] > at_youden["sensitivity"]
        assert at_target["specificity"] < at_youden["specificity"]
