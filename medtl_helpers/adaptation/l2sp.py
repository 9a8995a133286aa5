"""Fine-tuning on a few labelled target images, plainly or with the L2-SP penalty.

Plain fine-tuning minimises the target loss starting from the source weights; with K = 8 images
nothing stops it from wandering far from them and forgetting what the source taught. L2-SP
(Li, Grandvalet & Davoine, 2018, measured on natural-image benchmarks such as Stanford Dogs and
MIT Indoor) adds a pull back towards the *starting point* rather than towards zero, as weight
decay would:

    L = L_target + α/2 · ‖w − w_source‖² + β/2 · ‖w_head‖²

α acts on the backbone, the weights that have a source value; β is plain weight decay on the
head, which in the paper is a new layer with no source value to return to (here the head is the
source's own, so β pulls it towards zero, not back to where it started). The paper trained with
SGD with momentum 0.9 (`optimizer="sgd"`). Adam (the default, kept for the runs already made)
divides each parameter's step by its own gradient scale, so the penalty's strength is rescaled
per parameter: every weight still moves by up to about lr per step whatever α.

BatchNorm stays in eval mode while fine-tuning: its running statistics are buffers that no
gradient and no penalty reaches, and re-estimating them from a dozen augmented support images
would be a second change besides the weights (re-estimate them on the unlabelled target first,
`adapt_batchnorm`, as an arm of its own). So α governs everything the backbone holds: α = 0 is
plain fine-tuning, and a larger α keeps the backbone closer to the source. Never exactly at it:
the first step is taken at the source, where the penalty's gradient is zero, so whatever α it is
the task's step alone, and later steps pull the weights back. Under SGD that step is lr times the
task gradient; under Adam it is lr·g/(|g| + eps) for each weight, about lr times the sign of its
gradient, whatever the gradient's size. With SGD,
"larger" has a ceiling: as lr·α nears 2·(1 + momentum) the penalty's own step overshoots the
source and the weights swing around it, and past the ceiling they diverge, so `fine_tune`
refuses such settings. Under Adam the distance levels off, as α grows, at a floor set by lr.

Compare the joint objective L_source + λ·L_target, which is multi-task training: it needs the
source data at adaptation time and trains on both. L2-SP keeps the source knowledge in the
weights themselves and needs only the target's few images.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import torch
from torch import nn

from medtl_helpers import config
from medtl_helpers.adaptation.adabn import batchnorm_layers
from medtl_helpers.adaptation.selection import BestOnValidation, validation_scores
from medtl_helpers.data import BatchAugment, ImageSet
from medtl_helpers.metrics import predict_proba
from medtl_helpers.models import freeze, group_of, model_device, train_mode
from medtl_helpers.training import class_weights


def source_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the backbone's parameters (every group but the head): the anchor."""
    return {
        name: param.detach().clone()
        for name, param in model.named_parameters()
        if group_of(name) != "head"
    }


def l2sp_penalty(
    model: nn.Module, anchor: dict[str, torch.Tensor], alpha: float, beta: float = 0.0
) -> torch.Tensor:
    """α/2 · ‖w − w_source‖² over the anchored parameters, plus β/2 · ‖w‖² over the others."""
    total = torch.zeros((), device=model_device(model))
    for name, param in model.named_parameters():
        if name in anchor:
            total = total + alpha / 2 * (param - anchor[name]).pow(2).sum()
        elif beta:
            total = total + beta / 2 * param.pow(2).sum()
    return total


def batches(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator:
    """`steps` batches of indices below n, pass after pass in a fresh random order.

    Full batches only (a set smaller than a batch is one batch), as `fit` cuts its epochs.
    """
    size = min(batch_size, n)
    done = 0
    while done < steps:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - size + 1, size):
            if done == steps:
                return
            yield order[start : start + size]
            done += 1


