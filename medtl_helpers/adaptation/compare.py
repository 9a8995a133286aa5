"""One target site, every method: the roles of its patients and the runs notebook 08 compares.

A target site's patients are split once: half are the test patients, never used to choose
anything; the other half are the images an adaptation may use. Their pixels are the unlabelled
target images (AdaBN, Deep CORAL); a few of those patients are labelled for validation (choosing
steps and λ); the rest are the pool the K labelled images are drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from medtl_helpers.adaptation.coral import deep_coral
from medtl_helpers.adaptation.heads import head_probabilities, train_head
from medtl_helpers.adaptation.joint import joint_chosen
from medtl_helpers.adaptation.l2sp import fine_tune
from medtl_helpers.adaptation.selection import choose_setting
from medtl_helpers.data import ImageSet, split_by_patient, subsample_by_patient
from medtl_helpers.data.sites import take_patients
from medtl_helpers.metrics import predict_proba
from medtl_helpers.models import split_backbone_head
from medtl_helpers.training import backbone_features


@dataclass
class Target:
    """A target site's roles. `val` and `support` are parts of `unlabelled` whose labels count."""

    name: str
    unlabelled: ImageSet
    val: ImageSet
    support: ImageSet
    test: ImageSet


def split_target(name: str, data: ImageSet, val_patients: int, seed: int = 0) -> Target:
    """Half of the patients for test, the other half unlabelled, `val_patients` per class of
    those labelled for validation and the rest the pool for K labelled images."""
    unlabelled, test = split_by_patient(data, 0.5, seed)
    val, support = take_patients(unlabelled, val_patients, seed)
    return Target(name, unlabelled, val, support, test)


@dataclass(frozen=True)
class FewShot:
    """Settings of the methods that train; a profile changes only the sizes."""

    steps: int = 20
    lr: float = 1e-4
    batch_size: int = 16
    eval_every: int = 5
    head_steps: int = 100
    head_lr: float = 1e-3
    alphas: tuple[float, ...] = (0.01, 0.1, 1.0)
    lambdas: tuple[float, ...] = (1.0, 10.0, 100.0)
    optimizer: str = "adam"  # "sgd": SGD with momentum 0.9, as Li et al. (lr must suit it)
    beta: float = 0.0  # weight decay on the head, the same in "fine-tune all" and "L2-SP"
    joint_lambdas: tuple[float, ...] = (0.1, 1.0, 10.0)  # L_source + λ·L_target (`joint`)
    dann_weights: tuple[float, ...] = (0.1, 1.0)  # DANN's reversal ceilings besides 0 (`dann`)


def coral_chosen(
    model: nn.Module, source_features, source_labels, features: dict, target: Target, settings
) -> dict:
    """Deep CORAL for each λ (0 first, the control), λ chosen on the validation loss.

    `features` holds the source model's features of the target's unlabelled, val and test images.
    Returns the test probabilities, the chosen λ and every λ's best validation loss, and under
    "control" the λ = 0 run's test probabilities (`p`, `lambda` 0): the head trained further on
    the source features without the alignment term, on the same batches. Deep CORAL minus the
    control is what the alignment added; where λ = 0 is chosen the two are the same run.
    """
    head = split_backbone_head(model)[1]
    runs = {}
    for weight in (0.0, *settings.lambdas):
        runs[weight] = deep_coral(
            head,
            source_features,
            source_labels,
            features["unlabelled"],
            features["val"],
            target.val.labels,
            weight=weight,
            steps=settings.head_steps,
            lr=settings.head_lr,
            eval_every=max(1, settings.head_steps // 10),
        )
    losses = {weight: min(r["val_loss"] for r in curve) for weight, (_, curve) in runs.items()}
    chosen = choose_setting(losses)
    p = head_probabilities(runs[chosen][0], features["test"])
    p_control = p if chosen == 0.0 else head_probabilities(runs[0.0][0], features["test"])
    control = {"p": p_control, "lambda": 0.0}
    return {"p": p, "lambda": chosen, "val_losses": losses, "control": control}


def adapt_with_labels(
    model: nn.Module,
    support: ImageSet,
    target: Target,
    settings: FewShot,
    image_size: int,
    source: ImageSet | None = None,
    seed: int = 0,
) -> dict[str, dict]:
    """Head only, fine-tune all, L2-SP and (given `source`) joint, on the same K images.

    "fine-tune all" is fine-tuning with α fixed at 0. "L2-SP" is the same fine-tuning with α
    chosen on the validation patients from `settings.alphas` and 0, so it can pick α = 0 and
    then is fine-tune all; the two share the optimizer, lr, β, batches and the source's
    BatchNorm statistics, and differ in that choice of α (and only in it when α = 0 wins). The α
    are tried from the largest (the least movement away from the source) down to 0, so that a
    tie in validation loss keeps the most constrained one. Returns per method the test
    probabilities, the validation curve of the kept run and, for both fine-tunings, α with
    every candidate α's best validation loss. Given the source's labelled training images
    (`source`), also "joint": L_source + λ·L_target (`joint.joint_chosen`, λ from
    `settings.joint_lambdas` chosen on the validation patients), fine-tune all plus the source
    term. `seed` draws every method's batches, augmentation and the head's order (a repeat with
    another support draw passes its own seed, so that a repeat also samples the training's
    randomness).
    """
    parts = {"support": support, "val": target.val, "test": target.test}
    feats = {k: backbone_features(model, v.images, image_size) for k, v in parts.items()}
    head, curve = train_head(
        split_backbone_head(model)[1],
        feats["support"],
        support.labels,
        feats["val"],
        target.val.labels,
        steps=settings.head_steps,
        lr=settings.head_lr,
        batch_size=settings.batch_size,
        eval_every=max(1, settings.head_steps // 10),
        seed=seed,
    )
    results = {"head only": {"p": head_probabilities(head, feats["test"]), "curve": curve}}
    kwargs = dict(steps=settings.steps, lr=settings.lr, batch_size=settings.batch_size)
    kwargs.update(eval_every=settings.eval_every, image_size=image_size, seed=seed)
    kwargs.update(optimizer=settings.optimizer, beta=settings.beta)
    alphas = (*sorted({a for a in settings.alphas if a > 0}, reverse=True), 0.0)
    runs = {a: fine_tune(model, support, target.val, alpha=a, **kwargs) for a in alphas}
    losses = {a: min(r["val_loss"] for r in runs[a][1]) for a in alphas}
    alpha = choose_setting(losses)
    for method, a in (("fine-tune all", 0.0), ("L2-SP", alpha)):
        tuned, curve = runs[a]
        p = predict_proba(tuned, target.test.images, image_size=image_size)
        results[method] = {"p": p, "curve": curve, "alpha": a, "val_losses": losses}
    if source is not None:
        lambdas = settings.joint_lambdas
        results["joint"] = joint_chosen(model, support, source, target, lambdas, **kwargs)
    return results


def k_support(target: Target, k: int, seed: int = 0) -> ImageSet:
    """About `k` labelled images from the target's pool, as whole patients, classes kept."""
    return subsample_by_patient(target.support, k, seed)
