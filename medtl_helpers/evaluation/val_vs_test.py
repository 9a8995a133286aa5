"""Validation beside test at one frozen threshold: is their gap more than the two sets' noise?

Validation and test are different cases, so each carries its own sampling noise: setting
validation's point value against the test interval alone ignores validation's half, and with
two sets of similar size it finds a gap far more often than 1 run in 20 where there is none.
Here each set is bootstrapped on its own (by patient where there are ids), and the interval is
that of the difference validation - test. An interval that excludes 0 is a gap the noise may not
explain, with two caveats: the 1 run in 20 is nominal (percentile bootstrap intervals run a
little narrow on small sets), and where images are resampled although one child can have several
(PneumoniaMNIST), the intervals are too narrow and find a gap more often. A gap that is more than
noise may be a shift between the two sets, or the bias of the choices made on validation (mainly
in J, that is in balanced accuracy), or, where validation shares children with the training
split, that leak.
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
    resampled differences (Bonferroni), so that without a gap all of them together hold 0 in
    about 95% of runs (nominal: percentile bootstrap intervals run a little narrow on small sets,
    and resampling images where one child has several makes them narrower still). Resamples
    holding a single class are left out.
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
        # The two sets lose different resamples, so the kept ones are paired by position: harmless,
        # as the two sets were resampled independently and any pairing of them is a fair one.
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
    shared_children: bool = False,
    test_shares_ids: bool = False,
) -> list[str]:
    """One line per metric of `gap_intervals`, then a verdict on the gap between the two sets.

    `unit` names what was resampled (`ImageSet.unit`); with "images" the verdict says that the
    intervals are too narrow. A gap counts only when its interval excludes 0. The verdict gives
    each gap's direction, names the bias towards validation of the epoch, candidate and threshold
    chosen on it (mainly in J, which "balanced_accuracy" tests where it is a key), and reads one
    rate higher on test with the other lower as test's scores moved against the frozen
    threshold: a shift between the sets, where test is not a holdout of validation's pool.
    `same_pool` names where both sets were drawn from when test is a holdout of it (e.g.
    "train/"): then no shift is expected at all. `shared_children` says that validation may hold
    children of the training split (PneumoniaMNIST's), which flatters validation too;
    `test_shares_ids` that test reuses patient ids of the training data (the official `test/`
    folder does), which may flatter test.
    """
    each = 1 - 0.05 / len(gaps)
    lines = [_gap_line(key, gap, each) for key, gap in gaps.items()]
    together = {1: "it holds 0", 2: "both intervals hold 0 together"}
    lines.append(
        f"(each set resampled on its own, by {unit}; {each:.1%} per metric, so that without any "
        f"gap {together.get(len(gaps), f'all {len(gaps)} intervals hold 0 together')} in about "
        "95% of runs (nominal: percentile bootstrap intervals run a little narrow on small sets))"
    )
    beyond = {key: gap for key, gap in gaps.items() if _excludes_zero(gap)}
    held = None
    if same_pool is not None:
        held = f"Test is a holdout of {same_pool}, as validation is, so no shift is expected"
    caveats = _caveats(unit, shared_children, test_shares_ids)
    if not beyond:
        lines.append(
            "no interval excludes 0: validation and test do not differ in these metrics by more "
            f"than the noise of these {unit} (which is not proof that they are the same)."
        )
        return lines + caveats + ([f"{held}."] if held else [])
    lines.append(f"{_names(beyond)}, more than the noise of these {unit}: {_directions(beyond)}.")
    lines += _score_shift(beyond, gaps, same_pool) + [_bias(gaps)] + caveats
    if held:
        return lines + [f"{held}: read the gap as the bias above or as chance."]
    return lines + [
        "What these do not explain may be a shift between the validation and the test data: "
        "notebook 08, section 9, measures the shift of this same split without labels (with its "
        "own source model and threshold, not this notebook's) and tries the repairs a hospital "
        "can make."
    ]


def _caveats(unit: str, shared_children: bool, test_shares_ids: bool) -> list[str]:
    """What else flatters one set or narrows the intervals, for the verdict in either branch."""
    caveats = []
    if test_shares_ids:
        caveats.append(
            "Test reuses patient ids of the training data; if they are the same children, test "
            "is flattered where the model saw them."
        )
    if shared_children:
        caveats.append(
            "Validation may share children with the training split, which flatters validation "
            "as the choices made on it do."
        )
    if unit == "images":
        caveats.append(
            "Images, not children, were resampled: one child's X-rays count as separate images, "
            "so the intervals are too narrow and flag a gap more often than 1 run in 20."
        )
    return caveats


def _excludes_zero(gap: tuple[float, float, float, float]) -> bool:
    return gap[2] > 0 or gap[3] < 0


def _gap_line(key: str, gap: tuple[float, float, float, float], each: float) -> str:
    val, test, low, high = gap
    return (
        f"{key}: validation {val:.3f}, test {test:.3f}, validation - test {val - test:+.3f} "
        f"({each:.1%} interval {low:+.3f} to {high:+.3f}): "
        f"{'excludes' if _excludes_zero(gap) else 'includes'} 0"
    )


def _names(beyond: dict) -> str:
    """'the a interval excludes 0', 'the a, b and c intervals exclude 0'."""
    keys = list(beyond)
    if len(keys) == 1:
        return f"the {keys[0]} interval excludes 0"
    return f"the {', '.join(keys[:-1])} and {keys[-1]} intervals exclude 0"


def _directions(beyond: dict) -> str:
    """Each gap in words: 'specificity higher on validation by 0.410; sensitivity ... test ...'."""
    words = []
    for key, (val, test, _, _) in beyond.items():
        side = "validation" if val > test else "test"
        words.append(f"{key} higher on {side} by {abs(val - test):.3f}")
    return "; ".join(words)


def _score_shift(beyond: dict, gaps: dict, same_pool: str | None) -> list[str]:
    """One rate beyond the noise higher on each side: the scores moved against the threshold."""
    rates = [beyond.get(key) for key in ("sensitivity", "specificity")]
    if None in rates or (rates[0][0] > rates[0][1]) == (rates[1][0] > rates[1][1]):
        return []
    way = "higher" if rates[0][1] > rates[0][0] else "lower"  # test flags more: scores higher
    if same_pool is not None:
        return [
            "One rate is higher on test and the other on validation; with both sets from one "
            "pool, that is the threshold fitted to validation's noise, or chance."
        ]
    moved = (
        f"test's scores sit {way} than validation's against the frozen threshold: a shift "
        "between the two sets moves every score, and the threshold chosen on validation no "
        "longer sits where test's best one would. The choices made on validation move the two "
        "rates apart only by the noise of the threshold, little against a large gap"
    )
    if "auroc" not in gaps or not _excludes_zero(gaps["auroc"]):
        held = "" if "auroc" not in gaps else ", with AUROC within the noise (the ranking held)"
        return [f"One rate is higher on test and the other on validation{held}: {moved}."]
    return [
        "One rate is higher on test and the other on validation, and AUROC differs too "
        f"(validation's AUROC is also the chosen epoch's, which flatters it): {moved}, and the "
        "ranking changed as well."
    ]


def _bias(gaps: dict) -> str:
    """The bias of the choices made on validation, and what of the gaps it can explain."""
    bias = (
        "The epoch, the candidate and the threshold were chosen on validation: a bias towards "
        "validation, mainly in J = sensitivity + specificity - 1 (balanced accuracy = (J + 1) / "
        "2); one rate alone may move either way, as the threshold trades one for the other."
    )
    bias += " It can explain only a gap in J in validation's favour"
    gap = gaps.get("balanced_accuracy")
    if gap is None:
        return f"{bias}."
    if not _excludes_zero(gap):
        return f"{bias}, and balanced accuracy's interval includes 0."
    if gap[0] < gap[1]:
        return f"{bias}; the balanced accuracy gap favours test."
    return f"{bias}, as the balanced accuracy gap is; how much of it, this comparison cannot say."
