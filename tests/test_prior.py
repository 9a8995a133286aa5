"""Prevalence shift: Bayes' prior adjustment, EM and BBSE estimates of a new prior, PPV/NPV/ECE."""

from __future__ import annotations

import numpy as np
import pytest

from medtl_helpers.adaptation.prior import (
    adjust_to_prior,
    bbse_prior,
    em_prior,
    loss_prior,
    prevalence_metrics,
    prior_estimates,
)
from medtl_helpers.metrics import expected_calibration_error


def calibrated_site(prior: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and the exact P(y=1 | x) of a model calibrated at prior 0.5: x ~ N(+-1, 1)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prior).astype(np.int64)
    x = rng.normal(2.0 * y - 1.0, 1.0)
    return y, 1 / (1 + np.exp(-2 * x))  # log-odds 2x at equal priors


def test_adjust_to_prior_is_bayes_rule_and_the_identity_for_equal_priors():
    # p = 0.5 at a source with prior 0.5, target prior 0.2: odds 1 * (0.25 / 1) -> p = 0.2.
    assert adjust_to_prior([0.5], 0.5, 0.2)[0] == pytest.approx(0.2)
    # p = 0.8 (odds 4), source prior 0.5 -> 0.25 (odds 1/3): odds 4/3, p = 4/7.
    assert adjust_to_prior([0.8], 0.5, 0.25)[0] == pytest.approx(4 / 7)
    p = np.linspace(0.01, 0.99, 7)
    assert np.allclose(adjust_to_prior(p, 0.3, 0.3), p)
    with pytest.raises(ValueError, match="target_prior must be in"):
        adjust_to_prior(p, 0.5, 1.0)


@pytest.mark.parametrize("prior", [0.1, 0.25, 0.5, 0.8])
def test_em_recovers_a_known_prevalence(prior):
    y, p = calibrated_site(prior, 20_000, seed=1)
    estimate, adjusted = em_prior(p, source_prior=0.5)
    assert estimate == pytest.approx(y.mean(), abs=0.02)
    assert adjusted.mean() == pytest.approx(estimate, abs=1e-4)
    # The adjusted probabilities are calibrated at the target; the source's are not.
    if prior != 0.5:
        assert expected_calibration_error(y, adjusted) < 0.02
        assert expected_calibration_error(y, p) > 0.05


def test_prevalence_metrics_on_a_hand_counted_example_with_patient_intervals():
    y = np.array([1, 1, 0, 0, 0, 1])
    p = np.array([0.9, 0.4, 0.7, 0.2, 0.1, 0.8])
    out = prevalence_metrics(y, p, 0.5, groups=list("aabbcc"), n_boot=200)
    assert out["ppv"] == pytest.approx(2 / 3)  # flagged: 0.9, 0.7, 0.8
    assert out["npv"] == pytest.approx(2 / 3)  # not flagged: 0.4 (sick), 0.2, 0.1
    assert out["ece"] == pytest.approx(expected_calibration_error(y, p))
    assert out["prevalence"] == pytest.approx(0.5)
    for name in ("ppv", "npv", "ece", "mean_p", "prevalence"):
        assert out[f"{name}_low"] <= out[name] <= out[f"{name}_high"]


def test_bbse_on_a_hand_counted_example_is_the_adjusted_flagged_share():
    # Source: 1 of 4 NORMAL flagged (FPR 0.25), 3 of 4 PNEUMONIA flagged (TPR 0.75).
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.9, 0.2, 0.8, 0.9, 0.7])
    # C = [[3/8, 1/8], [1/8, 3/8]], mu = [5/8, 3/8]: w = [1.5, 0.5], prior 0.5 * 0.5 = 0.25,
    # the same as (flagged share - FPR) / (TPR - FPR) = (0.375 - 0.25) / 0.5.
    target = np.array([0.9, 0.6, 0.5, 0.1, 0.2, 0.3, 0.4, 0.0])
    assert bbse_prior(y, p, target, threshold=0.5) == pytest.approx(0.25)
    assert bbse_prior(y, p, [0.9, 0.1], threshold=0.5) == pytest.approx(0.5)
    # A flagged share below the FPR gives a negative prior, clipped to 0.
    assert bbse_prior(y, p, [0.9] + [0.1] * 7, threshold=0.5) == 0.0


