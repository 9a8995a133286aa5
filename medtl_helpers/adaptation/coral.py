"""Deep CORAL: align the second-order statistics of source and target activations.

CORAL (Sun, Feng & Saenko, 2016) measures the gap between two domains by the covariances of their
features; Deep CORAL (Sun & Saenko, 2016) trains a network on labelled source images with the
classification loss plus λ times that gap, measured between a source batch and an unlabelled
target batch, on the last layer's outputs:

    CORAL(S, T) = ‖C_S − C_T‖²_F / (4 d²)

where C is the d x d covariance of a batch of d-dimensional activations. Here the last layer is
the head on the source model's frozen features, so a step costs about a millisecond: the head
learns to rely on directions of the features whose spread is the same at both sites.
"""

from __future__ import annotations

import torch
from torch import nn

from medtl_helpers.adaptation.heads import as_features, train_head


def covariance(x: torch.Tensor) -> torch.Tensor:
    """The (d, d) covariance of (n, d) features, with the unbiased n - 1 divisor."""
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"covariance needs (n, d) features with n >= 2, got {tuple(x.shape)}")
    # torch.cov reads each row as one variable: here a row is one image, so transpose
    return torch.cov(x.T, correction=1)


def coral_distance(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖C_S − C_T‖²_F / (4 d²): 0 for feature sets with equal covariances, differentiable."""
    if source.shape[1] != target.shape[1]:
        raise ValueError(
            f"source has {source.shape[1]} features per image and target {target.shape[1]}: "
            "compute both with the same backbone"
        )
    d = source.shape[1]
    return (covariance(source) - covariance(target)).pow(2).sum() / (4 * d * d)


def deep_coral(
    head: nn.Module,
    source_features,
    source_labels: torch.Tensor,
    target_features,
    val_features,
    val_labels: torch.Tensor,
    *,
    weight: float,
    steps: int = 200,
    lr: float = 1e-3,
    batch_size: int = 64,
    eval_every: int = 20,
    seed: int = 0,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """A copy of `head` trained on labelled source features plus `weight` x CORAL of its outputs.

    Each step pairs a source batch with a random batch of unlabelled target features of the same
    size, drawn with a generator of its own (`train_head`), so the source batches are the same
    whatever the weight. `weight=0` trains the head on the source alone, on those same batches:
    the control that says whether the alignment, rather than the extra training, made the
    difference.
    """
    source, target = as_features(source_features), as_features(target_features)

    def coral_term(model: nn.Module, index: torch.Tensor, generator: torch.Generator):
        if not weight:
            return torch.zeros(())
        pick = torch.randint(len(target), (len(index),), generator=generator)
        return weight * coral_distance(model(source[index]), model(target[pick]))

    return train_head(
        head,
        source,
        source_labels,
        val_features,
        val_labels,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        eval_every=eval_every,
        seed=seed,
        extra_loss=coral_term,
    )
