"""The cases and hint tables of notebook 08's checkers (`nb08`): a made-up drift table, the hint
for each wrong site it picks, and the CORAL slips recognised by their value."""

from __future__ import annotations

import math

import pandas as pd
import torch


def drift_cases() -> pd.DataFrame:
    """A made-up drift table, 10 sites: each wrong reading it tests picks a site of its own.

    The mean over the layers picks exposure; the largest or the last layer picks blur, the first
    layer noise, the median low resolution, sd_ratio marker, the smallest mean the control, the
    mean of squares or the mean without a site's first row grid, the sum over the layers
    contrast, the mean over the first three layers (or a site's first three rows) gamma, and the
    mean of mean_shift / sd_ratio scatter (its spread shrank). Exposure has no row for the first
    layer (as if its hook recorded nothing), so it has 3 layer rows where the others have 4: a
    sum, or a mean after filling the missing layer with 0, then counts rows as well as drift.
    Other wrong readings may still pick exposure by chance.
    """
    shifts = {
        "source (held-out)": [0.05, 0.04, 0.03, 0.02],
        "blur": [0.10, 0.10, 0.10, 1.20],
        "exposure": [None, 1.00, 0.40, 0.40],
        "noise": [1.05, 0.40, 0.20, 0.10],
        "low resolution": [0.60, 0.60, 0.60, 0.10],
        "marker": [0.30, 0.30, 0.30, 0.30],
        "grid": [0.00, 0.00, 1.10, 1.10],
        "contrast": [0.57, 0.57, 0.57, 0.57],
        "gamma": [1.00, 1.00, 0.15, 0.00],
        "scatter": [0.50, 0.50, 0.50, 0.50],
    }
    ratios = {site: 1.0 + 0.1 * i for i, site in enumerate(shifts)}
    ratios.update(marker=3.0, scatter=0.6)
    rows = [
        (site, depth, f"layer{depth}.bn", shift, ratios[site])
        for site, values in shifts.items()
        for depth, shift in enumerate(values)
        if shift is not None
    ]
    return pd.DataFrame(rows, columns=["site", "depth", "layer", "mean_shift", "sd_ratio"])


DRIFT_HINTS = {
    "blur": "blur moves one layer furthest (1.2 source sds, its last) but little on average: "
    "the exercise asks for the average over a site's layers, not its largest or last layer",
    "noise": "noise moves the first layer most (1.05) but less than another site on average: a "
    "site's drift counts every one of its layers, not the first alone",
    "low resolution": "low resolution has the largest median (0.60); the exercise asks for the "
    "mean, which also counts a site's one far-drifted layer",
    "marker": "marker has the largest sd_ratio; the exercise asks for mean_shift",
    "grid": "grid leads in the mean of the squared shifts, and in the mean without each site's "
    "first row, but not in the plain mean over all of a site's rows (0.55): average mean_shift "
    "as it is, over every row the site has",
    "contrast": "contrast (4 rows of 0.57) leads when exposure's missing first layer counts as 0, "
    "as in a sum over the rows or in a pivot filled with fillna(0) before the mean; exposure has "
    "only 3 layer rows in this table, so average the rows each site has, without adding or "
    "filling the missing layer",
    "gamma": "gamma leads over the first three layers (0.72) but its last layer did not move, "
    "so over all its layers it averages 0.54: average over every layer the site has, not the "
    "first few",
    "scatter": "scatter leads in mean_shift / sd_ratio (its spread shrank, sd_ratio 0.6) but "
    "averages 0.50 of mean_shift itself: the exercise asks for mean_shift alone",
    "source (held-out)": "that is the control, the smallest average drift; the exercise asks for "
    "the largest",
}


def _gap(cov_s: torch.Tensor, cov_t: torch.Tensor, scale: float) -> float:
    return float((cov_s - cov_t).pow(2).sum() / scale)


def _cov(x: torch.Tensor, divisor: float | None = None, centre: bool = True) -> torch.Tensor:
    centred = x - x.mean(0) if centre else x
    return centred.T @ centred / (divisor if divisor is not None else len(x) - 1)


MIXED_DIVISORS = (
    "one set's covariance divides by n - 1 and the other's by n: use the unbiased n - 1 for both "
    "(as torch.cov and np.cov do), so that identical sets give identical covariances"
)


def coral_slips(source: torch.Tensor, target: torch.Tensor) -> list[tuple[str, float]]:
    """(hint, value) for each common slip: the value it gives on (source, target)."""
    d = source.shape[1]
    s, t = _cov(source), _cov(target)
    biased_s, biased_t = _cov(source, len(source)), _cov(target, len(target))
    mixed = f"The source's and the target's covariances divide differently: {MIXED_DIVISORS}."
    return [
        ("Divide the squared norm by 4 d² (d = features per image).", _gap(s, t, 1)),
        ("Divide by 4 d² (d squared), not by 4 d: d = features per image.", _gap(s, t, 4 * d)),
        (
            "Square the Frobenius norm: sum the squared differences, no square root.",
            math.sqrt(_gap(s, t, 1)) / (4 * d * d),
        ),
        (
            "Use the unbiased covariance, dividing by n - 1 (as torch.cov and np.cov do).",
            _gap(biased_s, biased_t, 4 * d * d),
        ),
        (
            "Subtract each feature's mean before the product: a covariance is centred.",
            _gap(_cov(source, centre=False), _cov(target, centre=False), 4 * d * d),
        ),
        (mixed, _gap(s, biased_t, 4 * d * d)),
        (mixed, _gap(biased_s, t, 4 * d * d)),
    ]


def mixed_divisor_value(x: torch.Tensor) -> float:
    """coral(x, x) when one copy's covariance divides by n - 1 and the other's by n."""
    d = x.shape[1]
    return _gap(_cov(x), _cov(x, len(x)), 4 * d * d)
