"""Notebook 09's choices on a validation site: logistic regression's C and each group's method."""

from __future__ import annotations

import numpy as np
import torch
from test_few_shot import separable_pool  # feature 0 is the label; two images per patient

from medtl_helpers.adaptation import (
    FeaturePool,
    choose_on_validation,
    few_shot_error,
    logistic_regression,
    logistic_with_c,
    nearest_prototype,
    sample_episodes,
)

GRID = (0.1, 1.0, 10.0)


def nuisance_pool(scale: float) -> FeaturePool:
    """Feature 0 separates the classes (±1, tiny noise); feature 1 is large noise. Times `scale`."""
    generator = torch.Generator().manual_seed(0)
    labels = np.repeat([0, 1], 40)
    features = torch.randn(80, 2, generator=generator) * torch.tensor([0.02, 20.0])
    features[:, 0] += torch.as_tensor(labels, dtype=torch.float32) * 2 - 1
    return FeaturePool("nuisance", features * scale, labels, [f"p{i}" for i in range(80)])


def test_c_is_chosen_from_the_grid_and_the_best_need_not_be_the_default():
    pool = nuisance_pool(0.1)
    episodes = sample_episodes(pool, 3, 5, 10, seed=0, shuffle=False)
    candidates = {c: logistic_with_c(c) for c in GRID}
    chosen, errors = choose_on_validation(candidates, pool, episodes)
    assert chosen in GRID and list(errors) == list(GRID)
    # a strong penalty pulls the weights towards the noisy mean difference; a weak one finds
    # feature 0, so scikit-learn's default C = 1 is not the best here
    assert chosen == 10.0 and errors[10.0] < errors[1.0] < errors[0.1]
    assert errors[10.0] == few_shot_error(candidates[10.0], pool, episodes)


def test_dividing_the_features_by_s_is_dividing_c_by_s_squared():
    pool, s = nuisance_pool(1.0), 4.0
    support, labels = pool.features[::4], torch.as_tensor(pool.labels[::4])
    scaled = logistic_regression(support / s, labels, pool.features / s, c=1.0)
    assert torch.allclose(
        scaled, logistic_regression(support, labels, pool.features, c=1 / s**2), atol=1e-4
    )
    assert not torch.allclose(
        scaled, logistic_regression(support, labels, pool.features), atol=1e-2
    )


def memoriser(support, labels, query):
    """Ignores the support: right on the true labels only."""
    p1 = (query[:, 0] > 1.5).float()
    return torch.stack([1 - p1, p1], dim=1)


def test_a_group_is_represented_by_its_best_on_the_validation_episodes():
    pool = separable_pool()
    episodes = sample_episodes(pool, 2, 3, 10, seed=1, shuffle=False)
    group = {"memoriser": memoriser, "reader": nearest_prototype}
    assert choose_on_validation(group, pool, episodes) == (
        "memoriser",
        {"memoriser": 0.0, "reader": 0.0},
    )
    picked, errors = choose_on_validation(group, pool, episodes, twin=True)
    assert picked == "reader" and errors == {"memoriser": 0.5, "reader": 0.0}
