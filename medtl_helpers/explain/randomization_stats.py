"""The statistics of the randomisation check: rank correlations, a chance baseline, an interval.

`randomization_check` (in `cam`) correlates each image's trained map with its map from each random
network. On a map of a few cells, maps that have nothing to do with each other also rank the
cells alike now and then, so the share of maps that "survived" is read against `chance`: the same
share for the random network's map with its cells shuffled, a map unrelated to the trained one by
construction (same values, random places). Two random networks' maps are no such baseline: they
share the image and every stage that was not randomised, which is what the check looks for.

The gap between the two shares gets a bootstrap interval that resamples the images *and* the
random networks, as every map of one network shares its weights and every map of one image its
trained map. The reading has four outcomes: the check FAILS at a step where the whole interval
lies above 0; the maps are partly REVERSED where it lies wholly below 0 (fewer maps survive than
chance: not unrelated either); it passes where the whole interval lies below `TOLERANCE`;
elsewhere no failure is shown, but the data cannot exclude a gap up to the interval's upper end.

`check_images` draws the images the check (and the maps shown beside it) runs on: seeded, one per
patient, half of each class, rather than the first images of a set that may be sorted by class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

# An image's rank correlation above this is closer to the re-run's 1 than to an unrelated map's 0.
SURVIVES = 0.5
# The gap (survived - chance) a passing step may still have: a choice, a fifth of the maps.
TOLERANCE = 0.2


def check_images(labels, patients: Sequence[str], n: int, seed: int = 0) -> list[int]:
    """Indices of `n` images, one per patient, drawn with `seed`, half of each class.

    Each patient contributes one image, chosen at random; the classes take turns (lowest label
    first), so every prefix of even length is balanced as well; a class that runs out of patients
    leaves the rest to the others. Raises ValueError if the set has fewer than `n` patients.
    """
    labels = np.asarray(labels).ravel()
    rng = np.random.default_rng(seed)
    seen, by_class = set(), {int(c): [] for c in np.unique(labels)}
    for i in rng.permutation(len(labels)):
        if patients[i] not in seen:
            seen.add(patients[i])
            by_class[int(labels[i])].append(int(i))
    if len(seen) < n:
        raise ValueError(
            f"{n} images, one per patient, but the set has {len(seen)} patients: pass a smaller n"
        )
    turns = [iter(by_class[c]) for c in sorted(by_class)]
    picked: list[int] = []
    while len(picked) < n:
        for turn in list(turns):
            index = next(turn, None)
            if index is None:
                turns.remove(turn)
            elif len(picked) < n:
                picked.append(index)
    return picked


def rank_correlations(reference: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Spearman correlation of one map (any shape) with each of `maps` (M, same shape), NaN where
    either is flat: the Pearson correlation of their ranks, ties given their average rank."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    rows = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    if rows.shape[1] != ref.size:
        raise ValueError(f"maps differ in size: {ref.size} and {rows.shape[1]} values")
    if ref.size < 2 or np.ptp(ref) == 0:
        return np.full(len(rows), np.nan)
    a = rankdata(ref)
    a = (a - a.mean()) / np.linalg.norm(a - a.mean())
    b = rankdata(rows, axis=1)
    b = b - b.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (b @ a) / norms
    return np.where(norms > 0, np.clip(r, -1.0, 1.0), np.nan)


def gap_interval(
    gaps: np.ndarray, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `gaps` (networks, images; NaN = undefined),
    resampling the networks (rows) and the images (columns) independently, with replacement."""
    gaps = np.asarray(gaps, dtype=np.float64)
    defined = ~np.isnan(gaps)
    if not defined.any():
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n_nets, n_images = gaps.shape
    # how often each network and image is drawn in each resample
    w_nets = rng.multinomial(n_nets, np.full(n_nets, 1 / n_nets), size=resamples)
    w_images = rng.multinomial(n_images, np.full(n_images, 1 / n_images), size=resamples)
    total = np.einsum("bd,di,bi->b", w_nets, np.where(defined, gaps, 0.0), w_images)
    count = np.einsum("bd,di,bi->b", w_nets, defined.astype(np.float64), w_images)
    means = total[count > 0] / count[count > 0]
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def check_row(name: str, draws: np.ndarray, chance: np.ndarray | None = None) -> dict:
    """One row of `randomization_check` from the correlations of each network with the trained
    maps (networks, images; NaN for a flat map) and, for each, the share of its cell-shuffled maps
    above `SURVIVES` (`chance`, same shape; None for the re-run, which has no baseline)."""
    draws = np.asarray(draws, dtype=np.float64)
    defined = draws[~np.isnan(draws)]
    means = [d[~np.isnan(d)].mean() for d in draws if (~np.isnan(d)).any()]
    nan = float("nan")
    survived = np.where(np.isnan(draws), np.nan, (draws > SURVIVES).astype(np.float64))
    low, high, chance_share = nan, nan, nan
    if chance is not None and defined.size:
        low, high = gap_interval(survived - chance)
        chance_share = float(np.nanmean(np.where(np.isnan(draws), np.nan, chance)))
    return {
        "randomized": name,
        "mean spearman": float(defined.mean()) if defined.size else nan,
        "lowest": float(defined.min()) if defined.size else nan,
        "highest": float(defined.max()) if defined.size else nan,
        "survived": float((defined > SURVIVES).mean()) if defined.size else nan,
        "chance": chance_share,
        "gap low": low,
        "gap high": high,
        "draws": len(draws),
        "lowest draw mean": float(min(means)) if means else nan,
        "highest draw mean": float(max(means)) if means else nan,
        "flat maps": int(np.isnan(draws).sum()),
        "maps": int(defined.size),
    }


