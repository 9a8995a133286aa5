"""A new site's operating point from a few of its own labelled patients.

A model moved to another hospital keeps the threshold it was validated with, but the scores it
gives there need not sit where they sat at home: the same threshold can flag most healthy
children. The cheapest repair a hospital can make is to label a few of its own patients and set
the threshold again on them, for the sensitivity it needs (`recalibrated_threshold`), or to move
the model's log-odds by one constant fitted on them (`refit_bias`). Both are judged only on the
site's *other* patients: the labelled ones chose the threshold, so a score on them flatters it.

`draw_calibration_patients` draws the labelled patients, whole and stratified by class;
`recalibration_draws` repeats draw, choice and scoring many times, so that the spread over draws
(what one hospital's draw may give) is seen next to the mean, each draw paired with the old
threshold on the same held-out patients.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from medtl_helpers.data.split import patient_groups_of
from medtl_helpers.errors import DataError, in_terms
from medtl_helpers.metrics.rates import labels_and_probabilities
from medtl_helpers.metrics.threshold import choose_threshold

RATES = ("sensitivity", "specificity", "ppv")
EPS = 1e-6


def _ask(how_many: str) -> str:
    return in_terms(f"ask for {how_many}", f"give --patients {how_many}")


def draw_calibration_patients(
    labels: ArrayLike, patients: ArrayLike, n_patients: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, rest): image indices of `n_patients` whole patients and of all the others.

    The draw is stratified: each class gets its share of the `n_patients` (by its number of
    patients, rounded, at least one each), so that no draw misses a class. Raises DataError,
    naming the numbers, when the split has fewer patients than asked, when a class has fewer
    than two (one to calibrate on, one to score on), or when the draw would leave a class with
    no patient to score the threshold on.
    """
    groups = _groups(labels, patients)
    _check_draw(groups, n_patients)
    return _draw(groups, len(patients), n_patients, seed)


def _groups(labels: ArrayLike, patients: ArrayLike) -> dict[int, list[list[int]]]:
    """Image indices per patient, per majority class (`data.split.patient_groups_of`)."""
    groups = patient_groups_of(np.asarray(labels).tolist(), [str(p) for p in patients])
    return {c: groups.get(c, []) for c in (0, 1)}


def _check_draw(groups: dict[int, list[list[int]]], n_patients: int) -> None:
    """Raise DataError when `n_patients` cannot be drawn from `groups` as the draw needs."""
    counts = {c: len(ids) for c, ids in groups.items()}
    have = f"{counts[0] + counts[1]} patients ({counts[0]} NORMAL, {counts[1]} PNEUMONIA)"
    if min(counts.values()) == 0:
        missing = "NORMAL" if counts[0] == 0 else "PNEUMONIA"
        raise DataError(
            f"the split has no {missing} patient ({have}): a threshold for a sensitivity "
            "needs labelled patients of both classes; calibrate on a split holding both"
        )
    if min(counts.values()) == 1:
        single = "NORMAL" if counts[0] == 1 else "PNEUMONIA"
        raise DataError(
            f"the split has one {single} patient only ({have}): a draw needs one of each class "
            "to calibrate on and one more to score the threshold on; calibrate on a split "
            "holding at least 2 patients of each class"
        )
    most = counts[0] + counts[1] - 2
    if n_patients < 2:
        raise DataError(
            f"asked for {n_patients} patient(s): a draw needs at least one patient of each "
            f"class (NORMAL and PNEUMONIA), so {_ask('2 or more')}"
        )
    if n_patients > most:
        raise DataError(
            f"asked for {n_patients} calibration patients, but the split has {have}, and at "
            f"least one of each class must be left to score the threshold on: "
            f"{_ask(f'at most {most}')}"
        )


