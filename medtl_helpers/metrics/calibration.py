"""Calibration: does a predicted p = 0.8 come true for 80% of the cases? Bins and their error.

Counted here rather than taken from scikit-learn's `calibration_curve`: it returns only the
observed and predicted rate of each non-empty bin, not the case counts that weight the expected
calibration error (and size the reliability diagram's markers), and it puts a p that falls on a
bin edge into the lower bin, where the course's bins are [k/n, (k+1)/n).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from medtl_helpers.metrics.rates import labels_and_probabilities


def calibration_bins(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Per equal-width bin of `p` on [0, 1]: case count, sum of `p` and number of PNEUMONIA cases.

    A bin holds p in [k/n, (k+1)/n); p = 1.0 goes in the last bin, not in an extra one.
    """
    y, p = labels_and_probabilities(y, p)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("calibration needs probabilities in [0, 1]")
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    return {
        "count": np.bincount(bins, minlength=n_bins),
        "p_sum": np.bincount(bins, weights=p, minlength=n_bins),
        "positives": np.bincount(bins, weights=y, minlength=n_bins),
    }


def expected_calibration_error(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Case-weighted mean gap |observed rate - mean predicted p| over equal-width bins on [0, 1]."""
    bins = calibration_bins(y, p, n_bins)
    return float(np.abs(bins["positives"] - bins["p_sum"]).sum() / bins["count"].sum())
