"""Reptile on a small head: θ ← θ + ε (φ − θ), and the head adapted by plain SGD."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medtl_helpers.adaptation import (
    EpisodeStream,
    FeaturePool,
    adapt_head,
    fine_tuned,
    meta_head,
    meta_train,
    reptile_step,
)


def task(seed: int, n: int = 10, d: int = 6):
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, d, generator=generator) + 2.0 * y[:, None]
    return x, y


def parameters(head):
    return {name: p.detach().clone() for name, p in head.named_parameters()}


@pytest.mark.parametrize("epsilon", [0.0, 0.25, 1.0])
def test_one_reptile_step_moves_theta_by_epsilon_towards_the_adapted_weights(epsilon):
    head = meta_head(6, hidden=4, seed=0)
    x, y = task(1)
    theta = parameters(head)
    phi = parameters(adapt_head(head, x, y, steps=5, lr=0.1))
    assert any(not torch.equal(theta[n], phi[n]) for n in theta)  # adapting moved the weights
    reptile_step(head, [(x, y)], inner_steps=5, inner_lr=0.1, epsilon=epsilon)
    for name, value in parameters(head).items():
        expected = theta[name] + epsilon * (phi[name] - theta[name])
        assert torch.allclose(value, expected, atol=1e-6), name


def test_with_several_tasks_theta_moves_towards_their_mean():
    head = meta_head(6, hidden=4, seed=0)
    tasks = [task(1), task(2)]
    theta = parameters(head)
    phis = [parameters(adapt_head(head, x, y, 3, 0.1)) for x, y in tasks]
    adapted = reptile_step(head, tasks, inner_steps=3, inner_lr=0.1, epsilon=0.5)
    assert len(adapted) == 2
    for name, value in parameters(head).items():
        mean_phi = (phis[0][name] + phis[1][name]) / 2
        assert torch.allclose(value, theta[name] + 0.5 * (mean_phi - theta[name]), atol=1e-6)
    with pytest.raises(ValueError, match="at least one task"):
        reptile_step(head, [], 1, 0.1, 0.5)


def test_adapting_is_deterministic_lowers_the_loss_and_leaves_the_start_alone():
    head = meta_head(6, hidden=4, seed=0)
    before = parameters(head)
    x, y = task(3)
    first, again = adapt_head(head, x, y, 20, 0.1), adapt_head(head, x, y, 20, 0.1)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))
    assert all(torch.equal(before[n], p) for n, p in head.named_parameters())
    with torch.no_grad():
        assert F.cross_entropy(first(x), y) < F.cross_entropy(head(x), y)
    unchanged = adapt_head(head, x, y, 0, 0.1)
    assert all(torch.equal(before[n], p) for n, p in unchanged.named_parameters())
    assert not unchanged.training


def test_fine_tuned_returns_query_probabilities_from_the_adapted_head():
    head = meta_head(6, hidden=4, seed=0)
    x, y = task(4)
    p = fine_tuned(head, 10, 0.1)(x[:6], y[:6], x[6:])
    assert p.shape == (4, 2) and torch.allclose(p.sum(dim=1), torch.ones(4))
    with torch.no_grad():
        expected = adapt_head(head, x[:6], y[:6], 10, 0.1)(x[6:]).softmax(dim=1)
    assert torch.allclose(p, expected)


def pool(name: str, seed: int) -> FeaturePool:
    x, y = task(seed, n=40)
    return FeaturePool(name, x, y.numpy(), [f"{name}{i // 2}" for i in range(40)])


def test_meta_train_is_reptile_steps_on_the_stream_with_epsilon_annealed():
    pools = [pool("a", 5), pool("b", 6)]
    head = meta_head(6, hidden=4, seed=0)
    trained, curve = meta_train(
        head, EpisodeStream(pools, (2,), 3, seed=9), 2, meta_batch=2, inner_steps=3, epsilon=0.8
    )
    assert len(curve) == 2 and all(0.0 <= c <= 1.0 for c in curve)
    by_hand = copy.deepcopy(head)
    stream = EpisodeStream(pools, (2,), 3, seed=9)
    for step in range(2):
        drawn = [stream.next() for _ in range(2)]
        tasks = [episode.tensors(p)[:2] for p, episode in drawn]
        reptile_step(by_hand, tasks, 3, 0.1, 0.8 * (1 - step / 2))  # the default inner_lr
    for a, b in zip(trained.parameters(), by_hand.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert not any(torch.equal(a, b) for a, b in zip(trained.parameters(), head.parameters()))


def test_meta_head_is_seeded():
    a, b = meta_head(5, 3, seed=1), meta_head(5, 3, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert [tuple(p.shape) for p in a.parameters()] == [(3, 5), (3,), (2, 3), (2,)]
    assert np.isclose(sum(p.numel() for p in a.parameters()), 3 * 5 + 3 + 2 * 3 + 2)