def randomization_reading(row: dict, tolerance: float = TOLERANCE) -> str:
    """What one row of `randomization_check` says about the check, read against chance.

    A correlation with the trained map of 1 is the same ranking of regions, 0 an unrelated one,
    and a negative value a partly reversed one. Above `SURVIVES`, closer to 1 than to 0, an
    image's map survived the randomisation. On a map of a few cells unrelated maps also cross
    `SURVIVES` by chance, so `survived` (the share of maps above it) is read against `chance`, the
    same share for the random maps with their cells shuffled, by the interval of the gap over
    images and random networks. The check FAILS at a step where the whole interval lies above 0:
    more maps survived than chance gives, so part of the maps is fixed by what was not randomised
    (there is no floor: a small gap measured precisely fails too). It passes where the whole
    interval lies below `tolerance`. Elsewhere no failure is shown, and a gap up to the
    interval's upper end is not excluded: an interval that reaches 0 is not evidence of no gap.
    A whole interval below 0 means fewer maps survived than chance: the maps are partly
    reversed, still shaped by the stages not randomised, rather than unrelated.
    """
    if np.isnan(row["mean spearman"]):
        return "undefined: every map was flat (no positive evidence), so nothing to compare"
    low, high = row["gap low"], row["gap high"]
    if np.isnan(low):
        return "no chance baseline: this row compares nothing random"
    shares = f"{row['survived']:.0%} against {row['chance']:.0%}, gap {low:+.0%} to {high:+.0%}"
    if low > 0:
        return (
            f"more maps survived than chance gives ({shares}): the check FAILS here, part of the "
            "maps is fixed by what was not randomised (the gap says how much)"
        )
    if high < 0:
        return (
            f"fewer maps survived than chance gives ({shares}): the maps are partly reversed, "
            "still shaped by the stages not randomised; the check does not fail, but the maps "
            "did not become unrelated"
        )
    if high < tolerance:
        return (
            "maps did not survive clearly more often than chance, and a gap above "
            f"{tolerance:+.0%} is excluded ({shares}): the check passes here"
        )
    return (
        f"maps did not survive clearly more often than chance ({shares}): no failure shown; a "
        f"gap up to {high:+.0%} is not excluded with this many images and networks"
    )
