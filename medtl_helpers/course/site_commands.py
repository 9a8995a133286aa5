"""`python -m medtl_helpers calibrate …`, and what `evaluate` does for a model at a new hospital.

The repairs a hospital can make before it uses a model trained elsewhere, each said in the output
and recorded in the JSON or the checkpoint: `evaluate --adapt bn` re-estimates the BatchNorm
statistics on the scored images (AdaBN: no labels, but the very images it scores); `evaluate
--prior em` moves the probabilities to the share of PNEUMONIA EM estimates from them, starting
from the prior the class-weighted loss trains towards (`loss_prior`); `calibrate` sets the
threshold that reaches a sensitivity on a few labelled patients of the site
(`evaluation.recalibration`) and writes a copy of the checkpoint that holds it and where it came
from. `evaluate` of the copy on the same split leaves those patients out, as it refuses training
images: they chose the threshold, so scoring them would flatter it.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medtl_helpers import config
from medtl_helpers.data.records import CLASSES
from medtl_helpers.errors import DataError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from medtl_helpers.data.records import ImageSet
    from medtl_helpers.data.sources import CourseData

ADAPT, PRIOR = ("none", "bn"), ("none", "em")
ADAPT_BATCH = 64


def add_site_options(evaluate: argparse.ArgumentParser) -> None:
    """`evaluate`'s --adapt and --prior, both off by default."""
    evaluate.add_argument(
        "--adapt", choices=ADAPT, default="none", help="bn: AdaBN on the scored images first"
    )
    evaluate.add_argument(
        "--prior", choices=PRIOR, default="none", help="em: EM prior correction of the scores"
    )


def add_site_commands(sub: argparse._SubParsersAction) -> None:
    calibrate = sub.add_parser(
        "calibrate", help="a new site's threshold from a few of its labelled patients"
    )
    calibrate.add_argument("--checkpoint", type=Path, required=True)
    calibrate.add_argument("--data", type=Path, required=True, help="the site's Kermany folder")
    calibrate.add_argument("--split", choices=["train", "val", "test"], default="test")
    calibrate.add_argument("--patients", type=int, default=40, help="labelled patients to draw")
    calibrate.add_argument("--sensitivity", type=float, default=0.95, help="target, in (0, 1]")
    calibrate.add_argument("--seed", type=int, default=0, help="fixes the draw of patients")
    calibrate.add_argument("--adapt", choices=ADAPT, default="none", help="bn: AdaBN first")
    calibrate.add_argument("--out", type=Path, required=True, help="the calibrated copy")
    calibrate.add_argument("--device", default=None)
    calibrate.set_defaults(run=run_calibrate)


def checkpoint_and_split(
    args: argparse.Namespace,
) -> tuple[nn.Module, dict, CourseData, ImageSet]:
    """(model, meta, data, part): the checkpoint and its `--split` of `--data`, rebuilt with the
    checkpoint's seed and validation share, after `check_unseen` refused training images."""
    from medtl_helpers.data.sources import HOLDOUT, load_folder
    from medtl_helpers.evaluation.provenance import check_unseen
    from medtl_helpers.training.checkpoints import load_checkpoint

    model, meta = load_checkpoint(args.checkpoint)
    val_fraction = meta.get("val_fraction", HOLDOUT)  # as in training, so the splits are its own
    data = load_folder(args.data, meta["image_size"], meta["seed"], val_fraction)
    check_unseen(meta, data, args.split, args.checkpoint)
    return model, meta, data, getattr(data, args.split)


def leave_out_calibration(
    meta: dict, data_root: Path, split: str, part: ImageSet
) -> tuple[ImageSet, dict | None, str]:
    """(part to score, JSON record, sentence to print) for a checkpoint `calibrate` wrote.

    On the split it was calibrated on (the same folder, resolved, and split name), the images of
    its calibration patients are left out; elsewhere every image is scored, and the sentence
    says where the threshold came from. Without a calibration: (part, None, "").
    """
    calibration = meta.get("calibration")
    if calibration is None:
        return part, None, ""
    origin = f"the {calibration['split']} split of {calibration['data_root']}"
    record = {"calibrated_on": origin, "patients": [], "images": 0}
    if calibration.get("adapt") == "bn":
        record["batchnorm"] = (
            f"re-estimated by calibrate on the {calibration.get('adapt_images', '?')} images of "
            f"{origin}, without their labels (transductive where those images are scored)"
        )
        print(f"this checkpoint's BatchNorm statistics were {record['batchnorm']}")
    if (calibration["data_root"], calibration["split"]) != (str(Path(data_root).resolve()), split):
        return part, record, f"its threshold was calibrated elsewhere ({origin}): all scored"
    recorded = set(calibration["patients"])
    keep = np.array([patient not in recorded for patient in part.patients], dtype=bool)
    found = sorted(recorded & set(part.patients))
    if len(found) < len(recorded):
        warnings.warn(
            f"{len(recorded) - len(found)} of the {len(recorded)} calibration patients are not in "
            f"this split any more: {origin} changed after calibrating.",
            stacklevel=2,
        )
    record.update(patients=found, images=int((~keep).sum()))
    said = (
        f"left out {len(found)} calibration patients ({record['images']} images), who chose "
        "its threshold; only the other patients are scored"
    )
    return part.subset(np.flatnonzero(keep)), record, said