def test_bbse_refuses_a_singular_confusion_matrix_and_warns_on_an_ill_conditioned_one():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    same_rate = np.array([0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1])  # TPR = FPR = 0.5
    with pytest.raises(ValueError, match="flags PNEUMONIA and NORMAL images equally often"):
        bbse_prior(y, same_rate, [0.9, 0.1], threshold=0.5)
    with pytest.raises(ValueError, match="needs both classes"):
        bbse_prior(np.zeros(4, dtype=int), [0.1, 0.9, 0.2, 0.8], [0.5])
    # TPR 11/20, FPR 9/20: C = [[0.275, 0.225], [0.225, 0.275]], condition number 10.
    y = np.repeat([0, 1], 20)
    p = np.r_[np.repeat([0.9, 0.1], [9, 11]), np.repeat([0.9, 0.1], [11, 9])]
    with pytest.warns(UserWarning, match=r"ill-conditioned \(condition number 10\.0"):
        bbse_prior(y, p, [0.9, 0.1], threshold=0.5, max_condition=5)


def overconfident_site(prior: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The site of `calibrated_site` scored by a model whose log-odds are 3 times too large."""
    y, p = calibrated_site(prior, n, seed)
    return y, 1 / (1 + (1 / p - 1) ** 3)


@pytest.mark.parametrize("prior", [0.1, 0.25, 0.8])
def test_bbse_recovers_the_prior_where_em_is_misled_by_an_overconfident_model(prior):
    y_source, p_source = overconfident_site(0.5, 20_000, seed=0)
    y, p = overconfident_site(prior, 20_000, seed=1)
    # EM is off by 0.08, 0.05 and 0.06 (0.18 against 0.10 for the first).
    assert abs(em_prior(p, source_prior=0.5)[0] - y.mean()) > 0.04
    assert bbse_prior(y_source, p_source, p, threshold=0.5) == pytest.approx(y.mean(), abs=0.02)
    # With calibrated probabilities both recover it.
    y_source, p_source = calibrated_site(0.5, 20_000, seed=0)
    y, p = calibrated_site(prior, 20_000, seed=1)
    assert bbse_prior(y_source, p_source, p, threshold=0.5) == pytest.approx(y.mean(), abs=0.02)


def test_prior_estimates_point_values_intervals_and_whole_groups():
    y_source, p_source = calibrated_site(0.5, 300, seed=0)
    y, p = calibrated_site(0.2, 300, seed=1)
    out = prior_estimates(y_source, p_source, p, 0.5, n_boot=300)
    assert out["EM"][0] == pytest.approx(em_prior(p, 0.5)[0])
    assert out["BBSE"][0] == pytest.approx(bbse_prior(y_source, p_source, p, 0.5))
    for estimate, low, high in out.values():
        assert low <= estimate <= high and low <= y.mean() <= high
        assert 0.02 < high - low < 0.3
    # One group per side: every resample draws the same images, so the interval has no width.
    one = prior_estimates(y_source, p_source, p, 0.5, ["a"] * 300, ["b"] * 300, n_boot=50)
    for name, (estimate, low, high) in one.items():
        assert low == pytest.approx(estimate) and high == pytest.approx(estimate), name


def test_loss_prior_is_one_half_under_class_weights_whatever_the_share():
    assert loss_prior([1, 1, 1, 0]) == pytest.approx(0.5)
    assert loss_prior([0] * 9 + [1]) == pytest.approx(0.5)


def test_em_on_the_source_started_at_the_loss_prior_finds_the_source_share():
    # Probabilities calibrated at 1/2 (what a class-weighted loss trains) on a 0.75 source: EM
    # started at 1/2 moves to the share; started at the mean p it stays where it starts.
    y, p = calibrated_site(0.75, 20_000, seed=2)
    assert p.mean() > 0.6
    estimate, _ = em_prior(p, loss_prior(y))
    assert estimate == pytest.approx(y.mean(), abs=0.02)
    assert em_prior(p, float(p.mean()))[0] == pytest.approx(p.mean(), abs=1e-4)


def test_prior_estimates_corrects_from_the_loss_prior_not_the_mean_p():
    y_source, p_source = calibrated_site(0.75, 2_000, seed=0)
    y, p = calibrated_site(0.3, 2_000, seed=1)
    out = prior_estimates(y_source, p_source, p, 0.5, n_boot=100)
    assert out["EM"][0] == pytest.approx(em_prior(p, 0.5)[0])
    assert out["EM"][0] == pytest.approx(y.mean(), abs=0.03)
    # The old choice, the source's mean p, would have pulled the estimate far below the share.
    assert em_prior(p, float(p_source.mean()))[0] < y.mean() - 0.05
    explicit = prior_estimates(y_source, p_source, p, 0.5, n_boot=100, source_prior=0.3)
    assert explicit["EM"][0] == pytest.approx(em_prior(p, 0.3)[0])
