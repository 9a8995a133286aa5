"""Training throughput in images/s: the course pipeline against the common tutorial pipeline.

course: images decoded once into the uint8 tensor cache (its build is timed and printed before the
    table), `BatchAugment` on the device, mixed precision where the device runs it natively
    (amp="auto", `config.precision_choice`: bf16 on GPUs with bf16 cores and on CPUs with
    AVX-512 BF16 or AMX, fp16 on older GPUs; the `precision` column says which), channels_last,
    the steps of `training.BatchTrainer`; freeze=all computes the backbone features once
    (`training.FrozenFeatures`) and trains the head on them.
naive: torchvision `ImageFolder`, PIL decode + `Compose([Grayscale(3), Resize, RandomAffine,
    ColorJitter, ToTensor, Normalize])` per image in DataLoader workers (min(4, cpus), pin_memory
    on CUDA), fp32, default memory format, requires_grad=False freezing, the frozen backbone run
    on every batch.
Both use the same model, batch size, AdamW optimizer, schedule and class-weighted loss, and the
same image files. Warm-up batches are excluded from the timing of both. freeze=all is measured over
`--epochs` epochs (default 5) of the timed images, including the course's one backbone pass; each
naive epoch starts its DataLoader workers again, as a default DataLoader does. The ratio column is
course / naive for the same arch, freeze, size and device; naive rows show 1.00. With few
--batches, batches the naive workers prefetched during warm-up flatter the naive figure.

    python benchmarks/throughput.py --device cpu --batches 3 [--data DIR] [--archs resnet18]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import random
import shutil
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torchvision
from torch.utils.data import DataLoader, Subset
from torchvision import datasets
from torchvision import transforms as T

from medtl_helpers import config
from medtl_helpers.config import device_label
from medtl_helpers.data.augment import IMAGENET_MEAN, IMAGENET_STD, BatchAugment
from medtl_helpers.data.cache import build_image_set
from medtl_helpers.data.folder import scan_split
from medtl_helpers.data.records import ImageSet
from medtl_helpers.data.sources import find_kermany_root
from medtl_helpers.data.synthetic import write_synthetic_folder
from medtl_helpers.models import build_model
from medtl_helpers.models.profiling import synchronize
from medtl_helpers.training import (
    BatchTrainer,
    FrozenFeatures,
    Stage,
    make_optimizer,
    make_scheduler,
    steps_per_epoch,
)

HEADER = ("pipeline", "arch", "freeze", "size", "device", "precision", "images_per_s", "ratio")


def resolve_data(data: str | None, synthetic_size: int, n_images: int) -> tuple[Path, str, bool]:
    """The Kermany folder to read, where it came from, and whether it is a temporary folder."""
    if data:
        return Path(data), f"{data} (--data)", False
    root = find_kermany_root()
    if root is not None:
        return root, f"{root} (the course's data: MEDTL_DATA or data/chest_xray)", False
    folder = Path(tempfile.mkdtemp(prefix="medtl_throughput_"))
    write_synthetic_folder(folder, n_images, 2, size=synthetic_size)
    return folder, f"{folder}: SYNTHETIC {synthetic_size} px PNGs (no Kermany folder found)", True


def pick_files(root: Path, n: int, seed: int = 0) -> tuple[list[Path], list[int]]:
    """`n` training files in a seeded random order (repeated when the folder has fewer)."""
    scan = scan_split(root, "train")
    order = list(range(len(scan.paths)))
    random.Random(seed).shuffle(order)
    order = (order * (n // len(order) + 1))[:n]
    return [scan.paths[i] for i in order], [scan.labels[i] for i in order]


def new_run(arch: str, freeze: str, device: torch.device, course: bool, epochs: int):
    """Model (same seed), stage and optimizer, placed as `fit` places them (or plainly)."""
    torch.manual_seed(0)
    model = build_model(arch, pretrained="none", verbose=False)
    memory = torch.channels_last if course else torch.contiguous_format
    model.to(device, memory_format=memory)
    stage = Stage("bench", epochs, freeze, 1e-3)
    return model, stage, make_optimizer(model, stage)


def trainer_for(model, part: ImageSet, device, batch: int, size: int, course: bool):
    """A `training.BatchTrainer` over `part`; the naive one: AMP, channels_last, augment off."""
    return BatchTrainer(
        model,
        part,
        part.subset([0]),
        device=device,
        batch_size=batch,
        image_size=size,
        amp="auto" if course else "off",
        channels_last=course,
        weighted_loss=True,
        augment=BatchAugment() if course else None,
        seed=0,
        progress=False,
    )


def course_rate(cache: ImageSet, arch, freeze, device, args) -> float:
    """Images/s of the course's own loops; warm-up on the first `warm` batches, untimed."""
    size, warm, batch = cache.image_size, args.warmup, args.batch_size
    model, stage, optimizer = new_run(arch, freeze, device, True, args.epochs)
    warm_set = cache.subset(range(warm * batch))
    timed = cache.subset(range(warm * batch, len(cache)))
    passes = args.epochs if freeze == "all" else 1
    for part, n_passes in ((warm_set, 1), (timed, passes)):
        trainer = trainer_for(model, part, device, batch, size, course=True)
        scheduler = make_scheduler(optimizer, stage, steps_per_epoch(len(part), batch))
        synchronize(device)
        start = time.perf_counter()
        if freeze == "all":
            features = FrozenFeatures(model, part, part.subset([0]), trainer)
            for _ in range(n_passes):
                features.train_epoch(optimizer, scheduler, "")
        else:
            trainer.train_epoch(optimizer, scheduler, "")
        synchronize(device)
        seconds = time.perf_counter() - start
    return passes * len(timed) / seconds


