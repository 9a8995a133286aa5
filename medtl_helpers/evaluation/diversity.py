"""Disagreement and error overlap: how differently two models err on the same cases.

A vote can only fix a mistake that not every member makes. For two models on the same labelled
cases, each deciding with its own threshold (p >= threshold), this module counts:

- disagreement: the share of cases the two decide differently (only there can a vote change
  anything);
- both wrong: the share of cases both get wrong (no vote of the two fixes these);
- error overlap: both wrong / either wrong, the Jaccard index of the two error sets: 1 when they
  make exactly the same mistakes, 0 when they never err on the same case.

All three move with accuracy too (a model that errs more can share less of its errors), so the
two error rates come with them. `overlap_difference` compares two pairs scored on the same cases
with a paired bootstrap over patients, as `metrics.paired_difference` does for two models.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from medtl_helpers.metrics.bootstrap import _group_index, _resample_weights

MEASURES = ("error rate a", "error rate b", "disagreement", "both wrong", "error overlap")
Pair = tuple[ArrayLike, ArrayLike]  # (probabilities of shape (2, cases), the two thresholds)


def pair_errors(y: ArrayLike, probabilities: ArrayLike, thresholds: ArrayLike):
    """Which cases each model of a pair gets wrong: two boolean arrays, one per model."""
    y = np.asarray(y).reshape(-1)
    probs = np.asarray(probabilities, dtype=np.float64)
    limits = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if probs.shape != (2, y.size) or limits.size != 2:
        raise ValueError(
            f"a pair is (probabilities of shape (2, {y.size}), two thresholds), got shapes "
            f"{probs.shape} and {limits.shape}: stack the two models' probabilities on these "
            "cases, e.g. np.stack([p_a, p_b]), and give each model its own threshold."
        )
    wrong = (probs >= limits[:, None]) != (y == 1)
    return wrong[0], wrong[1]


def _measures(w: np.ndarray, wrong_a: np.ndarray, wrong_b: np.ndarray) -> dict[str, np.ndarray]:
    """Each measure per row of case weights `w` (resamples x cases); NaN overlap without errors."""
    total = w.sum(axis=1)
    both = w @ (wrong_a & wrong_b)
    either = w @ (wrong_a | wrong_b)
    overlap = np.full(either.shape, np.nan)
    np.divide(both, either, out=overlap, where=either > 0)
    return {
        "error rate a": w @ wrong_a / total,
        "error rate b": w @ wrong_b / total,
        "disagreement": w @ (wrong_a != wrong_b) / total,
        "both wrong": both / total,
        "error overlap": overlap,
    }


def error_overlap(y: ArrayLike, probabilities: ArrayLike, thresholds: ArrayLike) -> dict:
    """The measures of the module's docstring for one pair on one set of cases.

    `probabilities` has shape (2, cases), e.g. `Ensemble.member_probabilities(val)` of a
    two-member ensemble; `thresholds` holds each model's own threshold.
    """
    wrong_a, wrong_b = pair_errors(y, probabilities, thresholds)
    values = _measures(np.ones((1, wrong_a.size)), wrong_a, wrong_b)
    return {name: float(values[name][0]) for name in MEASURES}


def overlap_difference(
    y: ArrayLike,
    first: Pair,
    second: Pair,
    groups: ArrayLike | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float, float]]:
    """Per measure, (second pair - first pair on all cases, low, high), paired over the cases.

    Both pairs are scored on the same resample of cases, or of whole `groups` (pass the
    patients), in every round. Rounds in which a pair makes no error at all leave its error
    overlap undefined and are left out of that measure's interval.
    """
    y = np.asarray(y).reshape(-1)
    errors = [pair_errors(y, *first), pair_errors(y, *second)]
    cluster = _group_index(groups, y.size)
    rng = np.random.default_rng(seed)
    chunk = max(1, 1_000_000 // y.size)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in MEASURES}
    for start in range(0, n_boot, chunk):
        w = _resample_weights(rng, cluster, min(chunk, n_boot - start))
        one, two = (_measures(w, *pair) for pair in errors)
        for name in MEASURES:
            parts[name].append(two[name] - one[name])
    whole = [error_overlap(y, *first), error_overlap(y, *second)]
    tail = 100 * (1 - level) / 2
    out = {}
    for name in MEASURES:
        samples = np.concatenate(parts[name])
        samples = samples[~np.isnan(samples)]
        low, high = np.percentile(samples, [tail, 100 - tail]) if samples.size else (np.nan,) * 2
        out[name] = (whole[1][name] - whole[0][name], float(low), float(high))
    return out
