"""DANN: domain-adversarial training (Ganin et al., 2016, "Domain-adversarial training of neural
networks", JMLR 17).

The sequel to the domain classifier of `shift`: if a classifier can tell the sites apart from the
backbone's features, train the backbone until it cannot, while the label head keeps working on
the source. A small domain discriminator reads the head's input (the backbone's pooled
features) through a gradient reversal layer, the identity going forward and −λ times the
gradient going back. One backward pass then trains the discriminator to tell source from target
and the backbone to make that harder, while the label loss on the source's labelled images keeps
the features useful for pneumonia:

    discriminator: minimise L_domain;   backbone and head: minimise L_label − λ · L_domain

λ follows the paper's schedule λ_p = 2 / (1 + exp(−10 p)) − 1 over the training progress p from
0 to 1 (here times a ceiling, `weight`): at the start the discriminator is noise and its signal is
held back. The paper also anneals the learning rate; here the optimizer, lr and augmentation are
`l2sp.fine_tune`'s, and the discriminator is smaller than the paper's.

BatchNorm stays in eval mode, with the source's statistics: in train mode each batch would be
normalised by its own statistics and the running ones would drift towards the target, which is
AdaBN (`adabn`), so the arm would be two changes at once.

What it needs: the source's labelled images and the target's unlabelled ones at adaptation time;
no target label trains it. But the ceiling and the step are chosen on the labelled target
validation patients' loss, as Deep CORAL's λ is (`compare.coral_chosen`), never on the test
patients: "no target labels" holds for the training only. What it costs: every step runs a
source and a target batch through the whole network, where Deep CORAL trains only the head on
frozen features.
"""

from __future__ import annotations

import copy
import math

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from medtl_helpers.adaptation.joint import Stacked, paired_batches, paired_step, train_on_pairs
from medtl_helpers.adaptation.selection import choose_setting
from medtl_helpers.adaptation.shift import domain_separation
from medtl_helpers.data import ImageSet
from medtl_helpers.metrics import predict_proba
from medtl_helpers.models import freeze, model_device
from medtl_helpers.training import backbone_features, class_weights


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The gradient reversal layer: `x` unchanged going forward, the gradient times −scale back."""
    return _ReverseGradient.apply(x, scale)


def dann_schedule(progress: float, gamma: float = 10.0) -> float:
    """λ_p = 2 / (1 + exp(−γ p)) − 1 (Ganin et al., γ = 10): 0 at p = 0, 0.987 at 0.5, 1 at 1."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def domain_discriminator(in_features: int, hidden: int = 64) -> nn.Sequential:
    """Features → hidden units → ReLU → one logit of P(target)."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))


class _AdversarialHead(nn.Module):
    """The label head and, in training mode, the discriminator behind a gradient reversal.

    Training: (B, 3) outputs, the two class logits then the domain logit. Eval: the class
    logits alone, so the model scores and predicts as the plain model does.
    """

    def __init__(self, head: nn.Module, discriminator: nn.Module) -> None:
        super().__init__()
        self.head, self.discriminator = head, discriminator
        self.reversal = 0.0

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.head(features)
        if not self.training:
            return logits
        domain = self.discriminator(reverse_gradient(features, self.reversal))
        return torch.cat([logits, domain.to(logits.dtype)], dim=1)


class _AdversarialLoss:
    """Class-weighted CE on the n source rows plus the domain BCE on every row (target = 1)."""

    def __init__(self, n: int, source: ImageSet, head: _AdversarialHead, device) -> None:
        self.n, self.head = n, head
        self.label = nn.CrossEntropyLoss(weight=class_weights(source.labels).to(device))
        self.last: dict[str, float] = {}

    def __call__(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        label = self.label(outputs[: self.n, :2], labels[: self.n])
        site = torch.ones(len(outputs), device=outputs.device)
        site[: self.n] = 0.0
        domain = F.binary_cross_entropy_with_logits(outputs[:, 2], site)
        self.last = {"label_loss": label.item(), "domain_loss": domain.item()}
        self.last["reversal"] = self.head.reversal
        return label + domain


def _adversarial_run(
    model: nn.Module,
    source: ImageSet,
    unlabelled: ImageSet,
    val: ImageSet,
    *,
    weight: float = 1.0,
    steps: int = 30,
    lr: float = 1e-4,
    batch_size: int = 16,
    eval_every: int = 5,
    image_size: int | None = None,
    seed: int = 0,
    optimizer: str = "adam",
    momentum: float = 0.9,
    hidden: int = 64,
) -> tuple[nn.Module, list[dict[str, float]], nn.Module]:
    """`dann_training`, plus a copy of the model after its last step (the adversary's end)."""
    tuned = copy.deepcopy(model)
    freeze(tuned, "none")
    linear = next(m for m in tuned.fc.modules() if isinstance(m, nn.Linear))
    with torch.random.fork_rng(devices=[]):  # the same seed, the same discriminator
        torch.manual_seed(seed)
        discriminator = domain_discriminator(linear.in_features, hidden)
    discriminator.to(model_device(linear))
    head = tuned.fc = _AdversarialHead(tuned.fc, discriminator)
    generators = (torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1))
    stacked = Stacked(source, unlabelled, torch.zeros(len(unlabelled), dtype=torch.long))
    loss_fn = _AdversarialLoss(min(batch_size, len(source)), source, head, model_device(tuned))
    options = dict(image_size=image_size, optimizer=optimizer, lr=lr, momentum=momentum)
    step = paired_step(tuned, stacked, loss_fn, generators, **options)

    def schedule(number: int) -> None:
        head.reversal = weight * dann_schedule((number - 1) / max(1, steps - 1))

    final: list[nn.Module] = []

    def keep_final(trained: nn.Module) -> None:
        final.append(copy.deepcopy(trained).eval())
        final[0].fc = final[0].fc.head

    index_batches = paired_batches(stacked, batch_size, steps, generators)
    tuned, curve = train_on_pairs(
        tuned, step, index_batches, val, steps=steps, eval_every=eval_every,
        image_size=image_size, before_step=schedule, after_training=keep_final,
    )  # fmt: skip
    tuned.fc = head.head
    return tuned, curve, final[0]


