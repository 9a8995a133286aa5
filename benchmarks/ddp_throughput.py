"""Training images/s of `fit`'s steps in 1 and N processes (torchrun, DistributedDataParallel).

For each number of processes P the script starts `torchrun --standalone --nproc-per-node P` on
itself. Every process builds the same synthetic training set, a `training.BatchTrainer` whose
model DDP wraps (`distribute()`, as `fit` does), trains `--warmup` untimed global batches, then
times `--batches` global batches of batch_size x P images (augmentation, `--amp` (auto),
channels_last, the averaged loss: `train_epoch` as `fit` runs it). Rank 0 reports; this script
prints one table. On the CPU the processes talk over gloo and share the machine's cores (each
gets cores // P torch threads), so with 2 cores two processes cannot beat one: the figure there
is DDP's cost (a gradient all-reduce per step), not its gain. On GPUs each process has its own
GPU (NCCL) and `--processes 1,2,4,8` shows the scaling.

    python benchmarks/ddp_throughput.py --device cpu --processes 1,2 --batches 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from medtl_helpers import config
from medtl_helpers.data.augment import BatchAugment
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.models import build_model
from medtl_helpers.models.profiling import synchronize
from medtl_helpers.training import BatchTrainer, Stage, distributed, make_optimizer, make_scheduler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import cpu_flag_summary  # noqa: E402  (the benchmarks are scripts, not a package)

HEADER = (
    "processes", "threads", "device", "precision", "global_batch", "allreduce_ms",
    "images_per_s", "speedup",
)  # fmt: skip


def allreduce_ms(model: torch.nn.Module, world: distributed.World, repeats: int = 3) -> float:
    """Milliseconds of one all-reduce of as many numbers as the model trains (0: one process).

    DDP reduces the gradients in buckets while the backward pass runs, so a step costs at most
    this much more than the same step alone; the rest of any shortfall is the processes'
    competition for cores.
    """
    if world.size == 1:
        return 0.0
    grads = torch.ones(sum(p.numel() for p in model.parameters() if p.requires_grad))
    grads = grads.to(world.device)
    torch.distributed.all_reduce(grads)  # the first call sets up the connections
    start = time.perf_counter()
    for _ in range(repeats):
        torch.distributed.all_reduce(grads)
    synchronize(world.device)
    return (time.perf_counter() - start) / repeats * 1000


def measure(args: argparse.Namespace) -> dict:
    """Images/s of this process group's training steps; every process calls it."""
    world = distributed.start(config.get_device(args.device))
    try:
        torch.set_num_threads(int(os.environ.get("MEDTL_BENCH_THREADS", args.threads or 1)))
        steps = args.warmup + args.batches
        data = make_synthetic(steps * args.batch_size * world.size, size=args.image_size, seed=0)
        torch.manual_seed(0)
        model = build_model(args.arch, pretrained="none", verbose=False)
        model.to(world.device, memory_format=torch.channels_last)
        stage = Stage("bench", 1, args.freeze, 1e-3)
        optimizer = make_optimizer(model, stage)
        scheduler = make_scheduler(optimizer, stage, steps)
        cut = args.warmup * args.batch_size * world.size
        for part in (data.subset(range(cut)), data.subset(range(cut, len(data)))):
            options = dict(batch_size=args.batch_size, image_size=args.image_size, world=world)
            options.update(
                device=world.device, augment=BatchAugment(), progress=False, amp=args.amp
            )
            trainer = BatchTrainer(model, part, part.subset(range(world.size)), **options)
            trainer.distribute()
            world.barrier()
            start = time.perf_counter()
            trainer.train_epoch(optimizer, scheduler, "")  # ends in an all-reduce: all done
            synchronize(world.device)
            seconds = time.perf_counter() - start
        return {
            "processes": world.size,
            "threads": torch.get_num_threads(),
            "device": world.device.type,
            "precision": config.precision_name(world.device, args.amp),
            "global_batch": trainer.global_batch,
            "allreduce_ms": allreduce_ms(model, world),
            "images_per_s": len(part) / seconds,
        }
    finally:
        world.close()


def launch(processes: int, args: argparse.Namespace, argv: list[str]) -> dict:
    """One torchrun of this script in `processes` processes; rank 0's measurement."""
    threads = max(1, (os.cpu_count() or 1) // processes) if args.device == "cpu" else 1
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    threads = args.threads or threads
    command += ["--nproc-per-node", str(processes), __file__, *argv, "--worker"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MEDTL_BENCH_THREADS": str(threads)}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"torchrun with {processes} process(es) failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[0].removeprefix("RESULT "))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts")
    parser.add_argument("--batches", type=int, default=5, help="timed global batches")
    parser.add_argument("--warmup", type=int, default=1, help="untimed global batches first")
    parser.add_argument("--batch-size", type=int, default=16, help="per process")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--freeze", default="none")
    parser.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="per process (0: cores // P)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def table(rows: list[dict]) -> str:
    """One whitespace-separated row per process count; speedup against the first row."""
    lines = [" ".join(HEADER)]
    for row in rows:
        row["speedup"] = row["images_per_s"] / rows[0]["images_per_s"]
        values = [row[key] for key in HEADER]
        lines.append(" ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in values))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        result = measure(args)
        if distributed.env_rank() == 0:
            print("RESULT " + json.dumps(result), flush=True)
        return [result]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    device = config.get_device(args.device)
    print(f"# date: {now}; device: {config.device_label(device)}, {os.cpu_count()} cores")
    print(f"# torch {torch.__version__}; cpu flags: {cpu_flag_summary()}")
    print(
        f"# {args.arch}, freeze={args.freeze}, {args.image_size} px synthetic images, "
        f"{args.batch_size} per process per step, {args.warmup} warm-up + {args.batches} timed "
        "global batches; backend " + ("nccl" if args.device == "cuda" else "gloo")
    )
    rows = [launch(int(p), args, argv) for p in args.processes.split(",")]
    print(table(rows), flush=True)
    return rows


if __name__ == "__main__":
    main()
