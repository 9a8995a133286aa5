"""Learning curves: test AUROC against the share of labelled training images, per initialisation.

`learning_curve` trains `fit` on nested, patient-level, class-stratified subsets of the training
split (1 %, 5 %, ...), from ImageNet and from random weights with several seeds, with a floor of
optimizer steps for small subsets, and scores the untouched test split. Without ImageNet weights
the pretrained curve is skipped with a message: never drawn from random weights.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from medtl_helpers import config
from medtl_helpers.atomic import write_text
from medtl_helpers.data.records import ImageSet
from medtl_helpers.data.split import patient_fraction_index
from medtl_helpers.errors import DataError, WeightsUnavailableError
from medtl_helpers.evaluation.curve_store import saved_rows, store_path
from medtl_helpers.metrics import auroc, predict_proba
from medtl_helpers.models import build_model, weights_file
from medtl_helpers.training import fit, steps_per_epoch

FRACTIONS = (0.01, 0.05, 0.10, 0.25, 1.0)
INITS = ("imagenet", "random")
LABELS = {"imagenet": "ImageNet-pretrained", "random": "random init"}
COLORS = {"imagenet": "C0", "random": "C1"}
COLUMNS = ("init", "fraction", "seed", "images", "patients", "epochs", "passes", "steps")
COLUMNS += ("val_auroc", "test_auroc", "seconds")


def nested_subsets(
    data: ImageSet, fractions: Sequence[float], seed: int = 0
) -> dict[float, np.ndarray]:
    """Indices (into `data`) of whole-patient, class-stratified subsets, each inside the next.

    The largest fraction is drawn from the whole set, each smaller one from the subset above it:
    along the curve only the amount of data changes, not which children were drawn. A subset
    that would hold no image of a class is an error that names the smallest fraction that can
    be drawn, not a training run on one class.
    """
    index, chosen = np.arange(len(data)), {}
    classes = set(data.labels.tolist())
    for fraction in sorted(set(fractions), reverse=True):
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fractions must be in (0, 1], got {fraction}")
        share = min(1.0, fraction * len(data) / len(index))
        if share < 1.0:
            index = index[patient_fraction_index(data.subset(index), share, seed)]
        missing = sorted(classes - set(data.labels[index].tolist()))
        if missing:
            smallest = min(chosen) if chosen else 1.0
            raise DataError(
                f"nested_subsets: the {fraction:.0%} subset of {len(data)} images holds no "
                f"{data.classes[missing[0]]} image (subsets take whole patients). Use more "
                f"images, or fractions of at least {smallest:.0%} for this set."
            )
        chosen[fraction] = index
    return dict(sorted(chosen.items()))


def passes_needed(n_images: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """The step rule: `epochs` passes, or more when that gives fewer than `min_steps` steps.

    Steps are counted as `fit` takes them when each pass is one epoch over the subset alone:
    `n_images // batch_size` full batches (the partial one dropped), or one step for a subset
    smaller than a batch. So 60 images at batch 32 count one step per pass, not 60 / 32 rounded.
    The curve then trains at least these passes (`training_plan`).
    """
    if n_images < 1:
        raise ValueError("passes_needed: the subset holds no image")
    return max(epochs, math.ceil(min_steps / steps_per_epoch(n_images, batch_size)))


def repeats_needed(n_images: int, batch_size: int, epochs: int, min_steps: int) -> int:
    """How often to repeat the subset so that `epochs` epochs of `fit` hold the passes needed.

    Validation then runs `epochs` times, not once per pass. The repeats are `passes_needed`
    divided by `epochs` and rounded up, so the passes trained (`repeats * epochs`) are at least
    the rule's; a subset smaller than a batch is repeated further, until `epochs` epochs also
    make `min_steps` full-batch steps.
    """
    repeats = math.ceil(passes_needed(n_images, batch_size, epochs, min_steps) / epochs)
    while epochs * steps_per_epoch(repeats * n_images, batch_size) < min_steps:
        repeats += 1
    return repeats


def training_plan(
    n_images: int, batch_size: int, epochs: int, min_steps: int, trained_epochs: int | None = None
) -> dict[str, int]:
    """What one point of the curve trains: the rule's passes, the repeats, the passes and steps.

    `passes` (`repeats * trained_epochs`) and `steps` are what really runs: the repeated subset
    drops one partial batch per epoch instead of one per pass, so `steps` can exceed the rule's
    passes times `n_images // batch_size`. `trained_epochs` defaults to `epochs`; it is fewer
    when MEDTL_MAX_EPOCHS cut the runs short.
    """
    repeats = repeats_needed(n_images, batch_size, epochs, min_steps)
    trained = epochs if trained_epochs is None else trained_epochs
    rule = passes_needed(n_images, batch_size, epochs, min_steps)
    steps = trained * steps_per_epoch(repeats * n_images, batch_size)
    return {"passes_needed": rule, "repeats": repeats, "passes": repeats * trained, "steps": steps}


def pretrained_problem(arch: str = "resnet18", profile: config.Profile | None = None) -> str | None:
    """None when ImageNet weights can be used; otherwise why not and how to get them."""
    profile = profile or config.get_profile()
    head = "The ImageNet-pretrained curve is MISSING (only random init is trained)"
    if config.pretrained_choice(profile) == "none":
        why = (
            "the quick profile trains from random initialisation unless MEDTL_PRETRAINED=imagenet"
            if profile.name == "quick" and not os.environ.get("MEDTL_PRETRAINED")
            else "MEDTL_PRETRAINED=none asks for random initialisation"
        )
        return (
            f"{head}: {why}. To draw it, run with MEDTL_PRETRAINED=imagenet (the default of the "
            f"cpu and gpu profiles); the weights file {weights_file(arch).name} is downloaded "
            f"to {weights_file(arch).parent} (or copy it there by hand)."
        )
    try:
        build_model(arch, pretrained="imagenet", verbose=False)
    except WeightsUnavailableError as err:
        return f"{head}.\n{err}"
    return None


@dataclass(frozen=True)
class CurveSettings:
    """How every point of a curve is trained: the same loop, rate and epochs at every point.

    The subset, the init and the seed vary, and with the subset the repeats, passes and steps:
    `min_steps` is a floor, and above it a larger subset trains more optimizer steps.
    """

    arch: str = "resnet18"
    epochs: int = 2
    min_steps: int = 50
    lr: float = 1e-3
    batch_size: int = 32
    image_size: int = 64


def train_point(
    train: ImageSet,
    val: ImageSet,
    test: ImageSet,
    index: np.ndarray,
    init: str,
    seed: int,
    settings: CurveSettings,
    profile: config.Profile | None = None,
    device: torch.device | str | None = None,
) -> dict:
    """Train one (subset, init, seed) point with `fit`; return its row without the fraction."""
    start, s = time.perf_counter(), settings
    subset = train.subset(index)
    repeats = repeats_needed(len(subset), s.batch_size, s.epochs, s.min_steps)
    config.seed_everything(seed)
    weights = "imagenet" if init == "imagenet" else "none"
    model = build_model(s.arch, pretrained=weights, verbose=False)
    if model.medtl_weights != init:  # a curve is labelled by the weights it really started from
        raise RuntimeError(f"asked for {init} weights, got {model.medtl_weights}")
    options = dict(profile=profile, device=device, lr=s.lr, batch_size=s.batch_size)
    options.update(image_size=s.image_size, patience=s.epochs, seed=seed, progress=False)
    history = fit(model, train.subset(np.tile(index, repeats)), val, epochs=s.epochs, **options)
    test_p = predict_proba(model, test.images, image_size=s.image_size)
    epochs = len(history.rows)  # s.epochs, or fewer under MEDTL_MAX_EPOCHS
    plan = training_plan(len(subset), s.batch_size, s.epochs, s.min_steps, epochs)
    row = {"init": init, "seed": seed, "images": len(subset), "patients": subset.n_patients()}
    row.update(epochs=epochs, passes=plan["passes"], steps=plan["steps"])
    row.update(val_auroc=history.best_auroc, test_auroc=auroc(test.labels, test_p))
    return row | {"seconds": time.perf_counter() - start}


def learning_curve(
    train: ImageSet,
    val: ImageSet,
    test: ImageSet,
    settings: CurveSettings,
    *,
    fractions: Sequence[float] = FRACTIONS,
    train_only: Sequence[float] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    inits: Sequence[str] = INITS,
    profile: config.Profile | None = None,
    device: torch.device | str | None = None,
    store: bool = True,
) -> pd.DataFrame:
    """One row per (init, fraction, seed) with `COLUMNS`; `.attrs["missing"]` says what was skipped.

    Seed s draws the subsets (nested, patient-level), the initial weights and the batch order.
    `train_only` trains only those of `fractions`, each on the subset drawn for the whole chain:
    the very subset the curve trained for that seed. With `store`, points are saved under
    runs/<profile>/data_efficiency/ as they finish and reused by a later call with the same
    settings, data, caps, package version and package code (`curve_store`: every module of
    `medtl_helpers`), so an interrupted curve resumes.
    """
    profile = profile or config.get_profile()
    points = fractions if train_only is None else train_only
    if not set(points) <= set(fractions):
        raise ValueError(f"train_only {sorted(set(points) - set(fractions))} not in fractions")
    unknown = [i for i in inits if i not in INITS]
    if unknown:
        raise ValueError(f"Unknown init(s) {unknown}: use {', '.join(INITS)}")
    problem = pretrained_problem(settings.arch, profile) if "imagenet" in inits else None
    missing = {} if problem is None else {"imagenet": problem}
    if problem is not None:
        print(problem)
    path = store_path(train, val, test, settings, profile) if store else None
    rows = saved_rows(path)
    done = {(r["init"], r["fraction"], r["seed"]) for r in rows}
    for seed in seeds:
        chain = nested_subsets(train, fractions, seed)
        for fraction, index in [(f, i) for f, i in chain.items() if f in points]:
            for init in [i for i in inits if i not in missing and (i, fraction, seed) not in done]:
                point = train_point(train, val, test, index, init, seed, settings, profile, device)
                rows.append(row := {"fraction": fraction, **point})
                ids = f" ({row['patients']} patients)" if train.unit == "patients" else ""
                print(
                    f"{LABELS[init]:<19} {fraction:>6.1%}  seed {seed}: {row['images']:>5} images"
                    f"{ids}, {row['passes']} passes, {row['steps']} steps: "
                    f"test AUROC {row['test_auroc']:.3f}  ({row['seconds']:.0f} s)"
                )
                if path is not None:  # an interrupted curve keeps its finished points
                    write_text(path, pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(index=False))
    wanted = [
        r for r in rows if r["init"] in inits and r["fraction"] in points and r["seed"] in seeds
    ]
    results = pd.DataFrame(wanted, columns=list(COLUMNS))
    results = results.sort_values(["init", "fraction", "seed"]).reset_index(drop=True)
    results.attrs["missing"] = missing
    return results


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (init, fraction): images, seeds, and mean, sd, min and max of test AUROC."""
    grouped = results.groupby(["init", "fraction"])
    table = grouped.test_auroc.agg(["mean", "std", "min", "max"]).rename(columns={"std": "sd"})
    table.insert(0, "seeds", grouped.seed.nunique())
    table.insert(0, "images", grouped.images.mean())
    return table.reset_index()


