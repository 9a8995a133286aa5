"""Prevalence (label) shift: what it does to a model's probabilities, and the prior correction.

At a site where only the share of PNEUMONIA differs, P(x | y) stays and P(y) changes, so by
Bayes' rule P(y | x) changes too: the target's odds are the source's odds times the ratio of the
priors' odds. Sensitivity and specificity at a fixed threshold are rates within a class and do
not show it; the positive and negative predictive values and the calibration of p do.

`adjust_to_prior` applies Bayes' rule for a known target prior. `em_prior` estimates that prior from
the target's unlabelled images by EM (Saerens, Latinne & Decaestecker, Neural Computation 2002):
adjust the probabilities to the current guess, take their mean as the next guess, repeat. It assumes
the model's probabilities were calibrated for `source_prior`, and that only the prior moved; under a
covariate shift its estimate means nothing. That prior is the one the training loss trains towards,
not the source's share of PNEUMONIA: `fit`'s loss weights each class by `training.class_weights`, so
both classes carry the same total weight and the minimiser of the loss is p(x) = LR/(1 + LR),
calibrated for a prior of 1/2 (`loss_prior` computes it from the weights). `bbse_prior` (black box
shift estimation, Lipton, Wang & Smola, ICML 2018) makes the same assumption that P(x | y) is
unchanged but needs no calibration: only the model's hard predictions, and a confusion matrix on
labelled source images that can be inverted. `prior_estimates` gives both with intervals, and
`prevalence_metrics` scores PPV, NPV and the expected calibration error with intervals that resample
whole patients.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from numpy.typing import ArrayLike

from medtl_helpers.metrics.bootstrap import _group_index, _resample_weights
from medtl_helpers.metrics.rates import labels_and_probabilities, require_classes
from medtl_helpers.training import class_weights

EPS = 1e-7  # keeps the odds finite for p of exactly 0 or 1
# Above this condition number of C, an error of one point in the target's predicted share moves
# BBSE's prior by many points: the estimate is reported with a warning to read its interval.
MAX_CONDITION = 20.0


def _odds(x: ArrayLike) -> np.ndarray:
    x = np.clip(np.asarray(x, dtype=np.float64), EPS, 1 - EPS)
    return x / (1 - x)


def loss_prior(labels: ArrayLike) -> float:
    """The prior of PNEUMONIA that a loss weighted by `training.class_weights` trains towards.

    The class-weighted loss on `labels` is the plain loss on a set in which each class counts
    N_c·w_c times, so its minimiser is calibrated for that set's share of PNEUMONIA:
    N_1·w_1 / (N_0·w_0 + N_1·w_1). `class_weights` gives every class the same total, so this is
    1/2 whatever the labels' share; it is computed from the weights so that it follows them.
    """
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))
    totals = torch.bincount(y, minlength=2).double() * class_weights(y).double()
    return float(totals[1] / totals.sum())


def adjust_to_prior(p: ArrayLike, source_prior: float, target_prior: float) -> np.ndarray:
    """P(PNEUMONIA | x) at a site whose prior is `target_prior`, from the source's `p`.

    odds_target(x) = odds_source(x) * odds(target_prior) / odds(source_prior).
    """
    _require_prior("source_prior", source_prior)
    _require_prior("target_prior", target_prior)
    odds = _odds(p) * _odds(target_prior) / _odds(source_prior)
    return odds / (1 + odds)


def _require_prior(name: str, prior: float) -> None:
    if not 0.0 < prior < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {prior}")


def em_prior(
    p: ArrayLike, source_prior: float, tol: float = 1e-6, max_iter: int = 1000
) -> tuple[float, np.ndarray]:
    """(estimated target prior, adjusted probabilities) from unlabelled target images' `p`.

    Starts at the source prior; each step adjusts `p` to the current prior and takes the mean of
    the adjusted probabilities as the next prior, until it moves less than `tol`. It assumes that
    only the prior moved (P(x | y) unchanged) and that `p` is calibrated at `source_prior`: an
    over-confident model's estimate is wrong even then (`bbse_prior` is not).
    """
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if p.size == 0:
        raise ValueError("em_prior needs the probabilities of at least one image")
    _require_prior("source_prior", source_prior)
    start = np.array([float(source_prior)])
    prior = float(_em_rows(np.ones((1, p.size)), p, start, tol, max_iter)[0])
    return prior, adjust_to_prior(p, source_prior, prior)


def _em_rows(
    w: np.ndarray, p: np.ndarray, source_prior: np.ndarray, tol: float, max_iter: int
) -> np.ndarray:
    """EM's prior for each row of case weights `w` (rows x cases), each with its source prior."""
    base, prior = _odds(p)[None, :], source_prior.astype(np.float64).copy()
    active = np.ones(prior.size, dtype=bool)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        odds = base * (_odds(prior[rows]) / _odds(source_prior[rows]))[:, None]
        weights = w[rows]
        new = (weights * (odds / (1 + odds))).sum(1) / weights.sum(1)
        new = np.clip(new, EPS, 1 - EPS)
        active[rows[np.abs(new - prior[rows]) < tol]] = False
        prior[rows] = new
        if not active.any():
            break
    return prior


