"""Checkers for the exercises of notebook 04 (the full training recipe).

`check_class_weights` runs the student's weighting function on a few class counts and compares it
with `training.class_weights`, w_c = N / (C·N_c): equal total weight N_c·w_c for every class,
scaled as the course does so that Σ_c N_c·w_c = N (a balanced set gets weight 1).
`check_val_threshold` runs the student's "threshold on validation, metrics on test" function on a
case where validation, test and 0.5 give three different thresholds, and where the threshold that
maximises validation accuracy is not Youden's. A threshold with the best Youden's J on test, or
pooled, but not on validation (on any candidates) is named first as what a threshold tuned with the
test labels gives, hedged: a validation-only rule may land there. A leak by accuracy or F1 is named
only where it reaches that J too, and fails on this case either way. It accepts any threshold with
the best validation J that flags the same test cases as `choose_threshold`'s.
Each explains the first difference in words and prints one sentence on success.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from medtl_helpers.course.checks.common import call_answer, plain, plain_number, require_answer
from medtl_helpers.metrics import choose_threshold, confusion
from medtl_helpers.training import class_weights

__all__ = ["check_class_weights", "check_val_threshold"]

# Kermany's train/ counts, a 1:3 toy case, a balanced case and three classes.
WEIGHT_CASES = ((1341, 3875), (10, 30), (50, 50), (3, 1, 6))


def _weights_problem(got: np.ndarray, want: np.ndarray, counts: Sequence[int]) -> str | None:
    if got.shape != want.shape:
        return (
            f"for counts {list(counts)} you returned {got.size} weights; expected one per class "
            f"({want.size}): loop over every count, not over a fixed two."
        )
    if np.allclose(got, want, rtol=1e-4):
        return None
    n, k = sum(counts), len(counts)
    inverse = np.array([1.0 / c for c in counts])
    if np.allclose(got, np.full(k, got[0])):
        return (
            f"for counts {list(counts)} all your weights are equal ({got[0]:.3g}): that is the "
            "unweighted loss; the rarer class must get the larger weight."
        )
    if np.allclose(got / got.sum(), np.array(counts) / n, rtol=1e-4):
        return (
            f"for counts {list(counts)} your weights grow with the class count ({got.round(3)}): "
            "the frequent class would count even more. Invert it: w_c = N / (C·N_c)."
        )
    if np.allclose(got / got.sum(), inverse / inverse.sum(), rtol=1e-4):
        total = float(np.dot(counts, got))
        return (
            f"for counts {list(counts)} your weights {got.round(4)} have the right ratios but "
            f"another scale: their total weight is Σ_c N_c·w_c = {total:.4g}, and the course "
            f"scales it to the number of images, Σ_c N_c·w_c = N = {n}, i.e. w_c = N / (C·N_c) "
            f"with C = {k} classes (a balanced set then gets weight 1 for every class); "
            f"expected {want.round(4)}."
        )
    return (
        f"for counts {list(counts)} you returned {got.round(4)}; expected {want.round(4)}, "
        "i.e. w_c = N / (C·N_c) with N the total, C the number of classes and N_c the count of "
        "class c, so that Σ_c N_c·w_c = N."
    )


def check_class_weights(balanced_weights: Callable[[list[int]], object]) -> None:
    """`balanced_weights(counts)` must return w_c = N / (C·N_c) for each class c.

    Every class then has the same total weight N_c·w_c = N / C, and the scale is the course's:
    Σ_c N_c·w_c = N, so a balanced set gets weight 1 for every class.
    """
    require_answer(balanced_weights, "your balanced_weights")
    for counts in WEIGHT_CASES:
        labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        want = class_weights(labels, len(counts)).numpy().astype(np.float64)
        call = f"balanced_weights({list(counts)})"
        got = call_answer(
            balanced_weights,
            (list(counts),),
            call,
            "It takes a list of counts, one per class, and returns one weight per class.",
        )
        if got is None:
            raise AssertionError("balanced_weights returned None: is the `return` missing?")
        plain(got, f"the value {call} returned")
        try:
            got = torch.as_tensor(got, dtype=torch.float64).reshape(-1).numpy()
        except (TypeError, ValueError, RuntimeError) as err:
            raise AssertionError(
                f"{call} returned a {type(got).__name__}, not numbers the checker can read: "
                "return one weight per class, in class order, as a list, array or tensor."
            ) from err
        problem = _weights_problem(got, want, counts)
        if problem:
            raise AssertionError(problem)
    print(
        f"Correct: your weights match training.class_weights for all {len(WEIGHT_CASES)} cases; "
        "each class now contributes the same total weight to the loss."
    )


def _threshold_case() -> tuple[np.ndarray, ...]:
    """Validation and test predictions whose Youden thresholds differ from each other and 0.5.

    Validation is about 2.5:1 PNEUMONIA with overlapping scores, so the threshold that maximises
    accuracy (and F1) lies below Youden's, and the one closest to the corner (0, 1) above it; both
    flag other test cases. Youden's on test, or on validation and test pooled, lies above 0.5.
    Neither those validation-only thresholds nor the medians of the scores reach the best J there,
    and no threshold with the best J, accuracy or F1 on test or pooled (any tie, on the scores, a
    grid or the midpoints) has the best validation J and flags what it flags. One PNEUMONIA test
    case scores exactly the validation threshold, so `p > t` and `p >= t` give different
    sensitivities. Every threshold between the next lower validation score and Youden's has the
    same best J; the one test score in that gap, a NORMAL case, sits just below its midpoint, so
    the midpoint flags what Youden's does and a threshold lower in the gap does not.
    """
    rng = np.random.default_rng(483)
    val_y = (rng.random(60) < 0.75).astype(np.int64)
    val_p = np.clip(0.3 + 0.35 * val_y + rng.normal(0, 0.17, 60), 0.01, 0.99).round(4)
    test_y = (rng.random(50) < 0.6).astype(np.int64)
    test_p = np.clip(0.35 + 0.35 * test_y + rng.normal(0, 0.2, 50), 0.01, 0.99).round(4)
    threshold = choose_threshold(val_y, val_p)
    below = val_p[val_p < threshold].max()
    test_p[np.flatnonzero(test_y == 0)[0]] = round((below + threshold) / 2 - 0.0004, 4)
    test_p[np.flatnonzero(test_y == 1)[0]] = threshold
    return val_y, val_p, test_y, test_p


def _best_j(y: np.ndarray, p: np.ndarray, threshold: float) -> bool:
    """Whether `threshold` reaches the best J = sensitivity + specificity - 1 on (y, p)."""
    best = max(_columns(y, p)["J"])
    return bool(np.isclose(_scores(y, p, threshold)["J"], best, rtol=0, atol=1e-12))


def _leak_problem(threshold: float, want: float, val: tuple, test: tuple) -> str | None:
    """The message for a threshold with the best J on test, or pooled, but not on validation."""
    if _best_j(*val, threshold):
        return None
    pooled = (np.concatenate([val[0], test[0]]), np.concatenate([val[1], test[1]]))
    sets = {"the TEST set": test, "validation and test POOLED": pooled}
    where = [name for name, (y, p) in sets.items() if _best_j(y, p, threshold)]
    if not where:
        return None
    return (
        f"on the checker's test case, your threshold {threshold:.4f} reaches the best Youden's J "
        f"on {' and on '.join(where)}, but not on validation (J = "
        f"{_scores(*val, threshold)['J']:.3f} there; the best, {_scores(*val, want)['J']:.3f}, "
        f"is at {want:.4f}). That is what a threshold tuned with the test labels gives, and it "
        "makes the test numbers optimistic: choose the threshold on validation alone and apply it "
        "unchanged to test. If you used validation alone, your rule is not Youden's J."
    )


def _scores(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Youden's J, accuracy and F1 of the validation predictions at p >= threshold."""
    sens, spec, c = _rates(y, p, threshold)
    return {
        "J": sens + spec - 1,
        "accuracy": (c["tp"] + c["tn"]) / y.size,
        "F1": 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"]),
    }