def naive_transform(size: int, augment: bool = True) -> T.Compose:
    """The tutorial's per-image PIL transforms: the course's augmentation, done image by image."""
    steps = [T.Grayscale(num_output_channels=3), T.Resize((size, size))]
    if augment:
        steps += [
            T.RandomAffine(degrees=10, translate=(0.06, 0.06), scale=(0.9, 1.1)),
            T.ColorJitter(brightness=0.1, contrast=0.1),
        ]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def naive_loader(folder, indices, size, batch, workers, device) -> DataLoader:
    """The tutorial recipe: per-image PIL decode and transforms in DataLoader workers."""
    transform = naive_transform(size)
    subset = Subset(datasets.ImageFolder(folder / "train", transform=transform), indices)
    pin = device.type == "cuda"
    return DataLoader(
        subset, batch, shuffle=True, num_workers=workers, pin_memory=pin, drop_last=True
    )


def naive_rate(folder, indices, cache, arch, freeze, device, args) -> float:
    """Images/s of the tutorial loop (fp32, model.train(), frozen layers still run).

    The clock starts once `warm` batches have been trained, so warm-up (worker start-up
    included) is left out; freeze=all then runs `epochs` epochs, each starting its DataLoader
    workers again, as a default DataLoader does.
    """
    warm, batch = args.warmup, args.batch_size
    model, stage, optimizer = new_run(arch, freeze, device, False, args.epochs)
    timed = cache.subset(range(warm * batch, len(cache)))  # the course's class weights
    trainer = trainer_for(model, timed, device, batch, cache.image_size, course=False)
    scheduler = make_scheduler(optimizer, stage, args.batches)
    epochs = [indices] if freeze != "all" else [indices[: warm * batch]]
    epochs += [indices[warm * batch :]] * (args.epochs if freeze == "all" else 0)
    seen, start = 0, 0.0
    for part in epochs:
        model.train()
        for x, y in naive_loader(folder, part, cache.image_size, batch, args.workers, device):
            if seen == warm * batch:
                synchronize(device)
                start = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            trainer.step(optimizer, scheduler, x, y)
            seen += len(y)
    synchronize(device)
    return (seen - warm * batch) / (time.perf_counter() - start)


