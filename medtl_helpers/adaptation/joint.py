"""Joint training on the source's labelled images and the K target images: L_source + λ·L_target.

The way to use a few target labels that keeps training on the source task while learning the
target one (multi-task training):

    L = L_source + λ · L_target

each step on one batch of the source's labelled training images and one batch of the K labelled
target images, each class-weighted cross-entropy. What it needs and costs: the source's labelled
images must still be at hand when adapting (a hospital that received only the source weights
cannot run it), and every step runs a source batch through the network besides the target one:
more work per step than fine-tuning, twice once K reaches the batch size and more below it. L2-SP
(`l2sp`) keeps what the source taught in the weights alone and needs only the K target images.

Everything else is `l2sp.fine_tune` at α = 0: the same optimizer, lr, β on the head, steps,
augmentation, target batches and their augmentation (the same seed draws the same ones),
BatchNorm in eval mode with the source's statistics kept, and the step kept on the target
validation loss. So the arm differs from "fine-tune all" only in the source term. The two limits:
a very large λ is fine-tune all (under SGD with lr·λ held fixed, up to a 1/λ share: tested; Adam
ignores the loss's scale except through its ε, so it comes close), and λ = 0 trains on the
source alone, which only pulls the model towards the source task. So λ orders the settings by how
far they let the model move from the source task: a smaller λ, less movement.

`train_on_pairs` is the loop shared with DANN (`dann`), which also trains on two sets at once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator

import torch
from torch import nn

from medtl_helpers.adaptation.l2sp import (
    _Step,
    batches,
    distance_from_source,
    scores_on,
    source_weights,
)
from medtl_helpers.adaptation.selection import BestOnValidation, choose_setting
from medtl_helpers.data import BatchAugment, ImageSet
from medtl_helpers.metrics import predict_proba
from medtl_helpers.models import freeze, model_device
from medtl_helpers.training import class_weights


class _Rows:
    """The rows of two tensors indexed as one, the first's then the second's, without a copy."""

    def __init__(self, first: torch.Tensor, second: torch.Tensor) -> None:
        if first.shape[1:] != second.shape[1:]:
            raise ValueError(
                f"images of shape {tuple(first.shape[1:])} and {tuple(second.shape[1:])} cannot "
                "share a batch: load both sets at the same image size"
            )
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        n = len(self.first)
        inside = index < n
        rows = self.first.new_empty((len(index), *self.first.shape[1:]))
        rows[inside] = self.first[index[inside]]
        rows[~inside] = self.second[index[~inside] - n]
        return rows


class Stacked:
    """Two image sets seen as one by `l2sp`'s step: the first's images, then the second's.

    `second_labels` replaces the second set's labels, so a set whose labels must not be used
    (DANN's unlabelled target) can be passed with placeholders.
    """

    def __init__(
        self, first: ImageSet, second: ImageSet, second_labels: torch.Tensor | None = None
    ) -> None:
        labels = second.labels if second_labels is None else second_labels
        self.images = _Rows(first.images, second.images)
        self.labels = torch.cat([first.labels, labels])
        self.first_size = len(first)

    def __len__(self) -> int:
        return len(self.labels)


class _SplitAugment:
    """The course augmentation, the first `n` images of a batch from one generator and the rest
    from another: the first set's images then get exactly the draws they would get alone."""

    def __init__(self, n: int, generators: tuple[torch.Generator, torch.Generator]) -> None:
        self.n = n
        self.parts = [BatchAugment(generator=generator) for generator in generators]

    def __call__(self, images: torch.Tensor, size: int | None = None) -> torch.Tensor:
        first, second = self.parts
        return torch.cat([first(images[: self.n], size), second(images[self.n :], size)])


class _JointLoss:
    """CE_source + λ·CE_target on a batch of n target images then source images, class-weighted."""

    def __init__(self, n: int, lam: float, target: ImageSet, source: ImageSet, device) -> None:
        self.n, self.lam = n, lam
        self.target = nn.CrossEntropyLoss(weight=class_weights(target.labels).to(device))
        self.source = nn.CrossEntropyLoss(weight=class_weights(source.labels).to(device))
        self.last: dict[str, float] = {}

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = self.target(logits[: self.n], labels[: self.n])
        source = self.source(logits[self.n :], labels[self.n :])
        self.last = {"target_loss": target.item(), "source_loss": source.item()}
        return source + self.lam * target


def paired_step(
    model, stacked, loss_fn, generators, *, image_size, optimizer, lr, momentum=0.9, beta=0.0
):
    """`l2sp`'s optimizer step (BatchNorm in eval mode, autocast, class weights replaced by
    `loss_fn`), on batches of `stacked`, each augmented by `_SplitAugment`; β on the head."""
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    options = {"lr": lr, "momentum": momentum} if optimizer == "sgd" else {"lr": lr}
    anchor = source_weights(model)  # α = 0: only β's weight decay on the head acts
    step = _Step(model, stacked, anchor, (0.0, beta), optimizer, options, image_size, generators[0])
    step.loss_fn = loss_fn
    step.augment = _SplitAugment(loss_fn.n, generators)
    return step


def paired_batches(
    stacked: Stacked, batch_size: int, steps: int, generators: tuple[torch.Generator, ...]
) -> Iterator[torch.Tensor]:
    """`steps` indices into `stacked`: a batch of the first set's images, then one of the
    second's, each set reshuffled pass after pass by its own generator (`l2sp.batches`)."""
    n = stacked.first_size
    first = batches(n, batch_size, steps, generators[0])
    second = batches(len(stacked) - n, batch_size, steps, generators[1])
    for a, b in zip(first, second, strict=True):
        yield torch.cat([a, n + b])


def train_on_pairs(
    model: nn.Module,
    step: Callable[[torch.Tensor], float],
    index_batches: Iterator[torch.Tensor],
    val: ImageSet,
    *,
    steps: int,
    eval_every: int,
    image_size: int | None,
    before_step: Callable[[int], None] | None = None,
    after_training: Callable[[nn.Module], None] | None = None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Run `step` on each batch; keep the weights with the lowest target validation loss.

    Step 0 (the model as given) is scored first; each scored row of the curve also holds the
    training losses of the last step (`step.loss_fn.last`) and the distance ‖w − w_source‖.
    `after_training` sees the model after the last step, before the kept weights are restored.
    """
    anchor = source_weights(model)
    best = BestOnValidation()
    best.offer(0, model, **scores_on(model, val, image_size), distance=0.0)
    for number, index in enumerate(index_batches, start=1):
        if before_step is not None:
            before_step(number)
        step(index)
        if number % eval_every == 0 or number == steps:
            losses = step.loss_fn.last
            moved = distance_from_source(model, anchor)
            best.offer(number, model, **scores_on(model, val, image_size), **losses, distance=moved)
    if after_training is not None:
        after_training(model)
    return best.restore(model.eval()), best.curve


def joint_training(
    model: nn.Module,
    support: ImageSet,
    source: ImageSet,
    val: ImageSet,
    *,
    lam: float,
    steps: int = 30,
    lr: float = 1e-4,
    batch_size: int = 16,
    eval_every: int = 5,
    image_size: int | None = None,
    seed: int = 0,
    beta: float = 0.0,
    optimizer: str = "adam",
    momentum: float = 0.9,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """A copy of `model` trained on CE_source + λ·CE_target, every layer, BatchNorm in eval mode.

    Each step takes a batch of the K labelled target images (`support`) and one of the source's
    labelled training images (`source`), both augmented. The arguments and the choice of the
    step on `val` are `l2sp.fine_tune`'s, and with the same seed the target batches and their
    augmentation are fine_tune's too. The curve holds, per scored step, the validation loss and
    AUROC, the last batch's target and source losses and the distance ‖w − w_source‖.
    """
    tuned = copy.deepcopy(model)
    freeze(tuned, "none")
    generators = (torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1))
    stacked = Stacked(support, source)
    n = min(batch_size, len(support))
    loss_fn = _JointLoss(n, lam, support, source, model_device(tuned))
    options = dict(image_size=image_size, optimizer=optimizer, lr=lr, momentum=momentum)
    step = paired_step(tuned, stacked, loss_fn, generators, beta=beta, **options)
    index_batches = paired_batches(stacked, batch_size, steps, generators)
    return train_on_pairs(
        tuned, step, index_batches, val, steps=steps, eval_every=eval_every, image_size=image_size
    )


def joint_chosen(
    model: nn.Module,
    support: ImageSet,
    source: ImageSet,
    target,
    lambdas: tuple[float, ...],
    **options,
) -> dict:
    """Joint training for each λ, λ chosen on the target validation loss; test probabilities.

    `target` is a `compare.Target` (its `val` chooses, its `test` is scored); `options` are
    `joint_training`'s (steps, lr, ...). The λ are tried from the smallest up: a smaller λ puts
    less weight on the K target images and so lets the model move less from the source task,
    and a tie keeps it. Returns the test probabilities, the kept run's curve, the chosen λ and
    every λ's best validation loss, as `compare.adapt_with_labels` does for each method.
    """
    runs = {
        lam: joint_training(model, support, source, target.val, lam=lam, **options)
        for lam in sorted(lambdas)
    }
    losses = {lam: min(row["val_loss"] for row in curve) for lam, (_, curve) in runs.items()}
    lam = choose_setting(losses)
    tuned, curve = runs[lam]
    p = predict_proba(tuned, target.test.images, image_size=options.get("image_size"))
    return {"p": p, "curve": curve, "lambda": lam, "val_losses": losses}