def _threshold_problem(threshold: float, want: float, val_y, val_p, test_p) -> str | None:
    """None when `threshold` has the best validation J and flags the test cases `want` does."""
    best = {name: max(v) for name, v in _columns(val_y, val_p).items()}
    got = _scores(val_y, val_p, threshold)
    if np.isclose(got["J"], best["J"], rtol=0, atol=1e-12):
        if ((test_p >= threshold) == (test_p >= want)).all():
            return None
        return (
            f"on the checker's test case your threshold {threshold:.4f} has the best J on "
            f"validation ({best['J']:.3f}), as {want:.4f} does, but flags other test cases. Every "
            "threshold between two neighbouring validation scores has that J; the course takes "
            "the validation score itself (choose_threshold: among ties, the one closest to 0.5)."
        )
    rules = [name for name in ("accuracy", "F1") if np.isclose(got[name], best[name])]
    if rules:
        return (
            f"on the checker's test case your threshold {threshold:.4f} maximises "
            f"{' and '.join(rules)} on validation, where J = sensitivity + specificity - 1 is "
            f"{got['J']:.3f}; Youden's J is {best['J']:.3f} at {want:.4f}. Whether or not your "
            "rule aimed at that: accuracy counts every case alike, so on a set that is mostly "
            "PNEUMONIA it pays to flag more (the pitfall of section 2); J weighs both classes "
            "alike."
        )
    return (
        f"on the checker's test case your threshold is {threshold:.4f}, with J = {got['J']:.3f} "
        f"on validation; Youden's J is best, {best['J']:.3f}, at {want:.4f} "
        "(choose_threshold(val_y, val_p))."
    )


