"""Nearest prototypes (Euclidean and cosine) and a prototypical head trained on episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtl_helpers.adaptation import (
    EpisodeStream,
    FeaturePool,
    embedding_map,
    nearest_prototype,
    prototype_logits,
    prototypes,
    prototypical_head,
    train_prototypical,
)


def clusters(centres: torch.Tensor, per_class: int, spread: float, seed: int = 0):
    """Points around each centre, the classes interleaved (labels 0, 1, 0, 1, ...)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(per_class * len(centres)) % len(centres)
    points = centres[labels] + spread * torch.randn(
        len(labels), centres.shape[1], generator=generator
    )
    return points, labels


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_prototypes_of_separable_clusters_classify_perfectly(metric):
    centres = torch.zeros(2, 16)
    centres[0, 0], centres[1, 1] = 5.0, 5.0  # different directions, the same length
    support, labels = clusters(centres, per_class=5, spread=0.5, seed=1)
    query, truth = clusters(centres, per_class=50, spread=0.5, seed=2)
    p = nearest_prototype(support, labels, query, metric)
    assert p.shape == (100, 2)
    assert torch.allclose(p.sum(dim=1), torch.ones(100))
    assert torch.equal(p.argmax(dim=1), truth)
    swapped = nearest_prototype(support, 1 - labels, query, metric)
    assert torch.equal(swapped.argmax(dim=1), 1 - truth)  # it follows the support labels


def test_euclidean_and_cosine_differ_when_only_the_length_tells_the_classes_apart():
    centres = torch.tensor([[1.0, 1.0], [4.0, 4.0]])  # one direction, two lengths
    support, labels = clusters(centres, per_class=5, spread=0.05, seed=3)
    query, truth = clusters(centres, per_class=20, spread=0.05, seed=4)
    euclidean = nearest_prototype(support, labels, query, "euclidean").argmax(dim=1)
    cosine = nearest_prototype(support, labels, query, "cosine").argmax(dim=1)
    assert torch.equal(euclidean, truth)
    assert (cosine == truth).float().mean() < 0.8  # the angle cannot see the length


def test_prototypes_are_class_means_and_logits_are_minus_squared_distances():
    support = torch.tensor([[0.0, 0.0], [4.0, 4.0], [2.0, 0.0], [6.0, 0.0]])
    labels = torch.tensor([0, 1, 0, 0])
    assert torch.allclose(prototypes(support, labels), torch.tensor([[8 / 3, 0.0], [4.0, 4.0]]))
    query = torch.tensor([[3.0, 1.0]])
    expected = -torch.tensor([[(3 - 8 / 3) ** 2 + 1.0, 1.0 + 9.0]])
    assert torch.allclose(prototype_logits(support, labels, query), expected)
    cosine = prototype_logits(support, labels, query, "cosine")
    assert torch.allclose(cosine, 10 * torch.tensor([[3 / 10**0.5, 4 / (10**0.5 * 2**0.5)]]))


def test_a_missing_class_or_metric_is_refused():
    support, query = torch.zeros(3, 2), torch.zeros(1, 2)
    with pytest.raises(ValueError, match=r"no example of class\(es\) \[1\]"):
        prototypes(support, torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match="metric must be one of .* got 'manhattan'"):
        prototype_logits(support, torch.tensor([0, 1, 1]), query, "manhattan")


def noisy_pool(name: str, seed: int) -> FeaturePool:
    """The class shows in feature 0 only; 31 other features are louder noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = np.arange(120) % 2
    features = 3.0 * torch.randn(120, 32, generator=generator)
    features[:, 0] = torch.as_tensor(labels * 2.0 - 1.0) + 0.3 * torch.randn(
        120, generator=generator
    )
    return FeaturePool(name, features, labels, [f"{name}{i}" for i in range(120)])


def test_a_prototypical_head_learns_a_space_where_prototypes_work():
    pools = [noisy_pool("a", 0), noisy_pool("b", 1)]
    start = embedding_map(32, 8, seed=0)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    embed, losses = train_prototypical(start, EpisodeStream(pools, (1, 5), 5, seed=0), 300, 1e-2)
    assert len(losses) == 300
    assert np.mean(losses[-30:]) < 0.5 * np.mean(losses[:30])
    assert all(torch.equal(before[k], v) for k, v in start.state_dict().items())  # a copy trained
    test = noisy_pool("test", 2)
    support, labels = test.features[:10], torch.as_tensor(test.labels[:10])
    query, truth = test.features[10:], torch.as_tensor(test.labels[10:])
    learned = prototypical_head(embed)(support, labels, query).argmax(dim=1)
    raw = nearest_prototype(support, labels, query).argmax(dim=1)
    assert (learned == truth).float().mean() > 0.9
    assert (learned == truth).float().mean() > (raw == truth).float().mean()
