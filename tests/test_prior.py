"""Prevalence shift: Bayes' prior adjustment, the EM estimate of a new prior, PPV/NPV/ECE."""

from __future__ import annotations

import numpy as np
import pytest

from medtl_helpers.adaptation.prior import adjust_to_prior, em_prior, prevalence_metrics
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