def prior_correction(p: np.ndarray, train_labels: np.ndarray) -> tuple[np.ndarray, dict]:
    """(corrected p, record): EM's estimate of the PNEUMONIA share of these images, and `p`
    moved to it from the prior the class-weighted loss on `train_labels` trains towards."""
    from medtl_helpers.adaptation.prior import em_prior, loss_prior

    source = loss_prior(train_labels)
    estimate, corrected = em_prior(p, source)
    return corrected, {"method": "em", "source_prior": source, "estimated_prior": estimate}


def adapt_to(model: nn.Module, images: torch.Tensor, seed: int) -> nn.Module:
    """`adapt_batchnorm` of `model` on `images`, in batches of ADAPT_BATCH, shuffled by `seed`."""
    from medtl_helpers.adaptation.adabn import adapt_batchnorm

    return adapt_batchnorm(model, images, batch_size=ADAPT_BATCH, seed=seed)


def site_probabilities(
    args: argparse.Namespace,
    model: nn.Module,
    meta: dict,
    data: CourseData,
    part: ImageSet,
    device: torch.device,
) -> tuple[np.ndarray, dict]:
    """(p, JSON fields): P(PNEUMONIA) of `part` after `--adapt` and `--prior`, each said."""
    from medtl_helpers.metrics import predict_proba

    calibration = meta.get("calibration") or {}
    fields: dict = {"adapt": {"method": "none"}, "prior": {"method": "none"}}
    if calibration.get("adapt") == "bn":
        fields["adapt"] = {"method": "bn, by calibrate", "images": calibration["adapt_images"]}
    if args.adapt == "bn":
        _warn_calibrated(args, calibration, "with other BatchNorm statistics", "--adapt bn")
        model = adapt_to(model, part.images, meta["seed"])
        fields["adapt"] = {"method": "bn", "images": len(part), "transductive": True}
        print(
            f"AdaBN: BatchNorm statistics re-estimated on the {len(part):,} images scored here, "
            "without their labels (transductive: the statistics come from the very images "
            "that are then scored)"
        )
    p = predict_proba(model, part.images, device=device)
    if args.prior == "em":
        _warn_calibrated(args, calibration, "on uncorrected probabilities", "--prior em")
        p, fields["prior"] = prior_correction(p, data.train.labels.numpy())
        _say_prior(fields["prior"], float(part.labels.double().mean()))
    return p, fields


def _warn_calibrated(args: argparse.Namespace, calibration: dict, how: str, flag: str) -> None:
    if calibration:
        warnings.warn(
            f"the threshold of {args.checkpoint} was calibrated {how}; {flag} changes the "
            "scores it was chosen on, so it may not reach its sensitivity.",
            stacklevel=3,
        )


def _say_prior(record: dict, labelled_share: float) -> None:
    """Print EM's estimate (and warn where it ran to 0 or 1); `record` gains the labels' share."""
    record["labelled_share"] = labelled_share
    estimate = record["estimated_prior"]
    if not 0.01 < estimate < 0.99:
        warnings.warn(
            f"EM ran to a share of {estimate:.3f}: the probabilities are likely not calibrated "
            "for the source prior (or the images moved), and the corrected ones flag nearly "
            "every image or none.",
            stacklevel=3,
        )
    print(
        f"prior: EM estimates a PNEUMONIA share of {estimate:.3f} (source prior "
        f"{record['source_prior']:.3f}, the one the class-weighted loss trains towards); the "
        "probabilities are moved to it. The labels, which EM does not use, give "
        f"{labelled_share:.3f}. At the kept threshold the correction also moves sensitivity and "
        "specificity, and the estimate assumes that only the share of PNEUMONIA changed"
    )


