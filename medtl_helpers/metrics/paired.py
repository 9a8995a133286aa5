"""A paired bootstrap of the difference between two models scored on the same patients.

When two arms are scored on the same validation or test patients, their intervals are not
independent: a hard patient is hard for both. Comparing two separate intervals by overlap then
throws that pairing away and misses differences that are consistent from patient to patient.
The paired bootstrap draws the patients once per resample and scores both arms on that same draw,
so the interval is the interval of the difference itself.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from medtl_helpers.metrics.bootstrap import _group_index, _resample_metrics, _resample_weights
from medtl_helpers.metrics.rates import (
    METRICS,
    binary_metrics,
    labels_and_probabilities,
    require_classes,
)

# More resamples than this share drawing a single class means one class sits in a couple of cases
# (or patients) only: the interval would rest on the resamples that happened to draw them.
MAX_DROPPED = 0.1


class SingleClassResamples(UserWarning):
    """Some paired resamples drew one class and were left out; `dropped` says how many and
    `readable` whether few enough went (at most `MAX_DROPPED`) for the interval to be read."""

    def __init__(self, message: str, dropped: int, readable: bool) -> None:
        super().__init__(message)
        self.dropped, self.readable = dropped, readable


def paired_difference(
    y: ArrayLike,
    p_a: ArrayLike,
    p_b: ArrayLike,
    threshold_a: float = 0.5,
    threshold_b: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: ArrayLike | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Per metric, (b - a on the whole set, low, high): a percentile interval of the difference.

    Both arms are scored on the same resample of cases (or of whole `groups`, e.g. patients) in
    every bootstrap round. Each arm keeps its own fixed threshold (`threshold_b` defaults to
    `threshold_a`). An interval that excludes 0 says the two differ on these patients; one that
    includes 0 says the data do not settle it (not that they are equal). A resample that draws
    a single class has no AUROC, sensitivity or specificity and is left out of those metrics,
    with a warning that counts them (and says not to read the interval above `MAX_DROPPED`).
    """
    n_a, n_b = np.asarray(p_a).size, np.asarray(p_b).size
    if n_a != n_b:
        raise ValueError(f"p_a has {n_a} scores but p_b has {n_b}: score both on the same cases")
    y, p_a = labels_and_probabilities(y, p_a)
    _, p_b = labels_and_probabilities(y, p_b)
    require_classes(y, "paired_difference")
    threshold_b = threshold_a if threshold_b is None else threshold_b
    cluster = _group_index(groups, y.size)
    rng = np.random.default_rng(seed)
    positive = y == 1
    arms = [
        (np.unique(p, return_inverse=True)[1], p >= t)
        for p, t in ((p_a, threshold_a), (p_b, threshold_b))
    ]
    chunk = max(1, 1_000_000 // y.size)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for start in range(0, n_boot, chunk):
        w = _resample_weights(rng, cluster, min(chunk, n_boot - start))
        (score_a, pred_a), (score_b, pred_b) = arms
        first = _resample_metrics(w, positive, pred_a, score_a)
        second = _resample_metrics(w, positive, pred_b, score_b)
        for name in METRICS:
            parts[name].append(second[name] - first[name])
    _require_enough_resamples(n_boot - sum(part.size for part in parts["auroc"]), n_boot, y)
    whole_a = binary_metrics(y, p_a, threshold_a)
    whole_b = binary_metrics(y, p_b, threshold_b)
    tail = 100 * (1 - level) / 2
    out = {}
    for name in METRICS:
        low, high = np.percentile(np.concatenate(parts[name]), [tail, 100 - tail])
        out[name] = (float(whole_b[name] - whole_a[name]), float(low), float(high))
    return out


def _require_enough_resamples(dropped: int, n_boot: int, y: np.ndarray) -> None:
    """Count the resamples left out for drawing one class in a warning; refuse if all were.

    The interval describes only the resamples that drew both classes, which over-represent the
    rarer one: above `MAX_DROPPED` of them gone, the warning says it says little about the set.
    """
    if dropped == 0:
        return
    counts = f"{int(y.sum())} positive and {int((y == 0).sum())} negative cases"
    message = (
        f"{dropped} of {n_boot} paired bootstrap resamples drew a single class ({counts}), so "
        "AUROC, sensitivity and specificity have no value on them and they were left out"
    )
    if dropped == n_boot:
        raise ValueError(f"{message}: there is no interval. Score both arms on a larger set.")
    if dropped > MAX_DROPPED * n_boot:
        message += (
            f". That is more than {MAX_DROPPED:.0%}: the set holds too few cases of one class, or "
            "too few groups (patients) holding it, and the interval rests on the resamples that "
            "drew them. Do not read it; score both arms on a larger set with more cases and "
            "patients of the rarer class"
        )
    readable = dropped <= MAX_DROPPED * n_boot
    warnings.warn(SingleClassResamples(message, dropped, readable), stacklevel=3)


def difference_verdict(
    low: float, high: float, better: str = "b", worse: str = "a", unit: str = "patients"
) -> str:
    """Read an interval of b - a: which arm it favours, or that the data do not settle it.

    `unit` names what was resampled (`ImageSet.unit`: "patients", or "images" on PneumoniaMNIST).
    """
    if low > 0:
        return f"{better} is better"
    if high < 0:
        return f"{worse} is better"
    return f"not settled by these {unit} (the interval includes 0)"


def difference_table(
    result: dict[str, tuple[float, float, float]], unit: str = "patients"
) -> pd.DataFrame:
    """The output of `paired_difference` as a table: difference, low, high, verdict per metric."""
    rows = {
        name: {
            "difference": d,
            "low": lo,
            "high": hi,
            "verdict": difference_verdict(lo, hi, unit=unit),
        }
        for name, (d, lo, hi) in result.items()
    }
    return pd.DataFrame(rows).T
