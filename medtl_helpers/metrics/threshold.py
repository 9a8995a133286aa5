"""Choosing the decision threshold on validation predictions, by Youden's J or a target sensitivity,
and how much that choice moves when the validation patients are drawn again.

The threshold is part of the model: choose it on VALIDATION predictions, then report the test
metrics at that fixed threshold. Choosing it on the test set would flatter every number. It is
also an estimate: Youden's threshold is the best point of an empirical curve over the validation
patients (images, where a source has no patient ids), and `threshold_spread` shows how far it
moves on another draw of them.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from medtl_helpers.metrics.bootstrap import _group_index
from medtl_helpers.metrics.rates import labels_and_probabilities, require_classes

RULES = ("youden", "sensitivity")


def choose_threshold(
    y: ArrayLike, p: ArrayLike, rule: str = "youden", target: float = 0.95
) -> float:
    """Pick a decision threshold on VALIDATION predictions; never choose it on the test set.

    Candidates are the unique scores. `rule="youden"` maximises J = sensitivity + specificity - 1;
    ties go to the candidate closest to 0.5, then to the higher one. `rule="sensitivity"` returns
    the highest candidate whose sensitivity is at least `target`: the best specificity under that
    constraint. Where Youden's threshold falls short of the target, this one lies below it and
    costs specificity; where Youden's already reaches the target, it lies above it and gives
    sensitivity back for specificity.
    """
    y, p = labels_and_probabilities(y, p)
    require_classes(y, "choosing a threshold")
    _check_rule(rule, target)
    return _pick(y, p, rule, target)


def threshold_spread(
    y: ArrayLike,
    p: ArrayLike,
    groups: ArrayLike | None = None,
    rule: str = "youden",
    target: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """The threshold `choose_threshold` picks on all cases, and its bootstrap spread.

    Each of `n_boot` resamples draws the cases (or whole `groups`, e.g. `ImageSet.patients`) with
    replacement, as `bootstrap_ci` does, and chooses the threshold again by the same rule.
    Returns `threshold` (on all cases) and the `low`, `median` and `high` percentiles of the
    re-chosen thresholds (`low`/`high` hold `level` of them between them). Resamples holding a
    single class are skipped, with a warning.
    """
    y, p = labels_and_probabilities(y, p)
    require_classes(y, "threshold_spread")
    _check_rule(rule, target)
    cluster = _group_index(groups, y.size)
    members = np.split(np.argsort(cluster, kind="stable"), np.cumsum(np.bincount(cluster))[:-1])
    rng = np.random.default_rng(seed)
    chosen = []
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        if 0 < y[idx].sum() < idx.size:
            chosen.append(_pick(y[idx], p[idx], rule, target))
    if not chosen:
        raise ValueError("every bootstrap resample held a single class; the split is too small")
    if len(chosen) < n_boot:
        warnings.warn(
            f"{n_boot - len(chosen)} of {n_boot} resamples held a single class and were skipped",
            stacklevel=2,
        )
    tail = 100 * (1 - level) / 2
    low, median, high = np.percentile(chosen, [tail, 50, 100 - tail])
    return {
        "threshold": _pick(y, p, rule, target),
        "low": float(low),
        "median": float(median),
        "high": float(high),
    }


def _check_rule(rule: str, target: float) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; use 'youden' or 'sensitivity'")
    if rule == "sensitivity" and not 0 < target <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target}")


def _pick(y: np.ndarray, p: np.ndarray, rule: str, target: float) -> float:
    """`choose_threshold` on checked labels and scores holding both classes."""
    # Every unique score is a threshold of the full curve; the first point is an extra threshold
    # above them all (nothing flagged), which no one would choose.
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    candidates, sens, spec = thresholds[1:], tpr[1:], 1 - fpr[1:]
    if rule == "sensitivity":
        return float(candidates[sens >= target].max())
    j = sens + spec - 1
    # The tolerance treats J values that differ only by rounding as the tie they are.
    best = candidates[np.isclose(j, j.max(), rtol=0, atol=1e-12)]
    distance = np.abs(best - 0.5)
    return float(best[np.isclose(distance, distance.min(), rtol=0, atol=1e-12)].max())
