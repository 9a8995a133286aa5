"""Heads trained on frozen features: adaptation that costs milliseconds per step.

The source backbone's pooled features of every image are computed once
(`training.backbone_features`). Anything that changes only the last layers can then train on
those vectors instead of on images: the few-shot "head only" baseline, and Deep CORAL, which
aligns the covariances of the head's own outputs, its two logits (`coral.py`). The steps are
chosen on a labelled target validation set, as in `l2sp.fine_tune`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from medtl_helpers.adaptation.l2sp import batches
from medtl_helpers.adaptation.selection import BestOnValidation, validation_scores
from medtl_helpers.models import model_device
from medtl_helpers.training import class_weights

ExtraLoss = Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one CPU thread, then restore the setting.

    A head on 512 features is a handful of tiny matrix products per step: splitting each over
    several threads costs more in waking and waiting than it saves, many times more on a busy
    machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def as_features(x) -> torch.Tensor:
    """numpy or torch features as a float32 CPU tensor."""
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


@torch.no_grad()
def head_probabilities(head: nn.Module, features) -> np.ndarray:
    """P(PNEUMONIA) from a head on frozen features, in eval mode, as float64 numpy."""
    was_training = head.training
    head.eval()
    x = as_features(features).to(model_device(head))
    probs = head(x).float().softmax(dim=1)[:, 1]
    head.train(was_training)
    return probs.cpu().numpy().astype(np.float64)


@one_thread()
def train_head(
    head: nn.Module,
    features,
    labels: torch.Tensor,
    val_features,
    val_labels: torch.Tensor,
    *,
    steps: int = 200,
    lr: float = 1e-3,
    batch_size: int = 32,
    eval_every: int = 10,
    seed: int = 0,
    extra_loss: ExtraLoss | None = None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """A copy of `head` trained on `features` with class-weighted cross-entropy (+ extra_loss).

    `extra_loss(model, batch_index, generator)` adds a term per step (Deep CORAL's alignment).
    Its generator is its own, seeded with `seed + 1`, so what it draws never moves the source
    batches: runs that differ only in the extra term train on the same batches. The validation
    loss is scored at step 0 and every `eval_every` steps; the best step's weights are returned
    with the curve (which shows the validation AUROC too). The copy trains on the CPU, where the
    features are, whatever device `head` is on.
    """
    model = copy.deepcopy(head).cpu()
    x, y = as_features(features), torch.as_tensor(labels, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    extra_generator = torch.Generator().manual_seed(seed + 1)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(y))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    best = BestOnValidation()
    best.offer(0, model, **validation_scores(val_labels, head_probabilities(model, val_features)))
    for step, index in enumerate(batches(len(y), batch_size, steps, generator), start=1):
        model.train()
        task = loss_fn(model(x[index]), y[index])
        extra = extra_loss(model, index, extra_generator) if extra_loss else torch.zeros(())
        optimizer.zero_grad(set_to_none=True)
        (task + extra).backward()
        optimizer.step()
        if step % eval_every == 0 or step == steps:
            scores = validation_scores(val_labels, head_probabilities(model, val_features))
            best.offer(step, model, **scores, task_loss=task.item(), extra_loss=extra.item())
    return best.restore(model.eval()), best.curve
