"""Reptile (Nichol, Achiam & Schulman, 2018): a starting point that adapts in a few steps.

Meta-learning promises weights θ from which a few gradient steps on a new task's K examples give
a good model for that task. Reptile finds them with a loop a student can read in full:

    for each meta-step: draw `meta_batch` tasks (4 by default), adapt a copy of θ to each by a
                        few steps of SGD (giving φ_task), then move θ a fraction ε of the way
                        towards their mean:  θ ← θ + ε · mean over the tasks of (φ_task − θ)

With a batch of one task this is θ ← θ + ε (φ − θ). Reptile is a *first-order* method, like
FOMAML: MAML (Finn et al., 2017) differentiates the query loss through the inner steps (second
derivatives), the first-order methods drop those terms. With
plain SGD, φ − θ is minus the inner learning rate times the sum of the support-loss gradients
along the inner path: with one inner step Reptile is SGD on all tasks mixed (joint training), and
only from the second step on does it differ from it (Nichol et al.). Nichol et al.'s analysis
finds in that difference a term that favours agreement between the gradients of different
minibatches of one task; the inner steps here use the whole support set every time (`adapt_head`),
so what remains of it is the gradient's own change along the inner path (the support loss's
Hessian times its gradient): it favours a θ from which the steps lower the support loss fast,
not agreement between different images of a task. Here θ is a small head on frozen features
(adapting it costs milliseconds): a hidden layer, then the two labels. The tasks are episodes
from several sites, with their labels shuffled (see `episodes`): without the shuffle one
classifier solves every task, whatever its site, and θ can learn that classifier instead of how
to adapt. With the shuffle each label order comes up as often as the other, so the last layer
gains no preference for either on average, and what Reptile can learn lives in the hidden layer:
a representation from which a few steps separate the two classes (notebook 09, section 5).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from medtl_helpers.adaptation.episodes import N_CLASSES, EpisodeStream
from medtl_helpers.adaptation.heads import one_thread


def meta_head(in_features: int, hidden: int = 64, seed: int = 0) -> nn.Module:
    """The head Reptile learns a start for: Linear, ReLU, Linear to the two labels; seeded."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, N_CLASSES))


def adapt_head(head: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float):
    """A copy of `head` after `steps` steps of plain SGD on the cross-entropy of all of (x, y).

    Full batches and no randomness: the same inputs always give the same weights.
    """
    adapted = copy.deepcopy(head).train()
    optimizer = torch.optim.SGD(adapted.parameters(), lr=lr)
    with torch.enable_grad():  # also when called under torch.no_grad()
        for _ in range(steps):
            loss = F.cross_entropy(adapted(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return adapted.eval()


@torch.no_grad()
def reptile_step(
    head: nn.Module,
    tasks: list[tuple[torch.Tensor, torch.Tensor]],
    inner_steps: int,
    inner_lr: float,
    epsilon: float,
) -> list[nn.Module]:
    """One meta-step, in place: θ ← θ + ε · mean over the tasks of (φ_task − θ).

    Returns the adapted heads φ_task (adapted from θ before the step).
    """
    if not tasks:
        raise ValueError("reptile_step needs at least one task")
    adapted = [adapt_head(head, x, y, inner_steps, inner_lr) for x, y in tasks]
    for name, theta in head.named_parameters():
        phis = [dict(a.named_parameters())[name] for a in adapted]
        theta += epsilon * torch.stack([phi - theta for phi in phis]).mean(dim=0)
    return adapted


@one_thread()
def meta_train(
    head: nn.Module,
    stream: EpisodeStream,
    meta_steps: int,
    *,
    meta_batch: int = 4,
    inner_steps: int = 10,
    inner_lr: float = 0.1,
    epsilon: float = 1.0,
) -> tuple[nn.Module, list[float]]:
    """A copy of `head` after `meta_steps` Reptile steps on episodes from `stream`.

    Each meta-step adapts to `meta_batch` tasks, each an episode's support set, by `inner_steps`
    full-batch SGD steps at `inner_lr`, and moves θ towards the mean of their adapted weights.
    ε falls linearly from `epsilon` towards 0 (at step t it is `epsilon` · (1 − t/`meta_steps`),
    so the last step still moves θ), as in Nichol et al., so the last few tasks do not decide
    where θ ends. Notebook 09 passes all of these: `META_BATCH` tasks, `INNER_STEPS` steps,
    ε = 1 (the defaults), and an `inner_lr` chosen from `INNER_LRS` on its validation site, one
    meta-training per candidate; the default rate is only the smallest of those candidates.

    Returns the head and, per meta-step, the mean query accuracy of that step's tasks after
    adapting: θ's fit to episodes from the meta-training pools it trains on (in-sample and
    without a control, so not what meta-training bought at a new site).
    """
    theta = copy.deepcopy(head)
    curve = []
    for step in range(meta_steps):
        drawn = [stream.next() for _ in range(meta_batch)]
        tensors = [episode.tensors(pool) for pool, episode in drawn]
        tasks = [(support, labels) for support, labels, _ in tensors]
        annealed = epsilon * (1 - step / meta_steps)
        adapted = reptile_step(theta, tasks, inner_steps, inner_lr, annealed)
        correct = []
        for phi, (_, episode), (_, _, query) in zip(adapted, drawn, tensors):
            with torch.no_grad():
                predicted = phi(query).argmax(dim=1).numpy()
            correct.append(float((predicted == episode.query_labels).mean()))
        curve.append(sum(correct) / len(correct))
    return theta.eval(), curve


def fine_tuned(head: nn.Module, steps: int, lr: float):
    """A few-shot method: `head` adapted on the support set, its probabilities on the query."""

    def method(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor):
        adapted = adapt_head(head, support, labels, steps, lr)
        with torch.no_grad():
            return adapted(query).softmax(dim=1)

    return method
