"""freeze=all: features computed once (the course's `fit`) vs the backbone recomputed every epoch.

The naive loop is what most tutorials write: freeze the backbone with requires_grad=False, then
run the whole network forward on every batch of every epoch. Both train the same head for the
same number of epochs on the same images; the table reports seconds and the speed-up.

    python benchmarks/frozen_features.py --epochs 5 --image-size 128 [--data DIR] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from medtl_helpers import config
from medtl_helpers.data.augment import to_model_input
from medtl_helpers.data.sources import load_course_data, load_folder
from medtl_helpers.data.split import subsample_by_patient
from medtl_helpers.models import build_model
from medtl_helpers.models.freezing import freeze
from medtl_helpers.training import fit


def naive_epochs(model, train, epochs: int, batch_size: int, image_size: int, device) -> float:
    """Frozen backbone, full forward pass every batch, every epoch (the common tutorial loop)."""
    freeze(model, "all")
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(train))
        for i in range(0, len(train) - batch_size + 1, batch_size):
            idx = order[i : i + batch_size]
            x = to_model_input(train.images[idx].to(device), image_size)
            loss = loss_fn(model(x), train.labels[idx].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-images", type=int, default=1000)
    parser.add_argument("--data", default=None, help="Kermany folder (default: course data)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = config.get_device(args.device)
    profile = config.get_profile(image_size=args.image_size, max_train_images=args.max_images)
    if args.data:
        data = load_folder(args.data, args.image_size)
    else:
        data = load_course_data(profile, verbose=False)
    train = subsample_by_patient(data.train, args.max_images)
    val = subsample_by_patient(data.val, args.max_images // 4)
    model = build_model(args.arch, pretrained="none", verbose=False)
    start = time.perf_counter()
    fit(
        model,
        train,
        val,
        epochs=args.epochs,
        freeze="all",
        profile=profile,
        patience=99,
        batch_size=args.batch_size,
        device=device,
        progress=False,
        augment=False,
    )
    cached = time.perf_counter() - start
    naive = naive_epochs(
        build_model(args.arch, pretrained="none", verbose=False),
        train,
        args.epochs,
        args.batch_size,
        args.image_size,
        device,
    )
    print(f"{'pipeline':<22}{'arch':<10}{'epochs':>7}{'images':>8}{'size':>6}{'seconds':>9}")
    print(
        f"{'features-once (fit)':<22}{args.arch:<10}{args.epochs:>7}{len(train):>8}"
        f"{args.image_size:>6}{cached:>9.1f}"
    )
    print(
        f"{'recompute-every-epoch':<22}{args.arch:<10}{args.epochs:>7}{len(train):>8}"
        f"{args.image_size:>6}{naive:>9.1f}"
    )
    print(
        f"speed-up: {naive / cached:.1f}x on {device} "
        f"(fit also scores validation each epoch; the naive loop does not)"
    )


if __name__ == "__main__":
    main()
