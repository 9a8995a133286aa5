"""The metrics the course reports for pneumonia (1) vs normal (0).

`y` holds 0/1 labels and `p` the predicted probability of PNEUMONIA; numpy arrays, torch tensors
and lists are all accepted. A case is predicted positive when `p >= threshold`. Accuracy alone
flatters a model on a 3:1 imbalanced test set, so every report also carries AUROC, sensitivity,
specificity and balanced accuracy, each with a bootstrap interval.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from medtl_helpers.data.records import CLASSES

METRICS = ("auroc", "accuracy", "sensitivity", "specificity", "balanced_accuracy")


def labels_and_probabilities(y, p) -> tuple[np.ndarray, np.ndarray]:
    """`y` as int64 0/1 and `p` as float64, both flat numpy; a clear error on a mismatch."""
    y, p = (
        v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for v in (y, p)
    )
    y, p = y.reshape(-1), p.reshape(-1).astype(np.float64)
    if y.shape != p.shape:
        raise ValueError(f"y has {y.size} labels but p has {p.size} probabilities")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 ({CLASSES[0]}) or 1 ({CLASSES[1]}), got {np.unique(y)}")
    return y.astype(np.int64), p


def _require(y: np.ndarray, metric: str, labels: tuple[int, ...] = (0, 1)) -> None:
    for label in labels:
        if not (y == label).any():
            if labels == (0, 1):
                raise ValueError(
                    f"{metric} needs both classes; the split has only {CLASSES[1 - label]} images"
                )
            raise ValueError(f"{metric} needs {CLASSES[label]} images; the split has none")


def _tie_group_auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC per row from case weights per tie group (columns in ascending score order).

    Mann-Whitney U: each positive scores 1 per negative ranked below it and 1/2 per tied negative,
    which is the rank formulation with tied ranks averaged.
    """
    below = np.cumsum(neg, axis=1) - neg
    wins = (pos * (below + 0.5 * neg)).sum(axis=1)
    return wins / (pos.sum(axis=1) * neg.sum(axis=1))


def auroc(y, p) -> float:
    """Area under the ROC curve: how often a PNEUMONIA case outscores a NORMAL one."""
    y, p = labels_and_probabilities(y, p)
    _require(y, "AUROC")
    _, group = np.unique(p, return_inverse=True)
    size = int(group.max()) + 1
    pos = np.bincount(group[y == 1], minlength=size)[None].astype(np.float64)
    neg = np.bincount(group[y == 0], minlength=size)[None].astype(np.float64)
    return float(_tie_group_auroc(pos, neg)[0])


def confusion(y, p, threshold: float) -> dict[str, int]:
    """Counts of true/false positives/negatives, predicting PNEUMONIA when p >= threshold."""
    y, p = labels_and_probabilities(y, p)
    pred = p >= threshold
    return {
        "tp": int((pred & (y == 1)).sum()),
        "fp": int((pred & (y == 0)).sum()),
        "tn": int((~pred & (y == 0)).sum()),
        "fn": int((~pred & (y == 1)).sum()),
    }


def accuracy(y, p, threshold: float = 0.5) -> float:
    c = confusion(y, p, threshold)
    return (c["tp"] + c["tn"]) / sum(c.values())


def sensitivity(y, p, threshold: float = 0.5) -> float:
    """Recall of PNEUMONIA: the share of sick patients the model flags."""
    _require(labels_and_probabilities(y, p)[0], "sensitivity", labels=(1,))
    c = confusion(y, p, threshold)
    return c["tp"] / (c["tp"] + c["fn"])


def specificity(y, p, threshold: float = 0.5) -> float:
    """Recall of NORMAL: the share of healthy patients the model leaves alone."""
    _require(labels_and_probabilities(y, p)[0], "specificity", labels=(0,))
    c = confusion(y, p, threshold)
    return c["tn"] / (c["tn"] + c["fp"])


def balanced_accuracy(y, p, threshold: float = 0.5) -> float:
    return (sensitivity(y, p, threshold) + specificity(y, p, threshold)) / 2


def choose_threshold(y, p, rule: str = "youden", target: float = 0.95) -> float:
    """Pick a decision threshold on VALIDATION predictions; never choose it on the test set.

    Candidates are the unique scores. `rule="youden"` maximises J = sensitivity + specificity - 1;
    ties go to the candidate closest to 0.5, then to the higher one. `rule="sensitivity"` returns
    the highest candidate whose sensitivity is at least `target`.
    """
    y, p = labels_and_probabilities(y, p)
    _require(y, "choosing a threshold")
    candidates = np.unique(p)
    pos, neg = np.sort(p[y == 1]), np.sort(p[y == 0])
    sens = 1 - np.searchsorted(pos, candidates, side="left") / pos.size
    spec = np.searchsorted(neg, candidates, side="left") / neg.size
    if rule == "youden":
        j = sens + spec - 1
        best = candidates[np.isclose(j, j.max(), rtol=0, atol=1e-12)]
        distance = np.abs(best - 0.5)
        return float(best[np.isclose(distance, distance.min(), rtol=0, atol=1e-12)].max())
    if rule == "sensitivity":
        if not 0 < target <= 1:
            raise ValueError(f"target sensitivity must be in (0, 1], got {target}")
        return float(candidates[sens >= target].max())
    raise ValueError(f"unknown rule {rule!r}; use 'youden' or 'sensitivity'")