def scores_on(model: nn.Module, val: ImageSet, image_size: int | None = None) -> dict:
    """Validation loss and AUROC of a model on labelled target images."""
    return validation_scores(val.labels, predict_proba(model, val.images, image_size=image_size))


def fine_tune(
    model: nn.Module,
    support: ImageSet,
    val: ImageSet,
    *,
    alpha: float = 0.0,
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
    """A copy of `model` fine-tuned on `support`, every layer, with the L2-SP penalty α (and β).

    Class-weighted cross-entropy, the course's augmentation and `fit`'s mixed precision (the
    penalty in fp32). `optimizer="adam"`: Adam without weight decay (the penalty is the only
    regulariser); `"sgd"`: SGD with `momentum`, as in the paper. Every BatchNorm layer stays in eval
    mode, so its running statistics stay the source's (a dropout in the head still trains). The
    loss on the few labelled `val` patients is scored at step 0 and every `eval_every` steps;
    the best step's weights are returned with the curve (an earlier step wins a tie, and step 0
    is the source model itself). The curve also records the validation AUROC, the target loss
    and the distance ‖w − w_source‖ at each scored step.
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if optimizer == "sgd" and lr * alpha >= 2 * (1 + momentum):
        raise ValueError(
            f"lr·α = {lr * alpha:g} >= 2·(1 + momentum) = {2 * (1 + momentum):g}: the penalty's "
            "gradient step would overshoot the source weights and diverge; lower lr or α"
        )
    tuned = copy.deepcopy(model)
    freeze(tuned, "none")
    anchor = source_weights(tuned)
    generator = torch.Generator().manual_seed(seed)
    options = {"lr": lr, "momentum": momentum} if optimizer == "sgd" else {"lr": lr}
    step = _Step(tuned, support, anchor, (alpha, beta), optimizer, options, image_size, generator)
    best = BestOnValidation()
    best.offer(0, tuned, **scores_on(tuned, val, image_size), distance=0.0)
    for number, index in enumerate(batches(len(support), batch_size, steps, generator), start=1):
        task = step(index)
        if number % eval_every == 0 or number == steps:
            moved = distance_from_source(tuned, anchor)
            scores = scores_on(tuned, val, image_size)
            best.offer(number, tuned, **scores, target_loss=task, distance=moved)
    return best.restore(tuned.eval()), best.curve


class _Step:
    """One optimizer step of `fine_tune`: augment, forward under autocast, loss plus penalty."""

    def __init__(self, model, support, anchor, penalty, optimizer, options, image_size, generator):
        self.model, self.support, self.anchor, self.penalty = model, support, anchor, penalty
        self.image_size, self.device = image_size, model_device(model)
        self.augment = BatchAugment(generator=generator)
        weights = class_weights(support.labels).to(self.device)
        self.loss_fn = nn.CrossEntropyLoss(weight=weights)
        kind = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
        self.optimizer = kind(model.parameters(), **options)
        self.dtype = config.amp_dtype(self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def __call__(self, index: torch.Tensor) -> float:
        """Train on the support images at `index`; return the target loss (without penalty)."""
        train_mode(self.model)
        for layer in batchnorm_layers(self.model).values():
            layer.eval()  # normalise with, and keep, the source's statistics
        x = self.augment(self.support.images[index.cpu()].to(self.device), self.image_size)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            logits = self.model(x)
        task = self.loss_fn(logits.float(), self.support.labels[index.cpu()].to(self.device))
        loss = task + l2sp_penalty(self.model, self.anchor, *self.penalty)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return task.item()


def distance_from_source(model: nn.Module, anchor: dict[str, torch.Tensor]) -> float:
    """‖w − w_source‖ over the anchored weights (`source_weights`): how far adaptation moved."""
    with torch.no_grad():
        squares = sum(
            float((param - anchor[name].to(param.device)).pow(2).sum())
            for name, param in model.named_parameters()
            if name in anchor
        )
    return squares**0.5
