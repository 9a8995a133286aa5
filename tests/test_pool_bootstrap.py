"""The bootstrap of a few-shot pool over its units: weighted episode scores, intervals, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medtl_helpers.adaptation import FeaturePool, compare_few_shot, paired_against, winners
from medtl_helpers.adaptation.pool_bootstrap import (
    pool_difference,
    pool_interval,
    resampled_scores,
    weighted_episode_scores,
)

N_PATIENTS, PER_CLASS = 6, 10  # each patient: 10 NORMAL and 10 PNEUMONIA images


def patient_pool(name: str, per_image_ids: bool = False) -> FeaturePool:
    """Feature 0 is the label, feature 1 the patient's number; ids per patient or per image."""
    labels = np.tile(np.repeat([0, 1], PER_CLASS), N_PATIENTS)
    patient = np.repeat(np.arange(N_PATIENTS), 2 * PER_CLASS)
    features = torch.tensor(np.stack([labels, patient], axis=1), dtype=torch.float32)
    ids = [f"i{i}" for i in range(len(labels))] if per_image_ids else [f"p{j}" for j in patient]
    return FeaturePool(name, features, labels, ids, "images" if per_image_ids else "patients")


def right_except(wrong: set[int]):
    """A method that ignores the support: right on every patient but those in `wrong`."""

    def method(support, labels, query):
        label, patient = query[:, 0], query[:, 1].long()
        flip = torch.tensor([int(p) in wrong for p in patient], dtype=torch.float32)
        p1 = 0.9 * (label * (1 - flip) + (1 - label) * flip) + 0.05
        return torch.stack([1 - p1, p1], dim=1)

    return method


def scored(pool: FeaturePool, methods: dict, n_episodes: int = 30) -> list[dict]:
    return compare_few_shot(methods, {"s": pool}, (1,), 3, n_episodes, seed=0)


def test_weighted_scores_count_each_query_as_often_as_its_unit_was_drawn():
    truth = np.array([[0, 0, 1, 1]])
    p = np.array([[0.2, 0.6, 0.4, 0.9]])
    correct = (p >= 0.5) == truth  # right, wrong, wrong, right
    weights = np.array([[[1.0, 1, 1, 1]], [[2.0, 0, 1, 1]], [[0.0, 0, 0, 0]]])
    accuracy = weighted_episode_scores(weights, truth, p, correct, "accuracy")
    assert accuracy[:2, 0].tolist() == [0.5, 0.75] and np.isnan(accuracy[2, 0])
    auroc = weighted_episode_scores(weights, truth, p, correct, "auroc")
    assert auroc[0, 0] == pytest.approx(roc_auc_score(truth[0], p[0])) == 0.75
    assert auroc[1, 0] == 1.0  # the one negative ranked above a positive is not drawn
    rng = np.random.default_rng(1)
    w, q = rng.integers(0, 3, size=(1, 1, 8)).astype(float), rng.random((1, 8)).round(1)
    t = np.array([[0, 1, 0, 1, 0, 1, 0, 1]])
    expected = roc_auc_score(t[0], q[0], sample_weight=w[0, 0])
    assert weighted_episode_scores(w, t, q, q > 0.5, "auroc")[0, 0] == pytest.approx(expected)
    with pytest.raises(ValueError, match="'accuracy' or 'auroc', got 'ppv'"):
        weighted_episode_scores(weights, truth, p, correct, "ppv")


def test_queries_from_a_few_repeated_units_give_a_wider_interval_than_independent_units():
    method = {"half right": right_except({3, 4, 5})}
    clustered = scored(patient_pool("s"), method)[0]
    independent = scored(patient_pool("s", per_image_ids=True), method)[0]
    assert (clustered["unit"], independent["unit"]) == ("patients", "images")
    assert (clustered["pool_units"], independent["pool_units"]) == (6, 120)
    mean_c, low_c, high_c = pool_interval(clustered, n_boot=400)
    mean_i, low_i, high_i = pool_interval(independent, n_boot=400)
    assert mean_c == clustered["accuracy"] and low_c <= mean_c <= high_c
    assert low_i <= mean_i <= high_i
    assert high_c - low_c > 2 * (high_i - low_i)  # 0.57 against 0.21


def test_identical_methods_differ_by_zero_in_every_resample():
    rows = scored(patient_pool("s"), {"a": right_except({2}), "b": right_except({2})})
    assert pool_difference(rows[1], rows[0], "accuracy", n_boot=200) == (0.0, 0.0, 0.0)
    assert pool_difference(rows[1], rows[0], "auroc", n_boot=200) == (0.0, 0.0, 0.0)
    same = resampled_scores(rows[0], "accuracy", 200, seed=3)
    assert np.array_equal(same, resampled_scores(rows[1], "accuracy", 200, seed=3))


def test_a_verdict_needs_both_intervals_and_says_which_holds_zero():
    """ "bad" is wrong only on patient 0's images: a gap in nearly every episode, but the pool
    holds 6 patients, and a resample without patient 0 (a third of them) shows no gap."""
    rows = scored(patient_pool("s"), {"good": right_except(set()), "bad": right_except({0})})
    episodes_only = paired_against(rows, [("good", "bad")])
    assert episodes_only.iloc[0, 0].endswith(" better")
    both = paired_against(rows, [("good", "bad")], n_boot=300)
    assert both.iloc[0, 0].endswith(" unclear (pool)")
    assert both.iloc[0, 0].count("[") == 2
    assert winners(rows, paired=True)["verdict"].tolist() == ["wins"]
    table = winners(rows, paired=True, n_boot=300)
    assert table["verdict"].tolist() == ["tied with bad (pool)"]
    assert table["top"].tolist() == [("good", "bad")]


def test_rows_without_per_query_results_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="holds no per-query results"):
        resampled_scores({"method": "x", "query_unit": None})
    rows = scored(patient_pool("s"), {"a": right_except(set())})
    other = dict(rows[0], episode_key=rows[0]["episode_key"] + 1)
    with pytest.raises(ValueError, match="not scored on the same episodes"):
        pool_difference(rows[0], other)