def binary_metrics(y, p, threshold: float) -> dict:
    """Every reported metric at one fixed threshold, plus the threshold and the number of cases."""
    y, p = labels_and_probabilities(y, p)
    values = {"auroc": auroc(y, p)}
    for name, fn in zip(METRICS[1:], (accuracy, sensitivity, specificity, balanced_accuracy)):
        values[name] = fn(y, p, threshold)
    return {**values, "threshold": float(threshold), "n": int(y.size)}


def bootstrap_ci(
    y,
    p,
    threshold: float,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups=None,
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
    _require(y, "bootstrap_ci")
    if groups is None:
        cluster = np.arange(y.size)
    else:
        groups = np.asarray(list(groups), dtype=str)
        if groups.size != y.size:
            raise ValueError(f"groups has {groups.size} ids but there are {y.size} cases")
        _, cluster = np.unique(groups, return_inverse=True)
    n_groups = int(cluster.max()) + 1
    rng = np.random.default_rng(seed)
    _, score = np.unique(p, return_inverse=True)
    size = int(score.max()) + 1
    positive, predicted = y == 1, p >= threshold
    # Chunks keep the (resamples x cases) matrices near 16 MB whatever the test-set size.
    chunk = max(1, 2_000_000 // y.size)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        drawn = rng.integers(0, n_groups, size=(rows, n_groups))
        times = np.bincount(
            (np.arange(rows)[:, None] * n_groups + drawn).ravel(), minlength=rows * n_groups
        ).reshape(rows, n_groups)
        w = times[:, cluster].astype(np.float64)  # how often each case is in each resample
        w_pos, w_neg = w * positive, w * ~positive
        n_pos, n_neg = w_pos.sum(axis=1), w_neg.sum(axis=1)
        both = (n_pos > 0) & (n_neg > 0)
        key = (np.arange(rows)[:, None] * size + score).ravel()
        pos = np.bincount(key, weights=w_pos.ravel(), minlength=rows * size).reshape(rows, size)
        neg = np.bincount(key, weights=w_neg.ravel(), minlength=rows * size).reshape(rows, size)
        sens = (w_pos * predicted).sum(axis=1)[both] / n_pos[both]
        spec = (w_neg * ~predicted).sum(axis=1)[both] / n_neg[both]
        parts["auroc"].append(_tie_group_auroc(pos[both], neg[both]))
        parts["accuracy"].append((w * (predicted == positive)).sum(axis=1) / w.sum(axis=1))
        parts["sensitivity"].append(sens)
        parts["specificity"].append(spec)
        parts["balanced_accuracy"].append((sens + spec) / 2)
    kept = sum(part.size for part in parts["auroc"])
    if kept == 0:
        raise ValueError("every bootstrap resample held a single class; the split is too small")
    if kept < n_boot:
        warnings.warn(
            f"{n_boot - kept} of {n_boot} resamples held a single class and were skipped",
            stacklevel=2,
        )
    tail = 100 * (1 - level) / 2
    intervals = {}
    for name, part in parts.items():
        low, high = np.percentile(np.concatenate(part), [tail, 100 - tail])
        intervals[name] = (float(low), float(high))
    return intervals


def calibration_bins(y, p, n_bins: int = 10) -> dict[str, np.ndarray]:
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


def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """Case-weighted mean gap |observed rate - mean predicted p| over equal-width bins on [0, 1]."""
    bins = calibration_bins(y, p, n_bins)
    return float(np.abs(bins["positives"] - bins["p_sum"]).sum() / bins["count"].sum())


def metrics_table(values: dict, intervals: dict | None = None) -> str:
    """Plain-text table, one metric per row, with "[low, high]" where an interval is given."""
    names = [name for name in METRICS if name in values]
    names += [name for name in values if name not in names and name not in ("threshold", "n")]
    names += [name for name in ("threshold", "n") if name in values]
    width = max(len(name) for name in [*names, "metric"])
    lines = [f"{'metric':<{width}}  value" + ("  interval" if intervals else "")]
    for name in names:
        value = values[name]
        text = str(int(value)) if name == "n" else f"{value:.3f}"
        line = f"{name:<{width}}  {text:>5}"
        if intervals and name in intervals:
            low, high = intervals[name]
            line += f"  [{low:.3f}, {high:.3f}]"
        lines.append(line)
    return "\n".join(lines)
