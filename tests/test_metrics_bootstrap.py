"""Bootstrap intervals: deterministic by seed, resampling whole children, and on cases where every
resample is known (the identity, or a tiny split enumerated by hand) equal to the point metrics."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import random_scores
from sklearn.metrics import roc_auc_score

from medtl_helpers.metrics import METRICS, binary_metrics, bootstrap_ci


def test_bootstrap_contains_estimate_and_is_deterministic():
    y, p = random_scores(300)
    point = binary_metrics(y, p, 0.5)
    ci = bootstrap_ci(y, p, 0.5, n_boot=300, seed=1)
    assert set(ci) == set(METRICS)
    for name, (low, high) in ci.items():
        assert low <= point[name] <= high, name
    assert bootstrap_ci(y, p, 0.5, n_boot=300, seed=1) == ci
    assert bootstrap_ci(y, p, 0.5, n_boot=300, seed=2) != ci


def test_bootstrap_narrows_with_more_data():
    def width(n):
        y, p = random_scores(n)
        low, high = bootstrap_ci(y, p, 0.5, n_boot=300)["auroc"]
        return high - low

    assert width(2000) < width(100) / 2  # widths shrink like 1/sqrt(n): sqrt(20) ~ 4.5


def test_bootstrap_matches_per_resample_loop():
    y, p = random_scores(40, seed=3)
    idx = np.random.default_rng(7).integers(0, 40, size=(50, 40))
    reference = {name: [] for name in METRICS}
    for rows in idx:
        values = binary_metrics(y[rows], p[rows], 0.5)
        for name in METRICS:
            reference[name].append(values[name])
    ci = bootstrap_ci(y, p, 0.5, n_boot=50, seed=7, level=0.9)
    for name in METRICS:
        assert ci[name] == pytest.approx(tuple(np.percentile(reference[name], [5, 95])))


def test_bootstrap_by_patient_resamples_whole_children():
    y, p = random_scores(100, seed=4)
    # Every child has four identical X-rays: drawing children is drawing the 100 cases.
    y4, p4 = np.repeat(y, 4), np.repeat(p, 4)
    children = np.repeat([f"person{i:03d}" for i in range(100)], 4)  # sorted = case order
    by_child = bootstrap_ci(y4, p4, 0.5, n_boot=200, seed=3, groups=children)
    per_case = bootstrap_ci(y, p, 0.5, n_boot=200, seed=3)
    for name in METRICS:
        assert by_child[name] == pytest.approx(per_case[name]), name
    # Resampling the 400 images as if independent pretends to four times the data.
    by_image = bootstrap_ci(y4, p4, 0.5, n_boot=200, seed=3)
    width = lambda ci: ci["auroc"][1] - ci["auroc"][0]  # noqa: E731
    assert width(by_image) < 0.7 * width(by_child)
    # One id per case is the same as no groups at all.
    ids = [f"x{i:03d}" for i in range(100)]
    one_each = bootstrap_ci(y, p, 0.5, n_boot=200, seed=3, groups=ids)
    assert all(one_each[name] == pytest.approx(per_case[name]) for name in METRICS)
    with pytest.raises(ValueError, match="groups has 99 ids but there are 100 cases"):
        bootstrap_ci(y, p, 0.5, n_boot=10, groups=ids[:99])


def test_bootstrap_skips_single_class_resamples():
    with pytest.warns(UserWarning, match="resamples held a single class"):
        ci = bootstrap_ci([0, 1], [0.2, 0.8], 0.5, n_boot=100)
    assert ci["auroc"] == (1.0, 1.0)


def test_bootstrap_of_one_group_is_the_point_estimate():
    # With a single group every resample draws that group once: each resample is the data itself,
    # so both ends of every interval are the point metric (AUROC as scikit-learn computes it).
    for seed in range(3):
        y, p = random_scores(80, seed)
        point = binary_metrics(y, p, 0.5)
        ci = bootstrap_ci(y, p, 0.5, n_boot=20, seed=seed, groups=["one child"] * 80)
        assert point["auroc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        for name in METRICS:
            assert ci[name] == pytest.approx((point[name], point[name]), abs=1e-12), name


def test_bootstrap_tiny_split_by_hand():
    # NORMAL 0.3 (case a), PNEUMONIA 0.6 (b) and 0.2 (c); at 0.5 only b is flagged. A resample
    # without a keeps only accuracy. With a drawn once or twice, the draws (a, b, c) can be
    # (1,2,0) (1,1,1) (1,0,2) (2,1,0) (2,0,1). AUROC: b beats a, c loses -> 1, 1/2, 0, 1, 0.
    # Sensitivity b/(b+c): 1, 1/2, 0, 1, 0. Specificity: a is always right -> 1.
    # Accuracy (a+b)/3 over all 27 draws: from 0 (c, c, c) to 1. With level=1 the interval is the
    # smallest and largest value, and 2000 resamples draw every pattern.
    with pytest.warns(UserWarning, match="resamples held a single class"):
        ci = bootstrap_ci([0, 1, 1], [0.3, 0.6, 0.2], 0.5, n_boot=2000, level=1.0)
    assert ci == {
        "auroc": (0.0, 1.0),
        "accuracy": (0.0, 1.0),
        "sensitivity": (0.0, 1.0),
        "specificity": (1.0, 1.0),
        "balanced_accuracy": (0.5, 1.0),
    }
