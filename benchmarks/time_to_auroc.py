"""Time to a useful model: wall time from the start to the first epoch whose validation AUROC
reaches each target (0.95 and 0.97), resnet18 from random initialisation, on the CPU.

course: what `python -m medtl_helpers train` does: decode the folder once into the uint8 tensor
    cache (cold: a fresh cache folder, so its build is in the time), then `fit` with its defaults:
    batch augmentation, channels_last, amp="auto" (bf16 autocast where the CPU computes bf16
    natively, fp32 elsewhere; the `precision` column says which).
seed: the recipe the course started from: the same images, patient-level split, model, batch
    size, optimizer, schedule and class-weighted loss, but a per-image PIL pipeline in DataLoader
    workers (`throughput.naive_transform`), fp32 and the default memory format; validation
    decodes its images every epoch too.
Both score the same validation patients after every epoch; the clock stops at each epoch's end.

    python benchmarks/time_to_auroc.py --data ../shared/data/chest_xray_224 --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from medtl_helpers import config
from medtl_helpers.data.sources import load_folder
from medtl_helpers.metrics import auroc
from medtl_helpers.models import build_model
from medtl_helpers.training import (
    RunState,
    Stage,
    class_weights,
    fit,
    make_optimizer,
    make_scheduler,
    steps_per_epoch,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import cpu_flag_summary, naive_transform  # noqa: E402

HEADER = ("pipeline", "precision", "epoch", "seconds", "val_auroc")


class Files(Dataset):
    """Image files decoded with PIL on every access, as a tutorial's Dataset does."""

    def __init__(self, paths: list[str], labels: list[int], transform):
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("L")), self.labels[index]


def course(args, start: float) -> tuple[list[tuple[float, float]], str]:
    """(seconds since start, val AUROC) at each epoch end of `fit`, and its precision."""
    marks: list[float] = []
    save = RunState.save

    def timed(self, *a, **kw):  # the end of an epoch: validated, checkpoints written
        save(self, *a, **kw)
        marks.append(time.perf_counter() - start)

    RunState.save = timed
    try:
        data = load_folder(args.data, args.image_size, seed=0)
        model = build_model("resnet18", pretrained="none", verbose=False)
        options = dict(epochs=args.epochs, patience=args.epochs, batch_size=args.batch_size)
        history = fit(model, data.train, data.val, progress=False, out_dir=args.out, **options)
    finally:
        RunState.save = save
    return list(zip(marks, history.column("val_auroc"))), config.precision_name("cpu")


def seed(args, start: float) -> list[tuple[float, float]]:
    """(seconds since start, val AUROC) at each epoch end of the per-image fp32 recipe."""
    data = load_folder(args.data, 32, seed=0)  # only for the split: the same patients as course
    train = Files(data.train.paths, data.train.labels.tolist(), naive_transform(args.image_size))
    val = Files(data.val.paths, data.val.labels.tolist(), naive_transform(args.image_size, False))
    start = time.perf_counter()  # listing the files is all this recipe does before training
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained="none", verbose=False)
    stage = Stage("seed", args.epochs, "none", 1e-3)
    optimizer = make_optimizer(model, stage)
    steps = steps_per_epoch(len(train), args.batch_size)
    scheduler = make_scheduler(optimizer, stage, steps)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(data.train.labels))
    loader = DataLoader(train, args.batch_size, True, drop_last=True, num_workers=args.workers)
    marks = []
    for _ in range(args.epochs):
        model.train()
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        marks.append((time.perf_counter() - start, validate(model, val, args)))
    return marks


@torch.no_grad()
def validate(model, val: Files, args) -> float:
    model.eval()
    probs, labels = [], []
    for x, y in DataLoader(val, 256, num_workers=args.workers):
        probs.append(model(x).softmax(dim=1)[:, 1])
        labels.append(y)
    return auroc(torch.cat(labels), torch.cat(probs))


def first_reaching(marks: list[tuple[float, float]], target: float) -> str:
    reached = [seconds for seconds, score in marks if score >= target]
    return f"{reached[0]:.0f} s" if reached else f"not in {len(marks)} epochs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a Kermany folder (train/)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--workers", type=int, default=2, help="the seed's DataLoader workers")
    parser.add_argument("--targets", default="0.95,0.97")
    parser.add_argument("--pipelines", default="course,seed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, list[tuple[float, float]]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    targets = [float(t) for t in args.targets.split(",")]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# date: {now}; {config.device_label('cpu')}; {args.threads} torch threads")
    print(f"# cpu flags: {cpu_flag_summary()}; torch {torch.__version__}")
    print(
        f"# data: {args.data}; resnet18, random init, {args.image_size} px, batch {args.batch_size}"
    )
    results, precision = {}, {"seed": "fp32"}
    previous = os.environ.get("MEDTL_DATA")
    with tempfile.TemporaryDirectory(prefix="medtl_tta_") as scratch:
        args.out = Path(scratch) / "run"
        os.environ["MEDTL_DATA"] = scratch  # a cold cache: its build counts for the course
        try:
            for pipeline in args.pipelines.split(","):
                start = time.perf_counter()
                if pipeline == "course":
                    results["course"], precision["course"] = course(args, start)
                else:
                    results["seed"] = seed(args, start)
        finally:
            if previous is None:
                os.environ.pop("MEDTL_DATA")
            else:
                os.environ["MEDTL_DATA"] = previous
    print(" ".join(HEADER))
    for pipeline, marks in results.items():
        for epoch, (seconds, score) in enumerate(marks, start=1):
            print(f"{pipeline} {precision[pipeline]} {epoch} {seconds:.1f} {score:.4f}")
    for pipeline, marks in results.items():
        reached = ", ".join(f"AUROC {t}: {first_reaching(marks, t)}" for t in targets)
        print(f"# {pipeline}: {reached}")
    return results


if __name__ == "__main__":
    main()