def naive_indices(folder: Path, paths: list[Path]) -> list[int]:
    """Positions of `paths` in torchvision's ImageFolder listing of the same folder."""
    samples = datasets.ImageFolder(folder / "train").samples
    position = {Path(p).resolve(): i for i, (p, _) in enumerate(samples)}
    return [position[Path(p).resolve()] for p in paths]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--batches", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5, help="epochs for freeze=all")
    parser.add_argument("--archs", default="resnet18,resnet50")
    parser.add_argument("--freezes", default="none,partial,all")
    parser.add_argument("--sizes", default=None, help="default: 224 (and 128 on CPU)")
    parser.add_argument("--pipelines", default="course,naive")
    parser.add_argument(
        "--repeats", type=int, default=1, help="interleaved naive/course repeats (median)"
    )
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--data", default=None, help="a Kermany-layout folder")
    parser.add_argument("--synthetic-size", type=int, default=512)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if min(args.warmup, args.batches, args.repeats) < 1:
        raise SystemExit("--warmup, --batches and --repeats must be at least 1")
    if not set(args.pipelines.split(",")) <= {"course", "naive"}:
        raise SystemExit(f"--pipelines {args.pipelines}: use course, naive or course,naive")
    device = config.get_device(args.device)
    sizes = [
        int(s) for s in (args.sizes or ("224" if device.type == "cuda" else "224,128")).split(",")
    ]
    warm, batch = args.warmup, args.batch_size
    n_images = (warm + args.batches) * batch
    folder, origin, temporary = resolve_data(args.data, args.synthetic_size, n_images)
    paths, labels = pick_files(folder, n_images)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# date: {now}; device: {device_label(device)}, {torch.get_num_threads()} torch threads")
    print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}")
    print(f"# cpu flags: {cpu_flag_summary()}")
    print(f"# precision: course amp=auto -> {config.precision_choice(device)[1]}; naive fp32")
    print(f"# data: {origin}")
    print(
        f"# {n_images} training images per measurement: {warm} warm-up + {args.batches} timed "
        f"batches of {batch}; freeze=all over {args.epochs} epochs; naive workers {args.workers}; "
        f"median of {args.repeats} interleaved repeat(s)"
    )
    try:
        caches = {size: timed_cache(paths, labels, size) for size in sizes}
        return run_table(args, device, folder, paths, caches, sizes)
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def cpu_flag_summary() -> str:
    """The flags that decide CPU speed here: vector width and native bf16."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return " ".join(flag for flag in wanted if flag in config.cpu_flags()) or "none of avx2/avx512"


def timed_cache(paths: list[Path], labels: list[int], size: int) -> ImageSet:
    """The course's decode-once step, timed and printed on its own line before the table."""
    start = time.perf_counter()
    cache = build_image_set(paths, labels, size, progress=False)
    seconds = time.perf_counter() - start
    print(
        f"# cache build (course, once): {len(paths)} images decoded to uint8 at {size} px in "
        f"{seconds:.2f} s = {len(paths) / seconds:.0f} images/s (not in the table)"
    )
    return cache


def run_table(args, device, folder: Path, paths: list[Path], caches: dict, sizes) -> list[dict]:
    """Print the header, then one row per pipeline as soon as it is measured."""
    indices = naive_indices(folder, paths)
    print(" ".join(HEADER), flush=True)
    rows = []
    for size, arch, freeze in itertools.product(
        sizes, args.archs.split(","), args.freezes.split(",")
    ):
        measure = {
            "naive": partial(naive_rate, folder, indices, caches[size], arch, freeze, device, args),
            "course": partial(course_rate, caches[size], arch, freeze, device, args),
        }
        chosen = [pipeline for pipeline in measure if pipeline in args.pipelines]
        # Alternate the pipelines: on a shared machine the speed drifts within minutes, and
        # the median of interleaved repeats compares the pipelines, not the moments.
        measured = {pipeline: [] for pipeline in chosen}
        for _ in range(args.repeats):
            for pipeline in chosen:
                measured[pipeline].append(measure[pipeline]())
        rates = {pipeline: statistics.median(values) for pipeline, values in measured.items()}
        for pipeline, rate in sorted(rates.items(), key=lambda item: item[0] != "naive"):
            ratio = rate / rates["naive"] if "naive" in rates else float("nan")
            precision = config.precision_name(device) if pipeline == "course" else "fp32"
            values = (pipeline, arch, freeze, size, device.type, precision, rate, ratio)
            rows.append(dict(zip(HEADER, values)))
            print(
                " ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in values), flush=True
            )
    return rows


if __name__ == "__main__":
    main()
