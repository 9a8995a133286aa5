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
