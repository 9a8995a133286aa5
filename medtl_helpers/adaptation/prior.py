"""Prevalence (label) shift: what it does to a model's probabilities, and the prior correction.

At a site where only the share of PNEUMONIA differs, P(x | y) stays and P(y) changes, so by
Bayes' rule P(y | x) changes too: the target's odds are the source's odds times the ratio of the
priors' odds. Sensitivity and specificity at a fixed threshold are rates within a class and do
not show it; the positive and negative predictive values and the calibration of p do.

`adjust_to_prior` applies Bayes' rule for a known target prior. `em_prior` estimates that prior
from the target's unlabelled images by EM (Saerens, Latinne & Decaestecker, Neural Computation
2002): adjust the probabilities to the current guess, take their mean as the next guess, repeat.
It assumes the model's probabilities were calibrated at the source for `source_prior`, and that
only the prior moved; under a covariate shift its estimate means nothing. `prevalence_metrics`
scores PPV, NPV and the expected calibration error with intervals that resample whole patients.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from medtl_helpers.metrics.bootstrap import _group_index, _resample_weights
from medtl_helpers.metrics.rates import labels_and_probabilities

EPS = 1e-7  # keeps the odds finite for p of exactly 0 or 1


def _odds(x: ArrayLike) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float64), EPS, 1 - EPS)
    return x / (1 - x)


def adjust_to_prior(p: ArrayLike, source_prior: float, target_prior: float) -> np.ndarray:
    """P(PNEUMONIA | x) at a site whose prior is `target_prior`, from the source's `p`.

    odds_target(x) = odds_source(x) * odds(target_prior) / odds(source_prior).
    """
    for name, prior in (("source_prior", source_prior), ("target_prior", target_prior)):
        if not 0.0 < prior < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {prior}")
    odds = _odds(p) * _odds(target_prior) / _odds(source_prior)
    return odds / (1 + odds)


def em_prior(
    p: ArrayLike, source_prior: float, tol: float = 1e-6, max_iter: int = 1000
) -> tuple[float, np.ndarray]:
    """(estimated target prior, adjusted probabilities) from unlabelled target images' `p`.

    Starts at the source prior; each step adjusts `p` to the current prior and takes the mean of
    the adjusted probabilities as the next prior, until it moves less than `tol`.
    """
    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        raise ValueError("em_prior needs the probabilities of at least one image")
    prior = float(source_prior)
    for _ in range(max_iter):
        adjusted = adjust_to_prior(p, source_prior, prior)
        new = float(np.clip(adjusted.mean(), EPS, 1 - EPS))
        if abs(new - prior) < tol:
            prior = new
            break
        prior = new
    return prior, adjust_to_prior(p, source_prior, prior)


def _weighted_metrics(
    w: np.ndarray, y: np.ndarray, p: np.ndarray, threshold: float, n_bins: int
) -> dict[str, np.ndarray]:
    """PPV, NPV and ECE for each row of case weights `w` (rows x cases)."""
    flagged = p >= threshold
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    one_hot = np.eye(n_bins)[bins]  # (cases, bins)
    count, p_sum, positives = w @ one_hot, (w * p) @ one_hot, (w * y) @ one_hot
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "ppv": (w * (y * flagged)).sum(1) / (w * flagged).sum(1),
            "npv": (w * ((1 - y) * ~flagged)).sum(1) / (w * ~flagged).sum(1),
            "ece": np.abs(positives - p_sum).sum(1) / count.sum(1),
            "mean_p": (w * p).sum(1) / w.sum(1),
            "prevalence": (w * y).sum(1) / w.sum(1),
        }


def prevalence_metrics(
    y: ArrayLike,
    p: ArrayLike,
    threshold: float,
    groups: ArrayLike | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    n_bins: int = 10,
) -> dict[str, float]:
    """PPV, NPV, ECE, mean p and prevalence, each with a 95% percentile interval.

    `groups` (one id per image, e.g. `ImageSet.patients`) resamples whole groups; without it,
    images. A resample with no image flagged (or none unflagged) has no PPV (NPV) and is left
    out of that metric's interval.
    """
    y, p = labels_and_probabilities(y, p)
    y = y.astype(np.float64)
    weights = _resample_weights(np.random.default_rng(seed), _group_index(groups, y.size), n_boot)
    point = _weighted_metrics(np.ones((1, y.size)), y, p, threshold, n_bins)
    resampled = _weighted_metrics(weights, y, p, threshold, n_bins)
    out: dict[str, float] = {}
    for name, values in resampled.items():
        kept = values[np.isfinite(values)]
        low, high = np.percentile(kept, [2.5, 97.5]) if kept.size else (np.nan, np.nan)
        out.update({name: float(point[name][0]), f"{name}_low": low, f"{name}_high": high})
    return out
