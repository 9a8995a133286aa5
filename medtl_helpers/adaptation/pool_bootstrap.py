"""The bootstrap of a few-shot evaluation pool over its units (notebook 09).

The intervals of `few_shot` are Monte-Carlo errors: they say how a mean over episodes would move
with other episodes drawn from the *same* pool. The pool is itself a sample, of patients on a
Kermany folder and of images on PneumoniaMNIST (`FeaturePool.unit`), and another sample would
give other episodes. This module resamples the pool's units with replacement, as
`metrics.bootstrap` does for a test set, and rescores every method from the results
`score_method` stored per (episode, query image): each query image counts as often as its unit
was drawn (not at all if it was not drawn), each episode's score is recomputed with those
weights, and the method's score is the mean over the episodes still scored (for AUROC, those
whose query kept both classes).

**The support sets are not resampled**: each method keeps what it adapted to on the episode's
support, so the interval covers the query side of the pool only. Every method of a cell is
rescored with the same resamples (same seed, same episodes), so differences stay paired.
"""

from __future__ import annotations

import warnings

import numpy as np

from medtl_helpers.metrics.bootstrap import _resample_weights

# Keeps each (resamples x episodes x query) weight array near 8 MB.
_CHUNK_CELLS = 1_000_000


def weighted_episode_scores(
    weights: np.ndarray, truth: np.ndarray, p: np.ndarray, correct: np.ndarray, metric: str
) -> np.ndarray:
    """Per resample and episode, the weighted query `metric` ("accuracy" or "auroc").

    `weights` is (resamples, episodes, query); `truth` (true labels), `p` (P(PNEUMONIA)) and
    `correct` are (episodes, query). A weighted AUROC counts each positive-negative pair with the
    product of their weights, ties as one half. NaN where an episode has no weight left (for
    AUROC: no weight in one class).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return (weights * correct).sum(-1) / weights.sum(-1)
        if metric != "auroc":
            raise ValueError(f"metric must be 'accuracy' or 'auroc', got {metric!r}")
        positive, negative = weights * (truth == 1), weights * (truth == 0)
        # above[e, i, j]: how much query i ranks above query j in episode e (1, 1/2 or 0).
        above = (p[:, :, None] > p[:, None, :]) + 0.5 * (p[:, :, None] == p[:, None, :])
        wins = (positive.transpose(1, 0, 2) @ above).transpose(1, 0, 2)  # (resamples, E, Q)
        pairs = positive.sum(-1) * negative.sum(-1)
        return (wins * negative).sum(-1) / pairs


def resampled_scores(row: dict, metric: str = "accuracy", n_boot: int = 1000, seed: int = 0):
    """One method's `metric` (a row of `score_method`) in each of `n_boot` resamples of its
    pool's units: an array (n_boot,), NaN for a resample that left no episode scored."""
    unit = row.get("query_unit")
    if unit is None:
        raise ValueError(
            f"the row of {row.get('method')!r} holds no per-query results: score it with "
            "score_method on episodes that share one query size"
        )
    rng = np.random.default_rng(seed)
    everyone = np.arange(row["pool_units"])
    chunk = max(1, _CHUNK_CELLS // unit.size)
    out = []
    for start in range(0, n_boot, chunk):
        weights = _resample_weights(rng, everyone, min(chunk, n_boot - start))[:, unit]
        per_episode = weighted_episode_scores(
            weights, row["query_truth"], row["query_p"], row["query_correct"], metric
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no episode left
            out.append(np.nanmean(per_episode, axis=1))
    return np.concatenate(out)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def pool_interval(
    row: dict, metric: str = "accuracy", n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high): a method's mean `metric` over its episodes and the percentile interval
    of the bootstrap over the pool's units (`row["unit"]`)."""
    low, high = _percentiles(resampled_scores(row, metric, n_boot, seed), level)
    return float(np.mean(row[f"{metric}_per_episode"])), low, high


def pool_difference(
    row: dict,
    control: dict,
    metric: str = "accuracy",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(mean, low, high) of `row`'s method minus `control`'s, both scored on the same episodes:
    the mean per-episode difference and the bootstrap interval over the pool's units, with the
    same resamples for both methods (`pool_contrast` with weights 1 and -1, after checking that
    the episodes, not only their query images, are the same)."""
    if row["episode_key"] != control["episode_key"]:
        raise ValueError(
            f"{row.get('method')!r} and {control.get('method')!r} were not scored on the same "
            "episodes"
        )
    return pool_contrast([(1.0, row), (-1.0, control)], metric, n_boot, seed, level)


def pool_contrast(
    terms: list[tuple[float, dict]],
    metric: str = "accuracy",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(mean, low, high) of Σ c·score over (c, row) `terms`: rows scored on the same query images
    in the same order (several methods on one set of episodes, or a set of episodes and its
    swapped twins, `swap_labels`), each episode set against itself. The mean is over episodes;
    the interval is the bootstrap over the pool's units, with the same resamples for every row.

    True minus swapped is `[(1, true), (-1, swapped)]`; the difference of two twin means is
    `[(.5, true_a), (.5, swapped_a), (-.5, true_b), (-.5, swapped_b)]`."""
    first = terms[0][1]
    for _, row in terms[1:]:
        same = row["pool_units"] == first["pool_units"] and row["query_unit"] is not None
        if not (same and np.array_equal(row["query_unit"], first["query_unit"])):
            raise ValueError(
                f"{row.get('method')!r} and {first.get('method')!r} were not scored on the same "
                "query images: a contrast needs the same episodes, or their swapped twins"
            )
    mean = sum(c * np.mean(row[f"{metric}_per_episode"]) for c, row in terms)
    resampled = sum(c * resampled_scores(row, metric, n_boot, seed) for c, row in terms)
    return (float(mean), *_percentiles(resampled, level))
