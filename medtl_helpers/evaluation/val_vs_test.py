"""Validation beside test at one frozen threshold: is their gap more than the two sets' noise?

Validation and test are different cases, so each carries its own sampling noise: setting
validation's point value against the test interval alone ignores validation's half, and with
two sets of similar size it finds a gap far more often than 1 run in 20 where there is none.
Here each set is bootstrapped on its own (by patient where there are ids), and the interval is
that of the difference validation - test. An interval that excludes 0 is a gap the noise does
not explain: a shift between the two sets, or the bias of the choices made on validation.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from medtl_helpers.metrics.bootstrap import _group_index, _resample_metrics, _resample_weights
from medtl_helpers.metrics.rates import binary_metrics, labels_and_probabilities, require_classes

RATES = ("sensitivity", "specificity")


def gap_intervals(
    val: tuple[ArrayLike, ArrayLike],
    test: tuple[ArrayLike, ArrayLike],
    threshold: float,
    val_groups: ArrayLike | None = None,
    test_groups: ArrayLike | None = None,
    keys: tuple[str, ...] = RATES,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[float, float, float, float]]:
    """Per metric, (validation, test, low, high): a percentile interval of validation - test.

    `val` and `test` are (labels, scores) pairs. Every round resamples validation and test
    independently (whole `val_groups` / `test_groups`, e.g. `ImageSet.patients`, where given) and
    scores both at the same fixed `threshold`. Each interval holds 1 - 0.05 / len(keys) of the
    resampled differences (Bonferroni), so that all of them together hold 0 in 95% or
    more of runs without a gap. Resamples holding a single class are left out.
    """
    rng = np.random.default_rng(seed)
    samples, whole = [], []
    for (y, p), groups in ((val, val_groups), (test, test_groups)):
        y, p = labels_and_probabilities(y, p)
        require_classes(y, "gap_intervals")
        samples.append(_metric_samples(y, p, threshold, _group_index(groups, y.size), n_boot, rng))
        whole.append(binary_metrics(y, p, threshold))
    tail = 2.5 / len(keys)  # Bonferroni: all intervals together hold 95%
    out = {}
    for key in keys:
        first, second = samples[0][key], samples[1][key]
        kept = min(first.size, second.size)
        if kept == 0:
            raise ValueError("every bootstrap resample held a single class; the sets are too small")
        low, high = np.percentile(first[:kept] - second[:kept], [tail, 100 - tail])
        out[key] = (float(whole[0][key]), float(whole[1][key]), float(low), float(high))
    return out


def _metric_samples(
    y: np.ndarray, p: np.ndarray, threshold: float, cluster: np.ndarray, n_boot: int, rng
) -> dict[str, np.ndarray]:
    """Each metric on `n_boot` resamples of one set (in chunks of about 16 MB)."""
    _, score = np.unique(p, return_inverse=True)
    positive, predicted = y == 1, p >= threshold
    chunk = max(1, 2_000_000 // y.size)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_boot, chunk):
        w = _resample_weights(rng, cluster, min(chunk, n_boot - start))
        for name, values in _resample_metrics(w, positive, predicted, score).items():
            parts.setdefault(name, []).append(values)
    return {name: np.concatenate(part) for name, part in parts.items()}


def validation_beside_test(
    gaps: dict[str, tuple[float, float, float, float]],
    unit: str = "patients",
    same_pool: str | None = None,
) -> list[str]:
    """One line per metric of `gap_intervals`, then a verdict on a shift between the two sets.

    `unit` names what was resampled (`ImageSet.unit`). A gap counts only when its interval
    excludes 0, and the verdict names the bias towards validation of the epoch, candidate and
    threshold chosen on it. `same_pool` names where both sets were drawn from when
    test is a holdout of it (e.g. "train/"): then no shift is expected at all.
    """
    lines, beyond = [], []
    each = 1 - 0.05 / len(gaps)
    for key, (val, test, low, high) in gaps.items():
        excludes = low > 0 or high < 0
        beyond += [key] if excludes else []
        lines.append(
            f"{key}: validation {val:.3f}, test {test:.3f}, validation - test {val - test:+.3f} "
            f"({each:.1%} interval {low:+.3f} to {high:+.3f}): "
            f"{'excludes' if excludes else 'includes'} 0"
        )
    together = "both intervals" if len(gaps) == 2 else f"all {len(gaps)} intervals"
    lines.append(
        f"(each set resampled on its own, by {unit}; {each:.1%} per rate, so that without any gap "
        f"{together} hold 0 together in 95% of runs or more)"
    )
    bias = (
        "The epoch, the candidate and the threshold were chosen on validation: a bias towards "
        "validation (in J = sensitivity + specificity - 1 above all; one rate alone may move "
        "either way, as the threshold trades one for the other)"
    )
    if not beyond:
        lines.append(
            "no interval excludes 0: validation and test do not differ in these rates by more "
            f"than the noise of these {unit} (which is not proof that they are the same)."
        )
        return lines
    which = f"the {' and '.join(beyond)} interval{'s' if len(beyond) > 1 else ''}"
    verb = "exclude" if len(beyond) > 1 else "excludes"
    if same_pool is not None:
        lines.append(
            f"{which} {verb} 0, but test is a holdout of {same_pool}, as validation is, so no "
            f"shift is expected. {bias}: read the gap as that bias or as chance."
        )
    else:
        lines.append(
            f"{which} {verb} 0: a possible shift between the validation and the test data "
            f"(notebook 08). {bias}, so part of a gap in validation's favour may be that instead."
        )
    return lines