def check_calibrate_args(args: argparse.Namespace) -> None:
    """Refuse, before any data is read, a target outside (0, 1], the training split, and an
    --out that is the checkpoint itself."""
    from medtl_helpers.evaluation.recalibration import check_sensitivity

    check_sensitivity(args.sensitivity)
    if args.split == "train":
        raise DataError(
            "--split train is the split the model was trained on: a threshold set there says "
            "nothing about a new site. Calibrate on the site's own patients: --split test"
        )
    if Path(args.out).resolve() == Path(args.checkpoint).resolve():
        raise DataError(
            f"--out {args.out} is the checkpoint being calibrated: the copy would replace the "
            f"model as it was validated. Give --out another file, e.g. "
            f"{Path(args.checkpoint).with_name('site.pt')}"
        )


def run_calibrate(args: argparse.Namespace) -> int:
    from medtl_helpers.evaluation.recalibration import (
        draw_calibration_patients,
        recalibrated_threshold,
    )
    from medtl_helpers.metrics import binary_metrics, predict_proba
    from medtl_helpers.training.checkpoints import save_checkpoint

    check_calibrate_args(args)
    device = config.get_device(args.device)
    model, meta, _, part = checkpoint_and_split(args)
    chosen, _ = draw_calibration_patients(
        part.labels.numpy(), part.patients, args.patients, args.seed
    )
    model = model.to(device)
    if args.adapt == "bn":
        model = adapt_to(model, part.images, args.seed)
    drawn = part.subset(chosen)
    y, p = drawn.labels.numpy(), predict_proba(model, drawn.images, device=device)
    threshold = recalibrated_threshold(y, p, args.sensitivity)
    rates = {
        name: binary_metrics(y, p, t)
        for name, t in (("old", meta["threshold"]), ("new", threshold))
    }
    adapted = len(part) if args.adapt == "bn" else 0
    record = calibration_record(args, drawn, meta["threshold"], threshold, rates["new"], adapted)
    print_calibration(args, part, drawn, rates)
    save_checkpoint(args.out, model.cpu(), {**meta, "threshold": threshold, "calibration": record})
    print(
        f"wrote {args.out}: threshold {threshold:.3f} for sensitivity >= {args.sensitivity:g} "
        f"(was {meta['threshold']:.3f})" + (", with AdaBN statistics" if args.adapt == "bn" else "")
    )
    return 0


def calibration_record(
    args: argparse.Namespace, drawn: ImageSet, old: float, new: float, reached: dict, adapted: int
) -> dict:
    """The provenance `calibrate` writes into the copy's metadata under "calibration";
    `adapted` is the number of images AdaBN re-estimated the statistics on (0: none)."""
    return {
        "data_root": str(Path(args.data).resolve()),
        "split": args.split,
        "patients": sorted(set(drawn.patients)),
        "images": len(drawn),
        "seed": args.seed,
        "rule": f"highest threshold with sensitivity >= {args.sensitivity:g} on these patients",
        "sensitivity_target": float(args.sensitivity),
        "sensitivity_reached": float(reached["sensitivity"]),
        "specificity_reached": float(reached["specificity"]),
        "old_threshold": float(old),
        "threshold": float(new),
        "adapt": args.adapt,
        "adapt_images": adapted,
        "source_checkpoint": str(Path(args.checkpoint).resolve()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def print_calibration(
    args: argparse.Namespace, part: ImageSet, drawn: ImageSet, rates: dict
) -> None:
    """Who was drawn, both thresholds' rates on them, and why those rates are optimistic."""
    labels = np.asarray(drawn.labels)
    per_class = []
    for c, name in enumerate(CLASSES):
        ids = {drawn.patients[i] for i in np.flatnonzero(labels == c)}
        per_class.append(f"{len(ids)} {name} with {int((labels == c).sum())} images")
    rest = part.n_patients() - drawn.n_patients()
    print(
        f"calibration patients: {drawn.n_patients()} of the {part.n_patients()} patients of "
        f"the {args.split} split of {args.data} ({', '.join(per_class)}), seed {args.seed}"
        + ("; AdaBN on all its images first" if args.adapt == "bn" else "")
    )
    print(f"{'':18}threshold  sensitivity  specificity")
    for name, r in rates.items():
        print(f"{name:18}{r['threshold']:9.3f}  {r['sensitivity']:11.3f}  {r['specificity']:11.3f}")
    print(
        "Both rows are measured on the calibration patients, who chose the new threshold: they "
        f"are optimistic. `evaluate` of the copy on this split scores only the other {rest} "
        f"patients ({len(part) - len(drawn)} images). A threshold set this way sits at the edge "
        "of a few patients' scores: on other patients it often falls short of the target "
        "(notebook 08, section 9.4)."
    )
