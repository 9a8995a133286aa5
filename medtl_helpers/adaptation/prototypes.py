"""Nearest-prototype classification, and a prototypical head trained on episodes (notebook 09).

A class's **prototype** is the mean of its support features. A query image gets the label of the
nearest prototype: by squared Euclidean distance, or by cosine similarity (the angle between the
vectors, blind to their length). Nothing is trained, so it cannot memorise a label mapping: the
support set alone says which label is which.

A **prototypical network** (Snell, Swersky & Zemel, NeurIPS 2017) learns the space the prototypes
live in: a map g is trained over many episodes so that, after g, each query is nearest its own
class's prototype. Here g is a small layer on the frozen features, so training takes seconds.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from medtl_helpers.adaptation.episodes import N_CLASSES, EpisodeStream
from medtl_helpers.adaptation.heads import one_thread

METRICS = ("euclidean", "cosine")
COSINE_SCALE = 10.0  # cosines lie in [-1, 1]: scaled so the softmax is not nearly flat


def prototypes(support: torch.Tensor, labels: torch.Tensor, n_classes: int = N_CLASSES):
    """(n_classes, D): the mean support feature of each class."""
    missing = [c for c in range(n_classes) if not (labels == c).any()]
    if missing:
        raise ValueError(f"the support set has no example of class(es) {missing}")
    return torch.stack([support[labels == c].mean(dim=0) for c in range(n_classes)])


def prototype_logits(
    support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, metric: str = "euclidean"
) -> torch.Tensor:
    """(n_query, n_classes) logits: minus the squared distance to each prototype, or the scaled
    cosine similarity to it. Their softmax is a probability; their argmax the nearest prototype.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    centres = prototypes(support, labels)
    if metric == "euclidean":
        return -torch.cdist(query, centres).pow(2)
    return COSINE_SCALE * F.normalize(query, dim=1) @ F.normalize(centres, dim=1).T


def nearest_prototype(
    support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, metric: str = "euclidean"
) -> torch.Tensor:
    """(n_query, n_classes) probabilities from `prototype_logits`: a few-shot method."""
    with torch.no_grad():
        return prototype_logits(support, labels, query, metric).softmax(dim=1)


def embedding_map(in_features: int, out_features: int = 64, seed: int = 0) -> nn.Module:
    """The map g a prototypical head learns: one linear layer, seeded."""
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features)


@one_thread()
def train_prototypical(
    embed: nn.Module, stream: EpisodeStream, episodes: int, lr: float = 1e-3
) -> tuple[nn.Module, list[float]]:
    """A copy of `embed` trained on `episodes` episodes from `stream` (Snell et al.'s loss:
    cross-entropy of the query's softmax over minus the squared distances to the prototypes).

    Returns the trained map and the loss of every episode.
    """
    model = copy.deepcopy(embed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(episodes):
        pool, episode = stream.next()
        support, labels, query = episode.tensors(pool)
        logits = prototype_logits(model(support), labels, model(query))
        loss = F.cross_entropy(logits, torch.as_tensor(episode.query_labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model.eval(), losses


def prototypical_head(embed: nn.Module):
    """A few-shot method: the nearest Euclidean prototype after the trained map `embed`."""

    def method(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor):
        with torch.no_grad():
            return nearest_prototype(embed(support), labels, embed(query))

    return method
