"""Episodes: K support images per class and a query, patient-disjoint, labels shuffled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtl_helpers.adaptation import (
    Episode,
    EpisodeStream,
    FeaturePool,
    feature_pool,
    sample_episode,
    sample_episodes,
    swap_labels,
)
from medtl_helpers.data import ImageSet
from medtl_helpers.errors import DataError


def make_pool(name: str = "site", patients_per_class: int = 12, seed: int = 0) -> FeaturePool:
    """Patients with 1 to 4 images each; NORMAL patients are n*, PNEUMONIA patients p*."""
    rng = np.random.default_rng(seed)
    labels, patients = [], []
    for label, prefix in ((0, "n"), (1, "p")):
        for j in range(patients_per_class):
            count = int(rng.integers(1, 5))
            labels += [label] * count
            patients += [f"{prefix}{j}"] * count
    features = torch.randn(len(labels), 8, generator=torch.Generator().manual_seed(seed))
    return FeaturePool(name, features, np.array(labels), patients)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_no_patient_is_in_both_support_and_query(k):
    pool = make_pool()
    for episode in sample_episodes(pool, k, n_query=4, n=200, seed=k):
        support = {pool.patients[i] for i in episode.support}
        query = {pool.patients[i] for i in episode.query}
        assert support.isdisjoint(query)
        assert len(episode.support) == 2 * k and len(episode.query) == 8
        assert episode.k == k
        assert np.bincount(pool.labels[episode.support]).tolist() == [k, k]
        assert np.bincount(pool.labels[episode.query]).tolist() == [4, 4]


def test_shared_patients_names_a_child_on_both_sides():
    pool = FeaturePool("p", torch.zeros(4, 1), np.array([0, 0, 1, 1]), ["a", "a", "b", "c"])
    leaky = Episode("p", np.array([0, 2]), np.array([0, 1]), np.array([1, 3]), np.array([0, 1]),
                    np.array([0, 1]))  # fmt: skip
    clean = Episode("p", np.array([0, 2]), np.array([0, 1]), np.array([3]), np.array([1]),
                    np.array([0, 1]))  # fmt: skip
    assert leaky.shared_patients(pool) == {"a"}  # images 0 and 1 are two films of child a
    assert clean.shared_patients(pool) == set()


def test_the_shuffle_really_permutes_and_the_labels_follow_it():
    pool = make_pool()
    episodes = sample_episodes(pool, 2, n_query=3, n=400, seed=1)
    permutations = [tuple(e.permutation.tolist()) for e in episodes]
    assert set(permutations) == {(0, 1), (1, 0)}
    swapped = permutations.count((1, 0))
    assert 150 < swapped < 250  # about half of 400
    for episode in episodes:
        assert np.array_equal(
            episode.support_labels, episode.permutation[pool.labels[episode.support]]
        )
        assert np.array_equal(episode.query_labels, episode.permutation[pool.labels[episode.query]])
        assert np.array_equal(episode.true_query_labels(), pool.labels[episode.query])
    flipped = next(e for e in episodes if e.permutation[0] == 1)
    assert flipped.support_labels.tolist() == [1, 1, 0, 0]  # NORMAL images carry label 1


def test_without_the_shuffle_the_labels_are_the_true_ones():
    pool = make_pool()
    for episode in sample_episodes(pool, 3, n_query=2, n=50, seed=2, shuffle=False):
        assert episode.permutation.tolist() == [0, 1]
        assert np.array_equal(episode.support_labels, pool.labels[episode.support])
        assert np.array_equal(episode.query_labels, pool.labels[episode.query])


def test_swapped_labels_exchange_0_and_1_and_keep_the_truth():
    pool = make_pool()
    episode = sample_episodes(pool, 2, n_query=3, n=1, seed=3, shuffle=False)[0]
    swapped = swap_labels(episode)
    assert np.array_equal(swapped.support_labels, 1 - episode.support_labels)
    assert np.array_equal(swapped.query_labels, 1 - episode.query_labels)
    assert swapped.permutation.tolist() == [1, 0]
    assert np.array_equal(swapped.true_query_labels(), pool.labels[episode.query])
    assert np.array_equal(swapped.support, episode.support)


def test_the_same_seed_gives_the_same_episodes():
    pool = make_pool()
    first = sample_episodes(pool, 2, n_query=3, n=5, seed=7)
    again = sample_episodes(pool, 2, n_query=3, n=5, seed=7)
    other = sample_episodes(pool, 2, n_query=3, n=5, seed=8)
    assert all(np.array_equal(a.query, b.query) for a, b in zip(first, again))
    assert not all(np.array_equal(a.query, b.query) for a, b in zip(first, other))


def test_a_pool_too_small_for_the_episode_names_the_pool_and_the_fix():
    pool = make_pool("tiny site", patients_per_class=3)
    with pytest.raises(
        DataError, match="pool 'tiny site': class [01] has .* needs 10; ask for a smaller K"
    ):
        sample_episode(pool, 10, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="k and n_query must be at least 1, got k=0"):
        sample_episode(pool, 0, 1, np.random.default_rng(0))


def test_tensors_come_from_the_pool_the_episode_was_drawn_from():
    pool = make_pool()
    episode = sample_episode(pool, 2, 3, np.random.default_rng(0))
    support, labels, query = episode.tensors(pool)
    assert torch.equal(support, pool.features[episode.support])
    assert torch.equal(query, pool.features[episode.query])
    assert labels.dtype == torch.long and labels.tolist() == episode.support_labels.tolist()
    with pytest.raises(ValueError, match="drawn from 'site', not 'other'"):
        episode.tensors(make_pool("other"))


def test_feature_pool_checks_lengths_and_converts():
    with pytest.raises(ValueError, match="3 feature rows, 2 labels and 2 patients must be equal"):
        FeaturePool("x", torch.zeros(3, 2), np.array([0, 1]), ["a", "b"])
    data = ImageSet(
        torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1, 1]), ["a", "b", "b"], "t"
    )
    pool = feature_pool("t", np.ones((3, 5)), data)
    assert pool.features.dtype == torch.float32 and pool.features.shape == (3, 5)
    assert pool.labels.tolist() == [0, 1, 1] and pool.patients == ["a", "b", "b"] and len(pool) == 3
    assert pool.unit == "patients"
    mnist = ImageSet(data.images, data.labels, ["0", "1", "2"], "pneumoniamnist / noise")
    assert feature_pool("m", np.ones((3, 5)), mnist).unit == "images"  # the pool's unit


def test_the_stream_draws_from_every_pool_and_every_k():
    pools = [make_pool("a", seed=1), make_pool("b", seed=2)]
    stream = EpisodeStream(pools, ks=(1, 3), n_query=2, seed=0, shuffle=False)
    drawn = [stream.next() for _ in range(60)]
    assert {pool.name for pool, _ in drawn} == {"a", "b"}
    assert {episode.k for _, episode in drawn} == {1, 3}
    assert all(episode.pool == pool.name for pool, episode in drawn)
    assert all(episode.permutation.tolist() == [0, 1] for _, episode in drawn)
    with pytest.raises(ValueError, match="at least one pool"):
        EpisodeStream([], ks=(1,), n_query=1)


def test_the_shuffle_changes_the_labels_and_nothing_else_in_the_stream():
    # Reptile with and without the shuffle must see the same pools, K and images: the
    # permutation is drawn in both runs, and only the shuffled run uses it.
    pools = [make_pool("a", seed=1), make_pool("b", seed=2)]
    shuffled = EpisodeStream(pools, ks=(1, 3), n_query=2, seed=5, shuffle=True)
    plain = EpisodeStream(pools, ks=(1, 3), n_query=2, seed=5, shuffle=False)
    for _ in range(40):
        (pool_s, ep_s), (pool_p, ep_p) = shuffled.next(), plain.next()
        assert pool_s.name == pool_p.name and ep_s.k == ep_p.k
        assert np.array_equal(ep_s.support, ep_p.support)
        assert np.array_equal(ep_s.query, ep_p.query)
        assert np.array_equal(ep_s.support_labels, ep_s.permutation[ep_p.support_labels])
        assert ep_p.permutation.tolist() == [0, 1]
    pool = make_pool()
    with_shuffle = sample_episodes(pool, 2, n_query=3, n=20, seed=4)
    without = sample_episodes(pool, 2, n_query=3, n=20, seed=4, shuffle=False)
    assert all(np.array_equal(a.query, b.query) for a, b in zip(with_shuffle, without))
