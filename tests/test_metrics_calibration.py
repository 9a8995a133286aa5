"""Calibration bins and expected calibration error on hand-computed examples, cross-checked against
scikit-learn's `calibration_curve` away from bin edges (on an edge the two bin differently)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve

from medtl_helpers.metrics import calibration_bins, expected_calibration_error


def test_expected_calibration_error():
    # Bin [0.2, 0.3): mean p 0.25, 1 of 4 positive; bin [0.7, 0.8): mean p 0.75, 3 of 4.
    y, p = [1, 0, 0, 0, 1, 1, 1, 0], [0.25] * 4 + [0.75] * 4
    assert expected_calibration_error(y, p) == pytest.approx(0.0)
    # Bins: 0.1 -> |0 - 0.1| = 0.1; 0.2 -> |1 - 0.2| = 0.8; 0.9 and 0.95 share the last bin:
    # |0.5 - 0.925| = 0.425. Weighted: 0.1/4 + 0.8/4 + 0.425*2/4 = 0.4375.
    assert expected_calibration_error([0, 1, 1, 0], [0.1, 0.2, 0.9, 0.95]) == pytest.approx(0.4375)
    assert expected_calibration_error([1], [1.0]) == 0.0  # p = 1 lands in the last bin
    with pytest.raises(ValueError, match="probabilities in"):
        expected_calibration_error([0, 1], [0.1, 1.2])


def test_calibration_bins_count_cases_probabilities_and_positives_per_bin():
    # 0.05 -> bin 0; 0.1 -> bin 1 (the lower edge belongs to the bin); 0.95 and 1.0 -> bin 9.
    bins = calibration_bins(torch.tensor([0, 1, 1, 0]), np.array([0.05, 0.1, 0.95, 1.0]))
    assert bins["count"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins["positives"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert bins["p_sum"][[0, 1, 9]] == pytest.approx([0.05, 0.1, 1.95])
    assert calibration_bins([1, 0], [0.3, 0.6], n_bins=2)["count"].tolist() == [1, 1]
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        calibration_bins([0], [-0.1])


def test_calibration_matches_sklearn_calibration_curve_off_bin_edges():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 300)
    y = (rng.uniform(0, 1, 300) < p).astype(int)
    for n_bins in (5, 10, 15):
        observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
        count = np.histogram(p, bins=n_bins, range=(0, 1))[0]
        bins = calibration_bins(y, p, n_bins)
        kept = bins["count"] > 0
        assert bins["count"].tolist() == count.tolist()
        assert bins["positives"][kept] / count[kept] == pytest.approx(observed)
        assert bins["p_sum"][kept] / count[kept] == pytest.approx(predicted)
        ece = (count[kept] * np.abs(observed - predicted)).sum() / count.sum()
        assert expected_calibration_error(y, p, n_bins) == pytest.approx(ece)


def test_a_probability_on_a_bin_edge_is_binned_up_here_and_down_by_sklearn():
    # 0.05 and 0.1 share sklearn's first bin (0, 0.1]; here 0.1 opens the second bin [0.1, 0.2).
    observed, predicted = calibration_curve([0, 1], [0.05, 0.1], n_bins=10)
    assert observed.tolist() == [0.5] and predicted == pytest.approx([0.075])
    assert calibration_bins([0, 1], [0.05, 0.1])["count"][:2].tolist() == [1, 1]
