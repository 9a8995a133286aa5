"""Few-shot episodes (notebook 09): K labelled support images per class and a query set to score.

An episode imitates one small task: a learner sees the support set (K images of each class, with
labels), and is scored on the query set. The support and query images come from different
patients, as the train and test splits of every notebook do: two films of one child in both
would let a learner match the child instead of the disease. That holds where the pool has patient
ids (a Kermany folder). PneumoniaMNIST has none: its patient ids are image ids (`FeaturePool.unit`
is "images"), so there no image is on both sides, but two films of one child still can be.

**The labels are shuffled per episode** unless told not to: a random permutation maps the true
labels (0 NORMAL, 1 PNEUMONIA) to the episode's labels. With two fixed classes, every episode is
otherwise the same task, and a meta-learner can store "this kind of feature means label 1" in its
weights and ignore the support set (Yin et al., "Meta-Learning without Memorization", ICLR 2020).
With shuffled labels only the support set says which label is which.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from medtl_helpers.adaptation.heads import as_features
from medtl_helpers.data import ImageSet
from medtl_helpers.errors import DataError

N_CLASSES = 2


@dataclass(frozen=True)
class FeaturePool:
    """The frozen features of one site's images (computed once), their labels and patients.

    `unit` says what one id in `patients` stands for (`ImageSet.unit`): "patients" on a Kermany
    folder, "images" on PneumoniaMNIST, whose images carry no patient ids.
    """

    name: str
    features: torch.Tensor  # float32 (N, D)
    labels: np.ndarray  # int (N,), the true labels
    patients: list[str]
    unit: str = "patients"

    def __post_init__(self) -> None:
        if not len(self.features) == len(self.labels) == len(self.patients):
            raise ValueError(
                f"FeaturePool {self.name!r}: {len(self.features)} feature rows, "
                f"{len(self.labels)} labels and {len(self.patients)} patients must be equal"
            )

    def __len__(self) -> int:
        return len(self.labels)


def feature_pool(name: str, features, data: ImageSet) -> FeaturePool:
    """A FeaturePool from features (numpy or torch, one row per image of `data`) and `data`."""
    labels = data.labels.numpy().astype(np.int64)
    return FeaturePool(name, as_features(features), labels, list(data.patients), data.unit)


@dataclass(frozen=True)
class Episode:
    """Indices into a pool, and the episode's labels: `permutation[true label]`."""

    pool: str
    support: np.ndarray
    support_labels: np.ndarray
    query: np.ndarray
    query_labels: np.ndarray
    permutation: np.ndarray

    @property
    def k(self) -> int:
        return len(self.support) // N_CLASSES

    def true_query_labels(self) -> np.ndarray:
        """The query's true labels (0 NORMAL, 1 PNEUMONIA), whatever the permutation."""
        return np.argsort(self.permutation)[self.query_labels]

    def shared_patients(self, pool: FeaturePool) -> set[str]:
        """The patients with an image in the support set and one in the query set (a leak)."""
        support = {pool.patients[i] for i in self.support}
        return support & {pool.patients[i] for i in self.query}

    def tensors(self, pool: FeaturePool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(support features, support episode labels, query features) from `pool`."""
        if pool.name != self.pool:
            raise ValueError(f"this episode was drawn from {self.pool!r}, not {pool.name!r}")
        labels = torch.as_tensor(self.support_labels, dtype=torch.long)
        return pool.features[self.support], labels, pool.features[self.query]


def swap_labels(episode: Episode) -> Episode:
    """The same episode with label 0 and label 1 exchanged, in the support and the query."""
    swap = np.array([1, 0])
    return replace(
        episode,
        support_labels=swap[episode.support_labels],
        query_labels=swap[episode.query_labels],
        permutation=swap[episode.permutation],
    )


def _take_images(
    pool: FeaturePool, label: int, count: int, exclude: set[str], rng: np.random.Generator
) -> list[int]:
    """`count` images of class `label` from patients outside `exclude`, whole patients at a time
    in random order (the last patient may give only some of its images)."""
    by_patient: dict[str, list[int]] = {}
    for i in np.flatnonzero(pool.labels == label):
        if pool.patients[i] not in exclude:
            by_patient.setdefault(pool.patients[i], []).append(int(i))
    names = sorted(by_patient)
    taken: list[int] = []
    for j in rng.permutation(len(names)):
        taken.extend(by_patient[names[j]])
        if len(taken) >= count:
            return taken[:count]
    raise DataError(
        f"pool {pool.name!r}: class {label} has {len(taken)} images from patients outside the "
        f"support, and the episode needs {count}; ask for a smaller K or query, or use a larger "
        "pool"
    )


def sample_episode(
    pool: FeaturePool, k: int, n_query: int, rng: np.random.Generator, shuffle: bool = True
) -> Episode:
    """K support and `n_query` query images per class, with no patient in both.

    On PneumoniaMNIST the patient ids are image ids, so that means no image in both: two films of
    one child can still fall on both sides. The support is drawn first, class by class; the query
    then comes from the patients left.
    With `shuffle`, the episode's labels are a random permutation of the true ones. The
    permutation is drawn either way, so that a stream with the shuffle and one without, seeded
    alike, draw the same images and differ in the labels alone.
    """
    if k < 1 or n_query < 1:
        raise ValueError(f"k and n_query must be at least 1, got k={k}, n_query={n_query}")
    support = [_take_images(pool, label, k, set(), rng) for label in range(N_CLASSES)]
    used = {pool.patients[i] for part in support for i in part}
    query = [_take_images(pool, label, n_query, used, rng) for label in range(N_CLASSES)]
    drawn = rng.permutation(N_CLASSES)
    permutation = drawn if shuffle else np.arange(N_CLASSES)
    true_support = np.repeat(np.arange(N_CLASSES), k)
    true_query = np.repeat(np.arange(N_CLASSES), n_query)
    return Episode(
        pool=pool.name,
        support=np.concatenate(support),
        support_labels=permutation[true_support],
        query=np.concatenate(query),
        query_labels=permutation[true_query],
        permutation=permutation,
    )


def sample_episodes(
    pool: FeaturePool, k: int, n_query: int, n: int, seed: int = 0, shuffle: bool = True
) -> list[Episode]:
    """`n` episodes from one pool, the same for the same seed."""
    rng = np.random.default_rng(seed)
    return [sample_episode(pool, k, n_query, rng, shuffle) for _ in range(n)]


class EpisodeStream:
    """Meta-training episodes: each from a pool drawn at random, with K drawn from `ks`."""

    def __init__(
        self,
        pools: list[FeaturePool],
        ks: tuple[int, ...],
        n_query: int,
        seed: int = 0,
        shuffle: bool = True,
    ):
        if not pools:
            raise ValueError("EpisodeStream needs at least one pool")
        self.pools, self.ks, self.n_query, self.shuffle = pools, ks, n_query, shuffle
        self.rng = np.random.default_rng(seed)

    def next(self) -> tuple[FeaturePool, Episode]:
        pool = self.pools[self.rng.integers(len(self.pools))]
        k = int(self.ks[self.rng.integers(len(self.ks))])
        return pool, sample_episode(pool, k, self.n_query, self.rng, self.shuffle)
