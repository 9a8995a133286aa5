"""Disagreement and error overlap: how differently two models err on the same cases.

A vote can only fix a mistake that not every member makes. For two models on the same labelled
cases, each deciding with its own threshold (p >= threshold), this module counts:

- disagreement: the share of cases the two decide differently (only there can a vote change
  anything);
- both wrong: the share of cases both get wrong (no vote of the two fixes these);
- error overlap: both wrong / either wrong, the Jaccard index of the two error sets: 1 when they
  make exactly the same mistakes, 0 when they never err on the same case.

All three move with the error rates a and b. Two models whose errors are independent still share
some by chance, a·b of the cases, and the more often they err the more they share; so the rates
come with the measures, and so does the overlap that chance alone gives:

- chance overlap: a·b / (a + b - a·b), the error overlap of two independent models with these
  error rates;
- overlap / chance: error overlap / chance overlap, 1 when the two share no more errors than
  independent models would, above 1 when their errors gather on the same cases.

The ratio takes out the overlap that chance gives, not every effect of the rates: the largest
possible overlap, min(a, b) / max(a, b), moves with them too. It is undefined (NaN) when either
model makes no error, as the error overlap is when neither does.

`overlap_difference` compares two pairs scored on the same cases with a paired bootstrap over
patients, as `metrics.paired_difference` does for two models; `overlap_verdict` reads it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from medtl_helpers.metrics.bootstrap import _group_index, _resample_weights

MEASURES = (
    "error rate a",
    "error rate b",
    "disagreement",
    "both wrong",
    "error overlap",
    "chance overlap",
    "overlap / chance",
)
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


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """top / bottom, NaN where bottom is 0."""
    out = np.full(np.shape(bottom), np.nan)
    np.divide(top, bottom, out=out, where=bottom > 0)
    return out


def _measures(w: np.ndarray, wrong_a: np.ndarray, wrong_b: np.ndarray) -> dict[str, np.ndarray]:
    """Each measure per row of case weights `w` (resamples x cases); NaN where undefined."""
    total = w.sum(axis=1)
    rate_a, rate_b = w @ wrong_a / total, w @ wrong_b / total
    overlap = _ratio(w @ (wrong_a & wrong_b), w @ (wrong_a | wrong_b))
    chance = _ratio(rate_a * rate_b, rate_a + rate_b - rate_a * rate_b)
    return {
        "error rate a": rate_a,
        "error rate b": rate_b,
        "disagreement": w @ (wrong_a != wrong_b) / total,
        "both wrong": w @ (wrong_a & wrong_b) / total,
        "error overlap": overlap,
        "chance overlap": chance,
        "overlap / chance": _ratio(overlap, chance),
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
    patients), in every round. Rounds in which a measure is undefined for a pair (no error at
    all, or none by one model for the ratio) are left out of that measure's interval; when it is
    undefined on all cases, the difference is NaN.
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


def overlap_verdict(
    result: dict[str, tuple[float, float, float]],
    unit: str = "patients",
    first: str = "first pair",
    second: str = "second pair",
) -> str:
    """Read `overlap_difference(y, first, second)`: which pair shares fewer errors than chance.

    The verdict reads "overlap / chance", not the raw error overlap, which moves with the error
    rates; a second sentence says whether the rates differ. `unit` names what was resampled
    (`ImageSet.unit`: "patients", or "images" on PneumoniaMNIST).
    """
    difference, low, high = result["overlap / chance"]
    if np.isnan([difference, low, high]).any():
        return (
            f"No verdict: a model of one pair makes no error on these {unit}, so that pair's "
            "overlap against chance is undefined: there are no shared mistakes to compare."
        )
    measured = "each measured against the overlap its error rates give by chance"
    if high < 0:
        verdict = f"The {second}'s errors overlap less than the {first}'s, {measured}."
    elif low > 0:
        verdict = f"The {first}'s errors overlap less than the {second}'s, {measured}."
    else:
        verdict = (
            f"These {unit} do not settle which pair's errors overlap less, {measured} "
            "(the interval includes 0)."
        )
    rates = [result[name] for name in ("error rate a", "error rate b")]
    if any(lo > 0 or hi < 0 for _, lo, hi in rates):
        return verdict + (
            " The pairs' error rates differ as well (an interval of a rate excludes 0): the raw "
            "error overlap moves with them, and the ratio takes out the part that chance gives "
            "but not the ceiling (the lower rate over the higher), which the rates also move."
        )
    return verdict + f" These {unit} do not tell the pairs' error rates apart."
