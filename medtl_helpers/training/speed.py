"""How fast `fit`'s training step runs here in each precision, measured rather than asserted.

Mixed precision is faster only where the hardware computes 16-bit floats natively (GPU tensor
cores, CPUs with AVX-512 BF16 or AMX); elsewhere it is emulated and slower than fp32. So the
course measures: the same training step (`BatchTrainer.step`: forward under autocast, the
class-weighted loss, backward, an AdamW step), on the same batch, in each precision, timed in
interleaved rounds so that a machine that speeds up or slows down meanwhile affects all alike.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import torch
from torch import nn

from medtl_helpers.data.augment import to_model_input
from medtl_helpers.data.records import ImageSet
from medtl_helpers.models import train_mode
from medtl_helpers.models.profiling import synchronize
from medtl_helpers.training.steps import BatchTrainer


def _timed_steps(trainer: BatchTrainer, optimizer, scheduler, x, y, steps: int) -> float:
    synchronize(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(optimizer, scheduler, x, y)
    synchronize(trainer.device)
    return time.perf_counter() - start


def precision_speeds(
    model: nn.Module,
    images: ImageSet,
    *,
    device: torch.device,
    batch_size: int,
    image_size: int,
    amps: Sequence[str] = ("off", "auto"),
    steps: int = 3,
    rounds: int = 3,
) -> list[dict]:
    """One row per `amps` entry: the precision `fit` would use, training images per second (the
    best of `rounds` interleaved rounds of `steps` steps) and the speed relative to the first row.

    Each precision trains its own copy of `model` on the first `batch_size` images, after one
    untimed warm-up step (memory allocation and kernel selection are paid once per run).
    """
    batch = images.images[:batch_size]
    x = to_model_input(batch.to(device), image_size).contiguous(memory_format=torch.channels_last)
    y = images.labels[:batch_size].to(device)
    runs = {}
    for amp in amps:
        trainer = BatchTrainer(
            copy.deepcopy(model).to(device).to(memory_format=torch.channels_last),
            images, images, device=device, batch_size=batch_size, image_size=image_size,
            amp=amp, progress=False,
        )  # fmt: skip
        train_mode(trainer.model)
        optimizer = torch.optim.AdamW(trainer.model.parameters(), lr=1e-4)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        _timed_steps(trainer, optimizer, scheduler, x, y, 1)  # warm-up
        runs[amp] = (trainer, optimizer, scheduler, [])
    for _ in range(rounds):
        for trainer, optimizer, scheduler, seconds in runs.values():
            seconds.append(_timed_steps(trainer, optimizer, scheduler, x, y, steps))
    rows = []
    for amp, (trainer, _, _, seconds) in runs.items():
        rate = steps * len(y) / min(seconds)
        rows.append({"amp": amp, "precision": trainer.precision, "images/s": rate})
    for row in rows:
        row["speed vs first"] = row["images/s"] / rows[0]["images/s"]
    return rows
