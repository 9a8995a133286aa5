"""Notebook 09's review: the twin mean, choosing a rate by it, paired verdicts, and docstrings
that say what the notebook says."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_few_shot import separable_pool  # feature 0 is the label; two images per patient

from medtl_helpers.adaptation import (
    choose_setting,
    compare_few_shot,
    nearest_prototype,
    paired_against,
    sample_episodes,
    score_method,
)
from medtl_helpers.adaptation.few_shot import paired_verdict, score_twins
from medtl_helpers.adaptation.few_shot_choice import few_shot_error
from medtl_helpers.adaptation.pool_bootstrap import pool_interval


def memoriser(support, labels, query):
    """Ignores the support: label 1 is PNEUMONIA in its weights, as in an unshuffled θ."""
    p1 = (query[:, 0] > 1.5).float()
    return torch.stack([1 - p1, p1], dim=1)


def test_the_twin_mean_removes_a_fixed_mapping_and_keeps_a_support_reader():
    pool = separable_pool()
    episodes = sample_episodes(pool, 2, 3, 12, seed=0, shuffle=False)
    true = score_method(memoriser, pool, episodes)
    twin = score_twins(memoriser, pool, episodes)
    assert true["accuracy"] == 1.0 and true["auroc"] == 1.0
    assert twin["accuracy"] == 0.5 and twin["auroc"] == 0.5  # right once, wrong once, per episode
    assert np.array_equal(twin["accuracy_per_episode"], np.full(12, 0.5))
    assert twin["episodes"] == 12 and twin["query_unit"].shape == (24, 6)
    reader = score_twins(nearest_prototype, pool, episodes)
    assert reader["accuracy"] == score_method(nearest_prototype, pool, episodes)["accuracy"] == 1.0
    assert pool_interval(twin, "accuracy", n_boot=200) == pytest.approx((0.5, 0.5, 0.5))


def test_a_rate_chosen_by_the_twin_mean_does_not_reward_a_lean():
    pool = separable_pool()
    episodes = sample_episodes(pool, 2, 3, 10, seed=1, shuffle=False)
    candidates = {0.1: memoriser, 0.3: nearest_prototype}  # both right on the true labels
    true = {lr: few_shot_error(m, pool, episodes) for lr, m in candidates.items()}
    twin = {lr: few_shot_error(m, pool, episodes, twin=True) for lr, m in candidates.items()}
    assert true == {0.1: 0.0, 0.3: 0.0} and choose_setting(true) == 0.1  # the tie keeps the lean
    assert twin == {0.1: 0.5, 0.3: 0.0} and choose_setting(twin) == 0.3


def test_twin_rows_compare_paired_and_give_a_verdict():
    methods = {"reader": nearest_prototype, "memoriser": memoriser}
    pools = {"s": separable_pool()}
    true = compare_few_shot(methods, pools, (2,), 3, 12)
    twin = compare_few_shot(methods, pools, (2,), 3, 12, twin=True)
    assert len({r["episode_key"] for r in twin}) == 1
    assert {r["episode_key"] for r in twin}.isdisjoint({r["episode_key"] for r in true})
    on_true = paired_verdict(true, "reader", "memoriser", "s", 2)
    assert on_true["mean"] == 0.0 and on_true["verdict"] == "unclear"
    assert on_true["reaches 0"] == "episodes"
    on_twin = paired_verdict(twin, "reader", "memoriser", "s", 2, n_boot=200)
    assert on_twin["mean"] == 0.5 and on_twin["pool"] == pytest.approx((0.5, 0.5))
    assert on_twin["verdict"] == "better" and on_twin["reaches 0"] == ""
    assert paired_verdict(twin, "memoriser", "reader", "s", 2)["verdict"] == "worse"
    table = paired_against(twin, [("reader", "memoriser")], n_boot=200)
    assert table.loc["reader - memoriser", ("s", 2)].endswith(" better")


def flat(doc: str | None) -> str:
    return " ".join((doc or "").split())


def test_the_docstrings_say_what_notebook_09_says():
    from medtl_helpers.adaptation import few_shot, reptile, selection

    loop = flat(reptile.__doc__)
    assert "draw a task, adapt" not in loop and "mean over the tasks of (φ_task − θ)" in loop
    assert "in-sample" in flat(reptile.meta_train.__doc__)
    assert "positively correlated" in flat(few_shot.__doc__)
    assert "smaller than what two unpaired intervals suggest" not in flat(few_shot.__doc__)
    for doc in (few_shot.tied_best.__doc__, few_shot.winners.__doc__):
        assert "cannot be told apart" not in flat(doc) and "overlap" in flat(doc)
    assert "query error" in flat(selection.__doc__) and "swapped twin" in flat(selection.__doc__)
    assert "The criterion is the validation loss" not in flat(selection.__doc__)


def test_episodes_and_reptile_docstrings_carry_the_notebooks_caveats():
    import inspect

    from medtl_helpers.adaptation import episodes, reptile

    for doc in (episodes.__doc__, episodes.sample_episode.__doc__):
        assert "PneumoniaMNIST" in flat(doc) and "two films of one child" in flat(doc)
    assert "close to every task's adapted weights" not in flat(reptile.__doc__)
    assert "lives in the hidden layer" in flat(reptile.__doc__)
    defaults = inspect.signature(reptile.meta_train).parameters
    assert defaults["epsilon"].default == 1.0 and defaults["meta_batch"].default == 4
    assert "Notebook 09 passes all of these" in flat(reptile.meta_train.__doc__)


def test_logistic_regressions_docstring_says_c_is_untuned_and_scale_dependent():
    from medtl_helpers.adaptation import logistic_regression

    doc = flat(logistic_regression.__doc__)
    assert "not a tuned value" in doc and "dividing C by s²" in doc


def test_pool_contrast_pairs_an_episode_set_with_its_swapped_twins():
    from medtl_helpers.adaptation import swap_labels
    from medtl_helpers.adaptation.pool_bootstrap import pool_contrast, pool_difference

    pool = separable_pool()
    episodes = sample_episodes(pool, 2, 3, 12, seed=0, shuffle=False)
    swapped = [swap_labels(e) for e in episodes]
    rows = {
        (name, labels): score_method(method, pool, drawn)
        for name, method in (("memoriser", memoriser), ("reader", nearest_prototype))
        for labels, drawn in (("true", episodes), ("swapped", swapped))
    }
    # pool_difference refuses the twins (other labels, another episode key); the contrast takes
    # them, and every resample of a memoriser gives 1 − 0.
    with pytest.raises(ValueError, match="not scored on the same episodes"):
        pool_difference(rows["memoriser", "true"], rows["memoriser", "swapped"])
    memorised = [(1, rows["memoriser", "true"]), (-1, rows["memoriser", "swapped"])]
    assert pool_contrast(memorised, n_boot=200) == (1.0, 1.0, 1.0)
    read = [(1, rows["reader", "true"]), (-1, rows["reader", "swapped"])]
    assert pool_contrast(read, n_boot=200) == (0.0, 0.0, 0.0)
    twin_means = [(0.5, rows["reader", t]) for t in ("true", "swapped")]
    twin_means += [(-0.5, rows["memoriser", t]) for t in ("true", "swapped")]
    assert pool_contrast(twin_means, n_boot=200) == (0.5, 0.5, 0.5)
    other = score_method(memoriser, pool, sample_episodes(pool, 2, 3, 12, seed=5, shuffle=False))
    with pytest.raises(ValueError, match="not scored on the same query images"):
        pool_contrast([(1, rows["memoriser", "true"]), (-1, other)])


def test_pool_contrast_of_two_methods_is_pool_difference():
    from medtl_helpers.adaptation.pool_bootstrap import pool_contrast, pool_difference

    pool = separable_pool()
    pool.features[:, 0] += 2.5 * torch.randn(80, generator=torch.Generator().manual_seed(1))
    episodes = sample_episodes(pool, 2, 3, 12, seed=0)
    a, b = (score_method(m, pool, episodes) for m in (nearest_prototype, memoriser))
    for metric in ("accuracy", "auroc"):
        got = pool_contrast([(1, a), (-1, b)], metric, n_boot=300, seed=2)
        want = pool_difference(a, b, metric, n_boot=300, seed=2)
        assert got == pytest.approx(want) and got[1] < got[2]


def test_few_shot_choice_says_the_notebook_chooses_by_the_twin_mean():
    from medtl_helpers.adaptation import few_shot_choice

    doc = flat(few_shot_choice.__doc__)
    assert "twin mean" in doc and "`twin=True`" in doc and "Reptile's rate" in doc
    error_doc = flat(few_shot_choice.few_shot_error.__doc__)
    assert "neither lowers nor raises" not in error_doc and "sign of a lean" in error_doc
