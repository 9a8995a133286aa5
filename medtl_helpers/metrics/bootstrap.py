"""Bootstrap percentile intervals for the reported metrics, resampling whole patients if asked.

The course writes this one itself rather than looping over scikit-learn: all resamples of a chunk
are one (resamples x cases) matrix of weights, so a thousand resamples cost a few array passes.
A resample is a vector of how often each case was drawn; every metric is a weighted sum over it.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike

from medtl_helpers.metrics.rates import METRICS, labels_and_probabilities, require_classes


def bootstrap_ci(
    y: ArrayLike,
    p: ArrayLike,
    threshold: float,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: ArrayLike | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals for each metric of `binary_metrics`, resampling with replacement.

    `groups` (one id per case, e.g. `ImageSet.patients`) resamples whole groups: every X-ray of a
    drawn child comes along, as many times as the child is drawn. Images of one child tend to be
    right or wrong together, so resampling images alone gives intervals that are too narrow.
    Without `groups` each case is its own group. The threshold stays fixed: re-choosing it per
    resample would measure a different procedure. Resamples holding a single class are left out
    of the class-dependent metrics, with a warning.
    """
    y, p = labels_and_probabilities(y, p)
    require_classes(y, "bootstrap_ci")
    cluster = _group_index(groups, y.size)
    rng = np.random.default_rng(seed)
    _, score = np.unique(p, return_inverse=True)
    positive, predicted = y == 1, p >= threshold
    # Chunks keep the (resamples x cases) matrices near 16 MB whatever the test-set size.
    chunk = max(1, 2_000_000 // y.size)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for start in range(0, n_boot, chunk):
        w = _resample_weights(rng, cluster, min(chunk, n_boot - start))
        for name, values in _resample_metrics(w, positive, predicted, score).items():
            parts[name].append(values)
    samples = {name: np.concatenate(part) for name, part in parts.items()}
    kept = samples["auroc"].size
    if kept == 0:
        raise ValueError("every bootstrap resample held a single class; the split is too small")
    if kept < n_boot:
        warnings.warn(
            f"{n_boot - kept} of {n_boot} resamples held a single class and were skipped",
            stacklevel=2,
        )
    tail = 100 * (1 - level) / 2
    intervals = {}
    for name, values in samples.items():
        low, high = np.percentile(values, [tail, 100 - tail])
        intervals[name] = (float(low), float(high))
    return intervals


def _group_index(groups: ArrayLike | None, n_cases: int) -> np.ndarray:
    """Per case, the index 0..n_groups-1 of its group; without `groups`, each case alone."""
    if groups is None:
        return np.arange(n_cases)
    groups = np.asarray(list(groups), dtype=str)
    if groups.size != n_cases:
        raise ValueError(f"groups has {groups.size} ids but there are {n_cases} cases")
    return np.unique(groups, return_inverse=True)[1]


def _resample_weights(rng: np.random.Generator, cluster: np.ndarray, rows: int) -> np.ndarray:
    """(rows x cases) float weights: how often each case is in each of `rows` resamples.

    Each resample draws as many groups as there are, with replacement; a case counts as often as
    its group was drawn.
    """
    n_groups = int(cluster.max()) + 1
    drawn = rng.integers(0, n_groups, size=(rows, n_groups))
    # One bincount for all rows: row r's draws are offset into their own block of n_groups slots.
    times = np.bincount(
        (np.arange(rows)[:, None] * n_groups + drawn).ravel(), minlength=rows * n_groups
    ).reshape(rows, n_groups)
    return times[:, cluster].astype(np.float64)


def _resample_metrics(
    w: np.ndarray, positive: np.ndarray, predicted: np.ndarray, score: np.ndarray
) -> dict[str, np.ndarray]:
    """Each metric per resample (row of `w`); the class-dependent ones for two-class rows only.

    `positive` and `predicted` flag each case's label and prediction, `score` is its tie group.
    """
    w_pos, w_neg = w * positive, w * ~positive
    n_pos, n_neg = w_pos.sum(axis=1), w_neg.sum(axis=1)
    both = (n_pos > 0) & (n_neg > 0)
    pos, neg = _tie_group_weights(w_pos, score), _tie_group_weights(w_neg, score)
    sens = (w_pos * predicted).sum(axis=1)[both] / n_pos[both]
    spec = (w_neg * ~predicted).sum(axis=1)[both] / n_neg[both]
    return {
        "auroc": _tie_group_auroc(pos[both], neg[both]),
        "accuracy": (w * (predicted == positive)).sum(axis=1) / w.sum(axis=1),
        "sensitivity": sens,
        "specificity": spec,
        "balanced_accuracy": (sens + spec) / 2,
    }


def _tie_group_weights(w: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Per resample, the summed case weights of each tie group (equal `p`), in ascending order."""
    rows, size = w.shape[0], int(score.max()) + 1
    key = (np.arange(rows)[:, None] * size + score).ravel()
    return np.bincount(key, weights=w.ravel(), minlength=rows * size).reshape(rows, size)


def _tie_group_auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC per row from case weights per tie group (columns in ascending score order).

    Mann-Whitney U: each positive scores 1 per negative ranked below it and 1/2 per tied negative,
    which is the rank formulation with tied ranks averaged; `auroc` gets the same from scikit-learn.
    """
    below = np.cumsum(neg, axis=1) - neg
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    return wins / (pos.sum(axis=1) * neg.sum(axis=1))