def dann_training(
    model: nn.Module,
    source: ImageSet,
    unlabelled: ImageSet,
    val: ImageSet,
    *,
    weight: float = 1.0,
    steps: int = 30,
    lr: float = 1e-4,
    batch_size: int = 16,
    eval_every: int = 5,
    image_size: int | None = None,
    seed: int = 0,
    optimizer: str = "adam",
    momentum: float = 0.9,
    hidden: int = 64,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """A copy of `model` trained adversarially: label loss on `source`, sites told apart by a
    discriminator on the pooled features of `source` and `unlabelled` target images.

    The reversal at step t of T is `weight` · λ_p with p = (t − 1)/(T − 1), so from 0 up to
    `weight`; `weight=0` is the control (the same steps on the source, features left alone).
    Never reads `unlabelled.labels`. The step kept and the curve (validation loss and AUROC,
    the last batch's label and domain losses, the reversal, ‖w − w_source‖) are as in
    `l2sp.fine_tune`; the discriminator is dropped from the model returned.
    """
    tuned, curve, _ = _adversarial_run(
        model, source, unlabelled, val, weight=weight, steps=steps, lr=lr,
        batch_size=batch_size, eval_every=eval_every, image_size=image_size, seed=seed,
        optimizer=optimizer, momentum=momentum, hidden=hidden,
    )  # fmt: skip
    return tuned, curve


def kept_step(curve: list[dict[str, float]]) -> int:
    """The step whose weights a run returns: the lowest validation loss, the earliest on a tie."""
    return int(min(curve, key=lambda row: row["val_loss"])["step"])


def dann_chosen(
    model: nn.Module,
    source: ImageSet,
    target,
    settings,
    image_size: int | None = None,
    seed: int = 0,
) -> dict:
    """DANN for each ceiling (0 first, the control), chosen on the target validation loss.

    `target` is a `compare.Target`: its unlabelled images are the target side of the domain
    loss, its validation patients choose, its test patients are scored. `settings` is a
    `compare.FewShot`: the ceilings are `dann_weights`, tried from 0 up so that a tie keeps the
    weaker alignment; steps, lr, batch size, eval_every and optimizer are fine-tuning's. Returns
    the test probabilities, the kept run's curve, the chosen ceiling (`lambda`), every ceiling's
    best validation loss and kept step (`kept_steps`; 0 means the run returns the source model
    itself), the adapted model, and under "control" the ceiling-0 run scored the same way (`p`,
    `curve`, `lambda` 0): the extra steps on the source's labelled images without the
    adversary, so that DANN minus the control is what the adversary added. When 0 is chosen the
    two are the same run; when a run keeps step 0 it is the source model, and "extra steps"
    were run but not kept. Under "adversary", the run whose features `separation_before_after`
    should measure to see whether the adversary aligned the sites (`model`, `lambda`,
    `kept_step`): the chosen run when its ceiling is above 0, else the run with the largest
    ceiling, since the control had no adversary to measure. Its `model` holds the weights at
    the end of that run's training, the features the adversary shaped, whatever step
    validation kept for scoring (the kept weights can be step 0's, the source model's). `seed`
    draws the batches, their augmentation and the discriminator's start.
    """
    options = dict(steps=settings.steps, lr=settings.lr, batch_size=settings.batch_size)
    options.update(eval_every=settings.eval_every, optimizer=settings.optimizer, seed=seed)
    runs = {
        w: _adversarial_run(
            model, source, target.unlabelled, target.val, weight=w, image_size=image_size, **options
        )
        for w in (0.0, *sorted(settings.dann_weights))
    }
    losses = {weight: min(row["val_loss"] for row in run[1]) for weight, run in runs.items()}
    steps = {weight: kept_step(run[1]) for weight, run in runs.items()}
    chosen = choose_setting(losses)
    tuned, curve, _ = runs[chosen]
    p = predict_proba(tuned, target.test.images, image_size=image_size)
    control, control_curve, _ = runs[0.0]
    p_control = p if chosen == 0.0 else predict_proba(control, target.test.images, image_size)
    measured = chosen if chosen > 0.0 else max(runs)
    return {
        "p": p,
        "curve": curve,
        "lambda": chosen,
        "val_losses": losses,
        "kept_steps": steps,
        "model": tuned,
        "control": {"p": p_control, "curve": control_curve, "lambda": 0.0},
        "adversary": {"model": runs[measured][2], "lambda": measured, "kept_step": steps[measured]},
    }


def separation_before_after(
    before: nn.Module,
    after: nn.Module,
    source: ImageSet,
    target: ImageSet,
    image_size: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Domain AUROC, error ε and proxy A-distance 2(1 − 2ε) on each model's frozen features.

    A fresh domain classifier (`shift.domain_separation`, folds by patient) is fitted to each
    model's features, so "after" asks whether the adapted features still give the site away.
    Pass images neither model trained on (the source's validation or test images, the target's
    test images, whose labels are not read): on the images DANN trained to confuse, the "after"
    row would measure how well it fitted them.
    """
    rows = {}
    for name, net in (("before", before), ("after", after)):
        source_features = backbone_features(net, source.images, image_size)
        target_features = backbone_features(net, target.images, image_size)
        rows[name] = domain_separation(
            source_features, target_features, source.patients, target.patients, seed=seed
        )
    return pd.DataFrame(rows).T
