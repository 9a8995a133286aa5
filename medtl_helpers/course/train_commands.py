"""`python -m medtl_helpers train …` and `… evaluate …`: the course's recipe without a notebook.

Every argument is checked here, so a mistake gets argparse's one-line usage error naming the flag,
not a traceback from deep inside torch. `torchrun --nproc-per-node N -m medtl_helpers train …`
runs the same command in N processes (training/distributed.py); rank 0 alone prints.
`evaluate`'s options for a model at a new hospital (--adapt, --prior, and leaving out the patients
a `calibrate`d threshold was chosen on) live in site_commands.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medtl_helpers import config
from medtl_helpers.course.site_commands import (
    add_site_options,
    checkpoint_and_split,
    leave_out_calibration,
    site_probabilities,
)
from medtl_helpers.models import ARCHS, GROUPS, HEADS, STRATEGIES

MIN_SIZE, MAX_SIZE = 32, 1024  # below 32 px layer4 sees less than one pixel; above, memory


def image_size(text: str) -> int:
    size = _positive(text)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise argparse.ArgumentTypeError(
            f"{size} px is not a usable image size: use {MIN_SIZE} to {MAX_SIZE} (the course "
            "uses 64, 128 or 224)"
        )
    return size


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not a share: use a number between 0 and 1")
    return value


def freeze_arg(text: str) -> str | list[str]:
    if text in STRATEGIES:
        return text
    groups = [g.strip() for g in text.split(",")]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown layer group(s) {', '.join(unknown)}: use {' | '.join(STRATEGIES)} or a "
            f"comma-separated list of {','.join(GROUPS)}"
        )
    return groups


def add_train_commands(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="fine-tune a ResNet on a Kermany folder")
    train.add_argument("--data", type=Path, required=True, help="Kermany folder (with train/)")
    train.add_argument("--arch", choices=ARCHS, default="resnet18")
    train.add_argument(
        "--freeze", type=freeze_arg, default="none", help="none | partial | all | group,group,…"
    )
    train.add_argument("--epochs", type=_positive, default=None, help="default: the profile's")
    train.add_argument("--image-size", type=image_size, default=None, help="default: the profile's")
    train.add_argument("--batch-size", type=_positive, default=None)
    train.add_argument("--eval-batch-size", type=_positive, default=256, help="validation batch")
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default="auto")
    train.add_argument("--pretrained", choices=["imagenet", "none"], default=None)
    train.add_argument("--head", choices=HEADS, default="linear")
    train.add_argument("--patience", type=_positive, default=3)
    train.add_argument("--seed", type=int, default=0, help="also fixes the patient-level splits")
    train.add_argument(
        "--val-fraction", type=fraction, default=0.15, help="share of patients for validation"
    )
    train.add_argument("--device", default=None, help="cpu | cuda | cuda:N | mps")
    train.add_argument("--out", type=Path, required=True, help="run folder for best.pt/last.pt")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    again.add_argument(
        "--overwrite", action="store_true", help="start over in an OUT that holds a run"
    )
    train.add_argument(
        "--sync-batchnorm",
        action="store_true",
        help="under torchrun on GPUs: BatchNorm statistics over the global batch",
    )
    train.set_defaults(run=run_train)

    evaluate = sub.add_parser("evaluate", help="metrics with 95%% bootstrap intervals")
    evaluate.add_argument("--checkpoint", type=Path, required=True)
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--split", choices=["train", "val", "test"], default="test")
    evaluate.add_argument("--json", type=Path, default=None, help="write the metrics here")
    evaluate.add_argument("--n-boot", type=_positive, default=1000)
    evaluate.add_argument("--device", default=None)
    add_site_options(evaluate)
    evaluate.set_defaults(run=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from medtl_helpers.training.distributed import env_rank, main_prints_only

    with main_prints_only(env_rank()):  # under torchrun, rank 0 speaks for all processes
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    from medtl_helpers.data.sources import load_folder
    from medtl_helpers.models import build_model
    from medtl_helpers.training import fit
    from medtl_helpers.training.run_folder import refuse_held_run

    if not args.resume and not args.overwrite:
        refuse_held_run(args.out)  # said before the data is read, not after
    profile = config.get_profile()
    size = args.image_size or profile.image_size
    device = config.get_device(args.device)  # a missing GPU is said before any work is done
    config.seed_everything(args.seed)
    data = load_folder(args.data, size, args.seed, args.val_fraction)
    print(data.banner())
    model = build_model(args.arch, pretrained=args.pretrained, head=args.head)
    history = fit(
        model,
        data.train,
        data.val,
        epochs=args.epochs or profile.epochs,
        lr=args.lr,
        freeze=args.freeze,
        profile=profile,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        image_size=size,
        device=device,
        amp=args.amp,
        patience=args.patience,
        out_dir=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        seed=args.seed,
        sync_batchnorm=args.sync_batchnorm,
        data_root=str(Path(args.data).resolve()),
        val_fraction=args.val_fraction,
    )
    print(
        f"best val AUROC {history.best_auroc:.4f} at epoch {history.best_epoch}, "
        f"threshold {history.threshold:.3f}; checkpoint {args.out / 'best.pt'}"
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from medtl_helpers.evaluation.report import evaluation_report, report_table, write_report

    device = config.get_device(args.device)
    model, meta, data, part = checkpoint_and_split(args)
    part, left_out, said = leave_out_calibration(meta, args.data, args.split, part)
    notes = [n for n in data.notes if "holdout" in n] if args.split == "test" else []
    notes += [said] if said else []
    print(f"{args.split}: {len(part):,} images from {args.data}" + "".join(f"; {n}" for n in notes))
    probs, fields = site_probabilities(args, model.to(device), meta, data, part, device)
    y = part.labels.numpy()
    report = evaluation_report(
        y, probs, meta["threshold"], n_boot=args.n_boot, seed=meta["seed"], groups=part.patients
    )
    print(report_table(report).to_string(float_format="{:.3f}".format, na_rep=""))
    print(f"(95% bootstrap intervals, resampling {report['resampled']})")
    if args.json is not None:
        extra = {"split": args.split, "checkpoint": str(args.checkpoint), "arch": meta["arch"]}
        extra.update(fields, left_out=left_out)
        print(f"wrote {write_report(args.json, report, **extra)}")
    return 0