def plot_learning_curve(results: pd.DataFrame, ax=None):
    """Mean test AUROC per init on a log-x axis, with the min-max band over seeds and each seed.

    The bands show how much one run varies; compare the inits with `paired_gains`, not by overlap.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    summary = summarise(results)
    for init in [i for i in INITS if i in set(summary.init)]:
        color = COLORS[init]
        part, seeds = summary[summary.init == init], results[results.init == init]
        x = 100 * part.fraction
        ax.plot(x, part["mean"], "o-", color=color, label=f"{LABELS[init]} (mean)")
        ax.fill_between(x, part["min"], part["max"], color=color, alpha=0.2, label="min-max")
        ax.plot(100 * seeds.fraction, seeds.test_auroc, ".", color=color, alpha=0.6)
    if results.attrs.get("missing", {}).get("imagenet"):
        note = "ImageNet-pretrained curve missing: see the message above"
        ax.text(0.02, 0.03, note, transform=ax.transAxes, fontsize=8, color="C3")
    ticks = sorted(set(100 * results.fraction))
    ax.set(xscale="log", ylabel="test AUROC", title="Learning curve")
    ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
    ax.minorticks_off()
    ax.set(xlabel="labelled training images (share of the training split, log scale)")
    ax.legend(loc="lower right", fontsize=8)
    return ax