def _draw(
    groups: dict[int, list[list[int]]], size: int, n_patients: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The stratified draw of `draw_calibration_patients` from checked `groups`."""
    counts = {c: len(ids) for c, ids in groups.items()}
    share = counts[1] / (counts[0] + counts[1])
    take = {1: min(max(1, round(n_patients * share)), n_patients - 1)}
    take[0] = n_patients - take[1]
    for c in (0, 1):  # move the excess to the other class when one class is too small
        if take[c] > counts[c] - 1:
            take[1 - c] += take[c] - (counts[c] - 1)
            take[c] = counts[c] - 1
    rng = np.random.default_rng(seed)
    mask = np.zeros(size, dtype=bool)
    for c in (0, 1):
        for j in rng.permutation(counts[c])[: take[c]]:
            mask[groups[c][j]] = True
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def check_sensitivity(sensitivity: float) -> None:
    """Raise DataError, naming the value and the fix, for a target sensitivity outside (0, 1]."""
    if not 0.0 < sensitivity <= 1.0:
        fix = in_terms("give sensitivity a value", "give --sensitivity a value")
        raise DataError(f"a sensitivity of {sensitivity} is no target: {fix} in (0, 1], e.g. 0.95")


def recalibrated_threshold(y: ArrayLike, p: ArrayLike, sensitivity: float) -> float:
    """The highest threshold whose sensitivity on these labelled cases reaches `sensitivity`.

    The same rule as notebook 04's screening threshold (`choose_threshold(rule="sensitivity")`):
    of the thresholds that reach the target, the one with the best specificity. Raises
    DataError for a target outside (0, 1] or cases without both classes.
    """
    check_sensitivity(sensitivity)
    y, p = labels_and_probabilities(y, p)
    if len(np.unique(y)) < 2:
        raise DataError("the calibration cases hold one class only: draw patients of both")
    return choose_threshold(y, p, rule="sensitivity", target=sensitivity)


def _logit(p: ArrayLike) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def shift_logits(p: ArrayLike, shift: float) -> np.ndarray:
    """Probabilities after adding `shift` to every log-odds: the head's bias moved by `shift`."""
    return 1.0 / (1.0 + np.exp(-(_logit(p) + shift)))


def refit_bias(
    y: ArrayLike, p: ArrayLike, prior: float | None = None, iterations: int = 50
) -> float:
    """The constant that, added to every log-odds, best fits the labels `y` (maximum likelihood).

    Re-fitting the head's bias on the site's own labelled cases (the intercept of a logistic
    recalibration whose slope stays 1): Newton's method on one parameter. Unweighted
    (`prior=None`), the mean corrected probability ends equal to the cases' share n1 / (n0 + n1),
    so the bias also absorbs the prevalence of the labelled draw. With `prior`, each class's
    cases are weighted to carry `prior` and 1 - `prior` of the total, as the class-weighted loss
    does at 1/2 (`loss_prior`): the probabilities stay calibrated for that prior, so a threshold
    chosen for it keeps its meaning, and only the offset between the sites is fitted; a model
    already off at home gets an offset there too, so subtract the bias fitted the same way on
    the home validation cases to keep only the site's (notebook 08, section 9.5). Every
    probability moves the same way, so the ranking is unchanged (up to the clipping of p at
    1e-6 from 0 and 1, which can merge scores into ties).
    """
    y, p = labels_and_probabilities(y, p)
    if len(np.unique(y)) < 2:
        raise DataError("re-fitting the bias needs labelled cases of both classes")
    weights = np.ones_like(p)
    if prior is not None:
        if not 0.0 < prior < 1.0:
            raise ValueError(f"prior must be in (0, 1), got {prior}")
        counts = np.bincount(y.astype(int), minlength=2)
        weights = np.where(y == 1, prior / counts[1], (1 - prior) / counts[0]) * y.size
    z, shift = _logit(p), 0.0
    for _ in range(iterations):
        q = 1.0 / (1.0 + np.exp(-(z + shift)))
        step = (weights * (y - q)).sum() / max((weights * q * (1 - q)).sum(), EPS)
        shift += float(np.clip(step, -5.0, 5.0))
        if abs(step) < 1e-10:
            break
    return shift


def _rates(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity and PPV at `threshold` (PPV NaN where nothing is flagged)."""
    flagged, positive = p >= threshold, y == 1
    ppv = float(positive[flagged].mean()) if flagged.any() else float("nan")
    return {
        "sensitivity": float(flagged[positive].mean()),
        "specificity": float((~flagged[~positive]).mean()),
        "ppv": ppv,
    }


def recalibration_draws(
    y: ArrayLike,
    p: ArrayLike,
    patients: ArrayLike,
    old_threshold: float,
    ks: tuple[int, ...],
    sensitivity: float,
    draws: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (K, draw): the recalibrated threshold beside the old one, on the same patients.

    For each K in `ks` and each of `draws` draws, K patients are drawn (`draw_calibration_patients`,
    seed `seed + draw`), the threshold is chosen on them for `sensitivity`, and both it and
    `old_threshold` are scored on the other patients. The columns hold K, the draw, the new
    threshold, the held-out images, and per rate (sensitivity, specificity, PPV) the old value,
    the new one and `d_<rate>` = new - old: a difference paired over the same held-out patients;
    `reached` says whether the new threshold reached `sensitivity` on them.
    """
    y, p = labels_and_probabilities(y, p)
    groups = _groups(y, patients)  # grouped once: every draw takes from the same patients
    rows = []
    for k in ks:
        _check_draw(groups, k)
        for draw in range(draws):
            calibration, rest = _draw(groups, y.size, k, seed + draw)
            threshold = recalibrated_threshold(y[calibration], p[calibration], sensitivity)
            old = _rates(y[rest], p[rest], old_threshold)
            new = _rates(y[rest], p[rest], threshold)
            row = {"K": k, "draw": draw, "threshold": threshold, "held_out": rest.size}
            for rate in RATES:
                row.update({f"old_{rate}": old[rate], rate: new[rate]})
                row[f"d_{rate}"] = new[rate] - old[rate]
            row["reached"] = new["sensitivity"] >= sensitivity
            rows.append(row)
    return pd.DataFrame(rows)


def draws_summary(frame: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """Per K: the mean of each rate and of each paired difference over the draws, the central
    `level` range of the differences over the draws (what one hospital's draw may give, not a
    confidence interval for the mean), and the share of draws that reached the target."""
    tail = 100 * (1 - level) / 2
    out = {}
    for k, part in frame.groupby("K", sort=True):
        row = {"draws": len(part), "threshold": part["threshold"].mean()}
        row["reached"] = part["reached"].mean()
        for rate in RATES:
            d = part[f"d_{rate}"].dropna()
            row[rate] = part[rate].mean()
            row[f"d_{rate}"] = d.mean()
            row[f"d_{rate}_low"], row[f"d_{rate}_high"] = (
                np.percentile(d, [tail, 100 - tail]) if len(d) else (np.nan, np.nan)
            )
        out[k] = row
    table = pd.DataFrame(out).T
    table.index.name = "K"
    return table
