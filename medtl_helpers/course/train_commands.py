"""`python -m medtl_helpers train …` and `… evaluate …`: the course's recipe without a notebook."""

from __future__ import annotations

import argparse
from pathlib import Path

from medtl_helpers import config


def add_train_commands(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="fine-tune a ResNet on a Kermany folder")
    train.add_argument("--data", type=Path, required=True, help="Kermany folder (with train/)")
    train.add_argument("--arch", default="resnet18")
    train.add_argument("--freeze", default="none", help="none | partial | all | group,group,…")
    train.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    train.add_argument("--image-size", type=int, default=None, help="default: the profile's")
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--pretrained", choices=["imagenet", "none"], default=None)
    train.add_argument("--head", choices=["linear", "mlp"], default="linear")
    train.add_argument("--patience", type=int, default=3)
    train.add_argument("--seed", type=int, default=0, help="also fixes the patient-level splits")
    train.add_argument("--device", default=None)
    train.add_argument("--out", type=Path, required=True, help="run folder for best.pt/last.pt")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train.set_defaults(run=run_train)

    evaluate = sub.add_parser("evaluate", help="metrics with 95%% bootstrap intervals")
    evaluate.add_argument("--checkpoint", type=Path, required=True)
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--split", choices=["train", "val", "test"], default="test")
    evaluate.add_argument("--json", type=Path, default=None, help="write the metrics here")
    evaluate.add_argument("--n-boot", type=int, default=1000)
    evaluate.add_argument("--device", default=None)
    evaluate.set_defaults(run=run_evaluate)


def _freeze_arg(text: str) -> str | list[str]:
    return text if text in ("none", "partial", "all") else [g.strip() for g in text.split(",")]


def run_train(args: argparse.Namespace) -> int:
    from medtl_helpers.data.sources import load_folder
    from medtl_helpers.models import build_model
    from medtl_helpers.training import fit

    profile = config.get_profile()
    size = args.image_size or profile.image_size
    config.seed_everything(args.seed)
    data = load_folder(args.data, size, args.seed)
    print(data.banner())
    model = build_model(args.arch, pretrained=args.pretrained, head=args.head)
    history = fit(
        model,
        data.train,
        data.val,
        epochs=args.epochs or profile.epochs,
        lr=args.lr,
        freeze=_freeze_arg(args.freeze),
        profile=profile,
        batch_size=args.batch_size,
        image_size=size,
        device=args.device,
        patience=args.patience,
        out_dir=args.out,
        resume=args.resume,
        seed=args.seed,
        data_root=str(Path(args.data).resolve()),
    )
    print(
        f"best val AUROC {history.best_auroc:.4f} at epoch {history.best_epoch}, "
        f"threshold {history.threshold:.3f}; checkpoint {args.out / 'best.pt'}"
    )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from medtl_helpers.data.sources import load_folder
    from medtl_helpers.evaluation.report import evaluation_report, report_table, write_report
    from medtl_helpers.metrics import predict_proba
    from medtl_helpers.training.checkpoints import load_checkpoint

    model, meta = load_checkpoint(args.checkpoint)
    data = load_folder(args.data, meta["image_size"], meta["seed"])
    part = getattr(data, args.split)
    notes = [n for n in data.notes if "holdout" in n] if args.split == "test" else []
    print(f"{args.split}: {len(part):,} images from {args.data}" + "".join(f"; {n}" for n in notes))
    device = config.get_device(args.device)
    probs = predict_proba(model.to(device), part.images, device=device)
    y = part.labels.numpy()
    report = evaluation_report(
        y, probs, meta["threshold"], n_boot=args.n_boot, seed=meta["seed"], groups=part.patients
    )
    print(report_table(report))
    if args.json is not None:
        extra = {"split": args.split, "checkpoint": str(args.checkpoint), "arch": meta["arch"]}
        print(f"wrote {write_report(args.json, report, **extra)}")
    return 0