def _columns(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    """`_scores` at every validation score taken as the threshold, one list per score."""
    rows = [_scores(y, p, t) for t in np.unique(p)]
    return {name: [row[name] for row in rows] for name in rows[0]}


def _rates(y: np.ndarray, p: np.ndarray, threshold: float, strict: bool = False):
    """(sensitivity, specificity, counts) predicting PNEUMONIA at p >= t, or p > t if strict."""
    # p > t is p >= (the next float above t).
    c = confusion(y, p, np.nextafter(threshold, np.inf) if strict else threshold)
    return c["tp"] / (c["tp"] + c["fn"]), c["tn"] / (c["tn"] + c["fp"]), c


def _rate_problem(got_sens: float, got_spec: float, y, p, threshold: float) -> str | None:
    sens, spec, c = _rates(y, p, threshold)
    if np.isclose(got_sens, sens) and np.isclose(got_spec, spec):
        return None
    if np.isclose(got_sens, spec) and np.isclose(got_spec, sens):
        return (
            "sensitivity and specificity are swapped: sensitivity = TP / (TP + FN) is the share "
            "of PNEUMONIA cases flagged, specificity = TN / (TN + FP) the share of NORMAL cases "
            "left alone."
        )
    strict_sens, strict_spec, _ = _rates(y, p, threshold, strict=True)
    if np.isclose(got_sens, strict_sens) and np.isclose(got_spec, strict_spec):
        return (
            "a case scoring exactly the threshold counts as PNEUMONIA: predict positive when "
            "p >= threshold, not p > threshold (the threshold is one of the validation scores)."
        )
    if np.isclose(got_sens, c["tp"] / (c["tp"] + c["fp"])):
        return (
            f"on the checker's test case your sensitivity {got_sens:.3f} is the precision "
            f"TP / (TP + FP); sensitivity is TP / (TP + FN) = {sens:.3f}."
        )
    name, got, want = (
        ("sensitivity", got_sens, sens)
        if not np.isclose(got_sens, sens)
        else ("specificity", got_spec, spec)
    )
    return (
        f"on the checker's test case your {name} is {got:.3f}; expected {want:.3f} on its test "
        f"predictions at the validation threshold (confusion counts {c})."
    )


def check_val_threshold(
    threshold_and_rates: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], dict],
) -> None:
    """`threshold_and_rates(val_y, val_p, test_y, test_p)` must choose the threshold on
    validation (Youden's J) and return it with the test sensitivity and specificity."""
    require_answer(threshold_and_rates, "your threshold_and_rates")
    val_y, val_p, test_y, test_p = _threshold_case()
    got = call_answer(
        threshold_and_rates,
        (val_y.copy(), val_p.copy(), test_y.copy(), test_p.copy()),
        "threshold_and_rates(val_y, val_p, test_y, test_p)",
        "It takes four numpy arrays (labels and probabilities of validation, then of test).",
    )
    plain(got, "the value threshold_and_rates returned")
    keys = ("threshold", "sensitivity", "specificity")
    if not isinstance(got, dict) or any(k not in got for k in keys):
        raise AssertionError(
            f"threshold_and_rates returned {type(got).__name__}; expected a dict with the keys "
            f"{list(keys)}."
        )
    threshold, sensitivity, specificity = (_number(got[key], key) for key in keys)
    want = choose_threshold(val_y, val_p)
    problem = _leak_problem(threshold, want, (val_y, val_p), (test_y, test_p))
    if problem:
        raise AssertionError(problem)
    if np.isclose(threshold, 0.5):
        raise AssertionError(
            "your threshold is the default 0.5; choose it on validation with Youden's J (on the "
            f"checker's test case, metrics.choose_threshold(val_y, val_p) gives {want:.4f})."
        )
    problem = _threshold_problem(threshold, want, val_y, val_p, test_p)
    if problem:
        raise AssertionError(problem)
    problem = _rate_problem(sensitivity, specificity, test_y, test_p, want)
    val_sens, val_spec, _ = _rates(val_y, val_p, want)
    if problem and np.isclose(sensitivity, val_sens) and np.isclose(specificity, val_spec):
        problem = (
            f"your sensitivity {sensitivity:.3f} and specificity {specificity:.3f} are those of "
            "the VALIDATION predictions: the threshold comes from validation, the rates from "
            "test_y and test_p."
        )
    if problem:
        raise AssertionError(problem)
    print(
        "Correct: on the checker's own test case (made-up predictions, not your run), the "
        "threshold was chosen on validation and applied unchanged to test: threshold "
        f"{want:.4f}, sensitivity {sensitivity:.3f}, specificity {specificity:.3f}."
    )


def _number(value: object, key: str) -> float:
    """`value` as a float when it is one number; else AssertionError naming `key`."""
    value = plain_number(value, f"the {key} threshold_and_rates returned")
    if type(value) not in (int, float):
        raise AssertionError(
            f"threshold_and_rates returned {type(value).__name__} {value!r} for {key!r}; "
            "expected one number (use float(...) on an array or tensor of one value)."
        )
    return float(value)
