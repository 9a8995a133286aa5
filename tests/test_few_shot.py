"""Few-shot methods scored over episodes: scores, intervals, the K x method table, the verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medtl_helpers.adaptation import (
    Episode,
    FeaturePool,
    compare_few_shot,
    k_table,
    logistic_regression,
    mean_interval,
    nearest_prototype,
    paired_against,
    paired_difference,
    paired_tied_best,
    score_episode,
    score_method,
    tied_best,
    winners,
)


def test_an_episode_is_scored_in_its_own_labels_and_auroc_in_the_true_ones():
    episode = Episode(
        "x",
        np.array([0, 1]),
        np.array([1, 0]),
        np.arange(4),
        np.array([1, 1, 0, 0]),  # true labels 0, 0, 1, 1 under the permutation [1, 0]
        np.array([1, 0]),
    )
    p = torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.9, 0.1]])  # episode label 1, 0, 0, 0
    scores = score_episode(p, episode)
    assert scores["accuracy"] == 0.75
    pneumonia = p[:, 0].numpy()  # episode label 0 is PNEUMONIA: 0.2, 0.6 | 0.7, 0.9
    assert scores["auroc"] == pytest.approx(roc_auc_score([0, 0, 1, 1], pneumonia)) == 1.0
    wrong_column = score_episode(p.flip(dims=[1]), episode)["auroc"]
    assert wrong_column == 0.0


def test_the_interval_is_the_mean_plus_minus_1_96_standard_errors():
    mean, low, high = mean_interval([0.0, 1.0, 1.0, 0.0])
    half = 1.96 * np.std([0, 1, 1, 0], ddof=1) / 2
    assert (mean, low, high) == pytest.approx((0.5, 0.5 - half, 0.5 + half))
    assert mean_interval([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7, 0.7))
    with pytest.raises(ValueError, match="at least 2 episodes, got 1"):
        mean_interval([0.5])


def separable_pool(name: str = "site") -> FeaturePool:
    """Feature 0 is the label (plus noise); two images per patient."""
    generator = torch.Generator().manual_seed(0)
    labels = np.repeat([0, 1], 40)
    features = 0.1 * torch.randn(80, 4, generator=generator)
    features[:, 0] += torch.as_tensor(labels, dtype=torch.float32) * 3
    return FeaturePool(name, features, labels, [f"{name}{i // 2}" for i in range(80)])


def test_logistic_regression_fits_the_support_and_gives_probabilities():
    pool = separable_pool()
    support, labels = pool.features[::8], torch.as_tensor(pool.labels[::8])
    p = logistic_regression(support, labels, pool.features)
    assert p.shape == (80, 2) and torch.allclose(p.sum(dim=1), torch.ones(80))
    assert np.array_equal(p.argmax(dim=1).numpy(), pool.labels)


def always_label_one(support, labels, query):
    return torch.tensor([[0.0, 1.0]]).repeat(len(query), 1)


def knows_the_true_labels(support, labels, query):
    """The class from feature 0, ignoring the support: right only when labels are not shuffled."""
    p1 = (query[:, 0] > 1.5).float()
    return torch.stack([1 - p1, p1], dim=1)


def test_a_method_is_scored_over_the_episodes_with_its_time():
    pool = separable_pool()
    rows = compare_few_shot(
        {
            "prototype": lambda s, y, q: nearest_prototype(s, y, q),
            "label one": always_label_one,
            "true labels": knows_the_true_labels,
        },
        {"in-domain": pool},
        ks=(1, 3),
        n_query=4,
        n_episodes=30,
    )
    assert [(r["K"], r["method"]) for r in rows][:3] == [
        (1, "prototype"),
        (1, "label one"),
        (1, "true labels"),
    ]
    by = {(r["K"], r["method"]): r for r in rows}
    assert by[(3, "prototype")]["accuracy"] == 1.0 and by[(3, "prototype")]["auroc"] == 1.0
    assert by[(3, "label one")]["accuracy"] == 0.5  # balanced query: chance
    assert by[(3, "label one")]["auroc"] == 0.5
    assert by[(1, "true labels")]["accuracy"] == 1.0  # the test episodes keep the true labels
    assert all(r["episodes"] == 30 and r["ms_per_episode"] > 0 for r in rows)
    assert all(r["setting"] == "in-domain" for r in rows)


def test_every_method_sees_the_same_episodes():
    seen: dict[str, list] = {"a": [], "b": []}

    def recorder(name):
        def method(support, labels, query):
            seen[name].append((support.clone(), query.clone()))
            return always_label_one(support, labels, query)

        return method

    compare_few_shot({n: recorder(n) for n in seen}, {"s": separable_pool()}, (2,), 3, 10)
    assert len(seen["a"]) == 10
    for (sa, qa), (sb, qb) in zip(seen["a"], seen["b"]):
        assert torch.equal(sa, sb) and torch.equal(qa, qb)


def test_score_method_runs_on_one_thread_and_restores_the_setting():
    before = torch.get_num_threads()
    pool = separable_pool()
    episodes = [
        Episode(
            "site",
            np.array([0, 79]),
            np.array([0, 1]),
            np.array([2, 77]),
            np.array([0, 1]),
            np.array([0, 1]),
        )
    ] * 2
    row = score_method(lambda s, y, q: nearest_prototype(s, y, q), pool, episodes)
    assert row["accuracy"] == 1.0 and row["episodes"] == 2
    assert torch.get_num_threads() == before


KEYS = ("setting", "K", "method", "accuracy", "accuracy_low", "accuracy_high")
ROWS = [
    dict(zip(KEYS, values))
    for values in (
        ("val", 1, "A", 0.90, 0.88, 0.92),
        ("val", 1, "B", 0.89, 0.86, 0.91),
        ("val", 1, "C", 0.84, 0.80, 0.875),
        ("val", 1, "D", 0.86, 0.75, 0.885),
        ("val", 5, "E", 0.95, 0.94, 0.96),
        ("val", 5, "F", 0.80, 0.78, 0.82),
    )
]


def test_tied_best_keeps_every_interval_that_reaches_the_best_lower_bound():
    assert tied_best(ROWS, "val", 1) == ["A", "B", "D"]  # best mean first
    assert tied_best(ROWS, "val", 5) == ["E"]
    with pytest.raises(ValueError, match="no rows for setting 'val' and K=2"):
        tied_best(ROWS, "val", 2)


def test_winners_say_wins_only_when_no_interval_reaches_the_best():
    table = winners(ROWS)
    assert table[["setting", "K", "best", "verdict"]].values.tolist() == [
        ["val", 1, "A", "tied with B, D"],
        ["val", 5, "E", "wins"],
    ]
    assert table["mean"].tolist() == [0.90, 0.95]
    assert table["top"].tolist() == [("A", "B", "D"), ("E",)]


def test_the_k_table_has_methods_as_rows_and_setting_k_as_columns():
    rows = [
        dict(r, auroc=r["accuracy"], auroc_low=r["accuracy_low"], auroc_high=r["accuracy_high"])
        for r in ROWS
    ]
    table = k_table(rows, "auroc")
    assert list(table.columns) == [("val", 1), ("val", 5)]
    assert table.loc["A", ("val", 1)] == "0.90 [0.88, 0.92]"
    assert table.loc["E", ("val", 5)] == "0.95 [0.94, 0.96]"
    assert isinstance(table.loc["E", ("val", 1)], float) and math.isnan(table.loc["E", ("val", 1)])


def per_episode_rows(scores: dict[str, list[float]], key: int = 1) -> list[dict]:
    rows = []
    for method, values in scores.items():
        mean, low, high = mean_interval(values)
        rows.append(
            {"setting": "s", "K": 1, "method": method, "episode_key": key, "accuracy": mean}
            | {"accuracy_low": low, "accuracy_high": high}
            | {"accuracy_per_episode": np.asarray(values, dtype=np.float64)}
        )
    return rows


def test_paired_differences_separate_what_overlapping_intervals_hide():
    # Episodes range from hard to easy; A beats B by 0.05 on every one of them (and C ties A
    # on some, loses on others). The unpaired intervals overlap; the paired ones do not.
    hard_to_easy = np.linspace(0.3, 0.9, 20)
    rows = per_episode_rows(
        {
            "A": list(hard_to_easy + 0.05),
            "B": list(hard_to_easy),
            "C": list(hard_to_easy + 0.05 * np.tile([0.0, 2.0], 10)),
        }
    )
    assert tied_best(rows, "s", 1) == ["A", "C", "B"]  # unpaired: none told apart
    mean, low, high = paired_difference(rows, "A", "B", "s", 1)
    assert mean == pytest.approx(0.05) and low == pytest.approx(0.05) == high
    assert paired_tied_best(rows, "s", 1) == ["A", "C"]  # C - A: 0 or +0.05, reaches 0
    assert winners(rows, paired=True)["verdict"].tolist() == ["tied with C"]
    table = paired_against(rows, [("A", "B"), ("B", "A")])
    assert table.loc["A - B", ("s", 1)] == "+0.050 [+0.050, +0.050] better"
    assert table.loc["B - A", ("s", 1)].endswith("worse")


def test_paired_differences_refuse_rows_scored_on_other_episodes():
    rows = per_episode_rows({"A": [0.5, 0.7]}, key=1) + per_episode_rows({"B": [0.4, 0.6]}, key=2)
    with pytest.raises(ValueError, match="'A' and 'B' were not scored on the same episodes"):
        paired_difference(rows, "A", "B", "s", 1)
    with pytest.raises(ValueError, match="expected one row for 'Z' at 's', K=1; got 0"):
        paired_difference(rows, "Z", "B", "s", 1)


def test_compare_few_shot_rows_carry_the_paired_scores():
    methods = {"prototype": nearest_prototype, "label one": always_label_one}
    rows = compare_few_shot(methods, {"s": separable_pool()}, (2,), 3, 12)
    assert len({r["episode_key"] for r in rows}) == 1
    assert all(len(r["accuracy_per_episode"]) == 12 for r in rows)
    mean, low, high = paired_difference(rows, "prototype", "label one", "s", 2)
    assert mean == pytest.approx(0.5) and low > 0  # 1.0 against chance on every episode