def bbse_prior(
    y_source: ArrayLike,
    p_source: ArrayLike,
    p_target: ArrayLike,
    threshold: float = 0.5,
    max_condition: float = MAX_CONDITION,
) -> float:
    """The target's share of PNEUMONIA by black box shift estimation (Lipton et al., 2018).

    From labelled source images (`y_source`, `p_source`, e.g. the source validation patients):
    C[i, j] = P(prediction i, label j), the confusion matrix as shares, with predictions at
    `threshold`. From the unlabelled target images: mu[i] = P(prediction i). If only the prior
    moved, mu = C w with w[j] = target prior / source prior of class j, so w = C^-1 mu and the
    target prior is w * source prior (with two classes: (flagged share - FPR) / (TPR - FPR)).
    Noise can put it outside [0, 1]; it is clipped there. Like EM it assumes P(x | y) unchanged;
    unlike EM it does not need calibrated probabilities, only a C that can be inverted: a model
    whose sensitivity equals 1 - specificity at `threshold` has none (an error), and one with a
    condition number of C above `max_condition` gets a warning, since the estimate divides by it.
    """
    y, p = labels_and_probabilities(y_source, p_source)
    require_classes(y, "bbse_prior")
    target = np.asarray(p_target, dtype=np.float64).reshape(-1)
    if target.size == 0:
        raise ValueError("bbse_prior needs the probabilities of at least one target image")
    one = np.ones((1, y.size))
    conf = _joint_confusion(one, y, p >= threshold)[0]
    condition = float(np.linalg.cond(conf))
    tpr, fpr = conf[1, 1] / conf[:, 1].sum(), conf[1, 0] / conf[:, 0].sum()
    rates = f"sensitivity {tpr:.3f}, 1 - specificity {fpr:.3f} on the source images"
    if not np.isfinite(condition) or condition > 1e12:
        raise ValueError(
            f"BBSE cannot estimate the prior: at threshold {threshold:.3f} the source model flags "
            f"PNEUMONIA and NORMAL images equally often ({rates}), so C has no inverse. Use a "
            "model whose hard predictions tell the classes apart, or a threshold where they do."
        )
    if condition > max_condition:
        warnings.warn(
            f"C is ill-conditioned (condition number {condition:.1f}; {rates}): a small error in "
            "the target's flagged share moves the BBSE prior a lot. Read it with its interval.",
            stacklevel=2,
        )
    return float(_bbse_rows(conf[None], (target >= threshold).mean(keepdims=True))[0])


def _joint_confusion(w: np.ndarray, y: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """(rows, 2, 2) shares C[i, j] = P(prediction i, label j) under each row of weights `w`."""
    conf = np.stack(
        [
            np.stack([(w * ((flagged == i) & (y == j))).sum(1) for j in (0, 1)], axis=1)
            for i in (0, 1)
        ],
        axis=1,
    )
    return conf / w.sum(1)[:, None, None]


def _bbse_rows(conf: np.ndarray, flagged_share: np.ndarray) -> np.ndarray:
    """Per row, the clipped prior from C (rows, 2, 2) and the target's flagged share; NaN where
    C is singular."""
    det = conf[:, 0, 0] * conf[:, 1, 1] - conf[:, 0, 1] * conf[:, 1, 0]
    ok = np.abs(det) > 1e-12
    mu = np.stack([1 - flagged_share, flagged_share], axis=1)[ok]
    out = np.full(det.shape, np.nan)
    w = np.linalg.solve(conf[ok], mu[..., None])[..., 0]
    out[ok] = np.clip(w[:, 1] * conf[ok].sum(1)[:, 1], 0.0, 1.0)
    return out


def prior_estimates(
    y_source: ArrayLike,
    p_source: ArrayLike,
    p_target: ArrayLike,
    threshold: float = 0.5,
    groups_source: ArrayLike | None = None,
    groups_target: ArrayLike | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    source_prior: float | None = None,
) -> dict[str, tuple[float, float, float]]:
    """{"EM": (estimate, low, high), "BBSE": (...)}: the target prior by both, with intervals.

    EM starts from, and corrects for, `source_prior`: the prior the model's probabilities are
    calibrated for, by default the one a loss weighted by `class_weights` trains towards
    (`loss_prior`, 1/2). Not the mean `p_source`: over an unweighted source set that mean grows
    towards the source's share of PNEUMONIA as the model improves, and EM started there on those
    images stays there, since any mean is a fixed point on its own images. BBSE's C comes from
    `y_source` and the predictions at `threshold`. Where `threshold` was chosen on these same
    source images by Youden's J (notebook 08: the validation patients), TPR − FPR is the maximum
    over thresholds on them, biased upward, and so is the estimate; the resamples below do not
    choose the threshold again, so the interval does not show that bias. Likewise EM's
    calibration, checked on images that chose the model's epoch, looks better there than on new
    images. Each bootstrap round resamples the source images
    and the target images, as whole groups where `groups_*` are given (`ImageSet.patients`), so
    BBSE's interval carries both C's and the target's sampling error, and EM's (whose source prior
    is fixed) the target's. Rounds whose source resample holds one class, or whose C is singular,
    give BBSE no value and are left out of its interval.
    """
    y, p = labels_and_probabilities(y_source, p_source)
    target = np.asarray(p_target, dtype=np.float64).reshape(-1)
    prior = loss_prior(y) if source_prior is None else float(source_prior)
    point = {
        "EM": em_prior(target, prior)[0],
        "BBSE": bbse_prior(y, p, target, threshold),
    }
    rng = np.random.default_rng(seed)
    w_s = _resample_weights(rng, _group_index(groups_source, y.size), n_boot)
    w_t = _resample_weights(rng, _group_index(groups_target, target.size), n_boot)
    flagged_share = (w_t * (target >= threshold)).sum(1) / w_t.sum(1)
    samples = {
        "EM": _em_rows(w_t, target, np.full(n_boot, prior), 1e-6, 1000),
        "BBSE": _bbse_rows(_joint_confusion(w_s, y, p >= threshold), flagged_share),
    }
    tail = 100 * (1 - level) / 2
    out = {}
    for name, values in samples.items():
        kept = values[np.isfinite(values)]
        low, high = np.percentile(kept, [tail, 100 - tail]) if kept.size else (np.nan, np.nan)
        out[name] = (float(point[name]), float(low), float(high))
    return out


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
